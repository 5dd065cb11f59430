// tail.ts — follows a run's log.jsonl as it grows: reads the bytes added since the last look and
// hands over each complete line (a half-written last line waits for its newline). It polls the
// file's size rather than trusting fs.watch, which misses writes on network filesystems and
// cannot watch a file that does not exist yet (a run that is just starting).
import * as fs from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

const READ_SLICE = 4 << 20;

export class LogTail {
  private offset = 0;
  private partial = '';
  // Keeps a UTF-8 character cut between two reads whole.
  private decoder = new StringDecoder('utf8');
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly file: string,
    private readonly onLine: (line: string) => void,
    /** Called when the file was cut shorter (a new run in the same directory): lines restart from 0. */
    private readonly onReset: () => void = () => {},
  ) {}

  /** Reads what is there now, then keeps polling every `intervalMs`. */
  start(intervalMs = 250): void {
    this.poll();
    this.timer = setInterval(() => this.poll(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Reads the file again from its first byte at the next poll. */
  rewind(): void {
    this.offset = 0;
    this.partial = '';
    this.decoder = new StringDecoder('utf8');
  }

  /** Reads any new complete lines now (synchronously: the file is local and each read is bounded). */
  poll(): void {
    let size: number;
    try {
      size = fs.statSync(this.file).size;
    } catch {
      return; // not written yet
    }
    if (size < this.offset) {
      this.rewind();
      this.onReset();
    }
    if (size === this.offset) return;
    const fd = fs.openSync(this.file, 'r');
    try {
      // A long log read at start-up comes in slices, not one buffer the size of the file.
      const buf = Buffer.alloc(Math.min(size - this.offset, READ_SLICE));
      while (this.offset < size) {
        const n = fs.readSync(fd, buf, 0, Math.min(buf.length, size - this.offset), this.offset);
        if (n === 0) break;
        this.offset += n;
        const lines = (this.partial + this.decoder.write(buf.subarray(0, n))).split('\n');
        this.partial = lines.pop() ?? '';
        for (const line of lines) if (line.trim()) this.onLine(line);
      }
    } finally {
      fs.closeSync(fd);
    }
  }
}
