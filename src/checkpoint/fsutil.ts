// fsutil.ts — the checkpoint package's reads: exact positional reads and file hashes. (Writes go
// through src/files/atomic-write.ts.)
import { createHash } from 'node:crypto';
import * as fsp from 'node:fs/promises';

import { corrupt } from './errors';

/** Largest single read; FileHandle I/O is limited to < 2 GiB per call. */
export const IO_CHUNK = 64 * 1024 * 1024;

/** Fills `target` from `position` of the file (positional reads, in chunks); a short file is corrupt. */
export async function readExactlyAt(
  fh: fsp.FileHandle,
  target: Uint8Array,
  position: number,
  file: string,
): Promise<void> {
  for (let done = 0; done < target.byteLength;) {
    const len = Math.min(IO_CHUNK, target.byteLength - done);
    const { bytesRead } = await fh.read(target, done, len, position + done);
    if (bytesRead === 0) throw corrupt(file, `unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  const fh = await fsp.open(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(Math.min(IO_CHUNK, 8 * 1024 * 1024));
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.byteLength, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}
