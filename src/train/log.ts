// log.ts — structured run logs: every record is one JSON line in <run.dir>/log.jsonl; stdout gets
// the same JSON lines, or, on a terminal, one readable line per record (the message; the fields stay
// in the file) above a progress bar.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';

import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import pino from 'pino';
import pretty from 'pino-pretty';

export interface RunLogger {
  log: pino.Logger;
  /** Moves the progress bar (terminal only). */
  progress(step: number, loss: number): void;
  close(): Promise<void>;
}

/**
 * `file: false` (workers other than rank 0 of a distributed job): stdout only, which the launcher
 * keeps as that rank's log file.
 */
export function createRunLogger(
  runDir: string,
  totalSteps: number,
  opts: { quiet?: boolean; file?: boolean } = {},
): RunLogger {
  fs.mkdirSync(runDir, { recursive: true });
  const file =
    opts.file === false
      ? undefined
      : pino.destination({ dest: path.join(runDir, 'log.jsonl'), sync: true, append: true });
  const streams: pino.StreamEntry[] = file ? [{ stream: file }] : [];
  let multibar: MultiBar | undefined;
  let bar: SingleBar | undefined;
  if (!opts.quiet) {
    if (process.stdout.isTTY) {
      multibar = new MultiBar(
        { format: ' {bar} {value}/{total} steps | loss {loss} | eta {eta_formatted}', hideCursor: true },
        Presets.shades_classic,
      );
      bar = multibar.create(totalSteps, 0, { loss: '-' });
      const bars = multibar;
      const aboveBar = new Writable({
        write(chunk, _enc, done) {
          bars.log(String(chunk));
          done();
        },
      });
      streams.push({ stream: pretty({ destination: aboveBar, colorize: true, sync: true, hideObject: true }) });
    } else {
      streams.push({ stream: pino.destination({ dest: 1, sync: true }) });
    }
  }
  const log = pino({ base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, pino.multistream(streams));
  return {
    log,
    progress(step, loss) {
      bar?.update(step, { loss: loss.toFixed(4) });
    },
    async close() {
      multibar?.stop();
      file?.flushSync();
    },
  };
}
