// log.ts — structured run logs: every record is one JSON line in <run.dir>/log.jsonl; stdout gets
// the same JSON lines, or, on a terminal, one readable line per record (the message; the fields stay
// in the file) above a progress bar.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';

import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import pino from 'pino';
import pretty from 'pino-pretty';

/**
 * Where a log's records go on stdout: on a terminal, readable lines (the message) above a progress
 * bar drawn by the returned MultiBar; otherwise JSON lines. The launcher's view uses it too.
 */
export function stdoutLogStream(tty: boolean, barFormat: string): { stream: pino.StreamEntry; multibar?: MultiBar } {
  if (!tty) return { stream: { stream: pino.destination({ dest: 1, sync: true }) } };
  const multibar = new MultiBar({ format: barFormat, hideCursor: true }, Presets.shades_classic);
  const aboveBar = new Writable({
    write(chunk, _enc, done) {
      multibar.log(String(chunk));
      done();
    },
  });
  return {
    stream: { stream: pretty({ destination: aboveBar, colorize: true, sync: true, hideObject: true }) },
    multibar,
  };
}

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
    const out = stdoutLogStream(
      !!process.stdout.isTTY,
      ' {bar} {value}/{total} steps | loss {loss} | eta {eta_formatted}',
    );
    streams.push(out.stream);
    multibar = out.multibar;
    bar = multibar?.create(totalSteps, 0, { loss: '-' });
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
