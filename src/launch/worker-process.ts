// worker-process.ts — one local worker as the agent sees it: the child process, its stdout+stderr
// going to <run.dir>/logs/rank-NNNNN.log, the last lines kept in memory for the failure report,
// and how it ended.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';

/** Lines of a worker's output kept for the failure report (its log file has all of them). */
export const TAIL_LINES = 30;
const MAX_LINE_CHARS = 500;

export interface WorkerEnd {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
}

/** The last lines of a stream of text chunks. */
export class LineTail {
  private lines: string[] = [];
  private partial = '';

  constructor(private readonly keep = TAIL_LINES) {}

  push(chunk: string): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) this.lines.push(line.replace(/\r$/, '').slice(0, MAX_LINE_CHARS));
    if (this.lines.length > this.keep) this.lines.splice(0, this.lines.length - this.keep);
    // A never-ending line must not grow without bound either.
    if (this.partial.length > MAX_LINE_CHARS * 4) this.partial = this.partial.slice(-MAX_LINE_CHARS);
  }

  last(): string[] {
    const all = this.partial ? [...this.lines, this.partial.slice(0, MAX_LINE_CHARS)] : [...this.lines];
    return all.slice(-this.keep);
  }
}

export function rankLogName(rank: number): string {
  return `rank-${String(rank).padStart(5, '0')}.log`;
}

export class WorkerProcess {
  readonly pid: number;
  /** Resolves when the process has ended and its output is flushed to the log. */
  readonly ended: Promise<WorkerEnd>;
  private readonly tail = new LineTail();
  private readonly child: ChildProcess;
  private running = true;

  constructor(
    readonly rank: number,
    readonly localRank: number,
    entry: string,
    env: NodeJS.ProcessEnv,
    logFile: string,
    /** --bind-cores: the CPU list this worker runs on (taskset), else no binding. */
    cpuList?: string,
  ) {
    const log = fs.createWriteStream(logFile, { flags: 'a' });
    log.write(`=== paratrain worker rank ${rank} (local rank ${localRank}) started ${new Date().toISOString()}\n`);
    // taskset execs node in place: same pid, and every thread inherits the affinity.
    this.child = cpuList
      ? spawn('taskset', ['-c', cpuList, process.execPath, entry], { env, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, [entry], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    // spawn() reports a failure to start asynchronously; pid is then undefined.
    this.pid = this.child.pid ?? -1;
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        log.write(chunk);
        this.tail.push(chunk);
      });
    }
    this.ended = new Promise<WorkerEnd>((resolve) => {
      let spawnError: Error | undefined;
      this.child.on('error', (err) => {
        spawnError = err;
        this.tail.push(`cannot start ${process.execPath} ${entry}: ${err.message}\n`);
      });
      this.child.on('close', (exitCode, signal) => {
        this.running = false;
        const end = { exitCode: spawnError && exitCode === null && !signal ? 127 : exitCode, signal };
        log.end(
          `=== ended: ${signal ? `signal ${signal}` : `exit code ${end.exitCode}`} ${new Date().toISOString()}\n`,
          () => resolve(end),
        );
      });
    });
  }

  get isRunning(): boolean {
    return this.running;
  }

  lastLines(): string[] {
    return this.tail.last();
  }

  kill(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }
}
