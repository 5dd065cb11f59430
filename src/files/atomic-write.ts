// atomic-write.ts — the project's one way to write a file that readers see either whole or not at
// all: the data goes to a temp file in the same directory, which is fsync'd and renamed over the
// target, and the directory is fsync'd. Checkpoints (every file, the manifest last), the `latest`
// pointer, Hugging Face exports and the data caches (tokenizers, token stores) all write through it.
import { createHash, randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

/** Temp name in the same directory so the final rename never crosses a filesystem. */
export function tempPathFor(target: string): string {
  const dir = path.dirname(target);
  const base = path.basename(target);
  return path.join(dir, `.${base}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** fsync a directory so a rename/unlink inside it is durable. Some platforms refuse; that is not fatal. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(dir, 'r');
    await fh.sync();
  } catch (e) {
    const code = e instanceof Error ? (e as NodeJS.ErrnoException).code : undefined;
    if (!['EISDIR', 'EINVAL', 'EPERM', 'EACCES', 'ENOTSUP'].includes(code ?? '')) throw e;
  } finally {
    await fh?.close();
  }
}

/** Bytes per write call in writeAll: small, so that hashing a chunk overlaps its write. */
const WRITE_CHUNK = 4 * 1024 * 1024;
/** writeAll starts writeback of what it wrote (an fdatasync) every this many bytes. */
const WRITEBACK_BYTES = 32 * 1024 * 1024;

async function writeChunk(fh: fsp.FileHandle, chunk: Uint8Array): Promise<void> {
  for (let done = 0; done < chunk.byteLength;) {
    const { bytesWritten } = await fh.write(chunk, done, chunk.byteLength - done);
    if (bytesWritten <= 0) throw new Error('short write');
    done += bytesWritten;
  }
}

/**
 * Writes `parts` back to back at the handle's current position, feeding an optional hash. Each
 * chunk's write runs on the libuv pool while this thread hashes the same chunk, and every
 * WRITEBACK_BYTES an fdatasync starts (one in flight, not awaited until the next) so the disk
 * works while we hash and the caller's closing fsync has little left to flush.
 */
export async function writeAll(
  fh: fsp.FileHandle,
  parts: Uint8Array | readonly Uint8Array[],
  hash?: ReturnType<typeof createHash>,
): Promise<void> {
  let writeback: Promise<void> | undefined;
  let unsynced = 0;
  try {
    for (const part of parts instanceof Uint8Array ? [parts] : parts) {
      for (let off = 0; off < part.byteLength; off += WRITE_CHUNK) {
        const chunk = part.subarray(off, off + WRITE_CHUNK);
        const written = writeChunk(fh, chunk);
        try {
          hash?.update(chunk);
        } finally {
          await written;
        }
        unsynced += chunk.byteLength;
        if (unsynced >= WRITEBACK_BYTES) {
          await writeback;
          writeback = fh.datasync();
          unsynced = 0;
        }
      }
    }
  } catch (e) {
    await writeback?.catch(() => undefined);
    throw e;
  }
  await writeback;
}

/**
 * Creates `target` atomically: `produce` writes into a temp file in the same directory which is
 * fsync'd, closed and renamed over `target`, then the directory is fsync'd. On failure the temp
 * file is removed and `target` is left untouched.
 */
export async function atomicWrite<T>(target: string, produce: (fh: fsp.FileHandle) => Promise<T>): Promise<T> {
  const tmp = tempPathFor(target);
  const fh = await fsp.open(tmp, 'wx', 0o644);
  let ok = false;
  try {
    const result = await produce(fh);
    await fh.sync();
    await fh.close();
    await fsp.rename(tmp, target);
    ok = true;
    await fsyncDir(path.dirname(target));
    return result;
  } finally {
    if (!ok) {
      await fh.close().catch(() => undefined);
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
    }
  }
}

/**
 * Writes text or bytes (parts back to back) atomically; returns the size and the sha256 of what was
 * written. `createDir` makes the target's directory first (a cache); otherwise it must exist.
 */
export async function atomicWriteFile(
  target: string,
  data: string | Uint8Array | readonly Uint8Array[],
  opts: { createDir?: boolean } = {},
): Promise<{ sizeBytes: number; sha256: string }> {
  const parts = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
  if (opts.createDir) await fsp.mkdir(path.dirname(target), { recursive: true });
  const hash = createHash('sha256');
  await atomicWrite(target, (fh) => writeAll(fh, parts, hash));
  return { sizeBytes: parts.reduce((n, p) => n + p.byteLength, 0), sha256: hash.digest('hex') };
}
