import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Writes a cache file so that readers only ever see either no file or the
 * complete file: several processes (test workers, data-parallel ranks) may
 * build the same cache entry at once, and rename() within a directory is
 * atomic. Concurrent writers produce identical content, so the last rename
 * winning is harmless.
 */
export function writeFileAtomic(targetPath: string, data: string | Uint8Array | readonly Uint8Array[]): void {
  fs.mkdirSync(path.dirname(targetPath), { recursive: true });
  const tempPath = `${targetPath}.${process.pid}-${crypto.randomBytes(6).toString('hex')}.tmp`;
  try {
    if (typeof data === 'string' || data instanceof Uint8Array) {
      fs.writeFileSync(tempPath, data);
    } else {
      const fd = fs.openSync(tempPath, 'w');
      try {
        for (const part of data) fs.writeSync(fd, part);
      } finally {
        fs.closeSync(fd);
      }
    }
    fs.renameSync(tempPath, targetPath);
  } catch (error) {
    fs.rmSync(tempPath, { force: true });
    throw error;
  }
}
