// rank-logs.ts — follows a launched job's per-rank logs, <run.dir>/logs/rank-NNNNN.log (the name
// src/launch/worker-process.ts gives them), as they appear and grow: each poll lists the folder,
// starts a LogTail for a rank file it has not seen (a job starting, a restart adding ranks) and
// reads what every file gained. One timer for all ranks.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { LogTail } from './tail';

const RANK_LOG = /^rank-(\d+)\.log$/;

export class RankLogs {
  private readonly tails = new Map<number, LogTail>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly logsDir: string,
    private readonly onLine: (rank: number, line: string) => void,
    /** A rank file was cut shorter (a new run): as LogTail's onReset. */
    private readonly onReset: () => void = () => {},
  ) {}

  start(intervalMs = 250): void {
    this.poll();
    this.timer = setInterval(() => this.poll(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Every rank file is read again from its first byte at the next poll. */
  rewind(): void {
    for (const t of this.tails.values()) t.rewind();
  }

  /** The ranks whose logs are followed. */
  ranks(): number[] {
    return [...this.tails.keys()].sort((a, b) => a - b);
  }

  poll(): void {
    let names: string[];
    try {
      names = fs.readdirSync(this.logsDir);
    } catch {
      names = []; // no logs/ folder (a single-process run, or a job not started yet)
    }
    for (const name of names) {
      const m = RANK_LOG.exec(name);
      if (!m || this.tails.has(Number(m[1]))) continue;
      const rank = Number(m[1]);
      this.tails.set(rank, new LogTail(path.join(this.logsDir, name), (line) => this.onLine(rank, line), this.onReset));
    }
    for (const t of this.tails.values()) t.poll();
  }
}
