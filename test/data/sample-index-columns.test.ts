// openOrBuildSampleIndexColumns: an index read an element at a time from its file. Built once and
// written, then read back without building; the same file as loadOrBuildSampleIndex reads whole; the
// values come from the file as it is now (positional reads, nothing copied at open); a damaged file is
// rebuilt; with nowhere writable the built arrays serve from memory. Real files throughout.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadOrBuildSampleIndex, openOrBuildSampleIndexColumns } from '../../src/data/sample-index-cache';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-pidx-columns-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

const first = Uint32Array.from({ length: 1001 }, (_, i) => i * 7);
const starts = Float64Array.from({ length: 3 }, (_, i) => 2 ** 40 + i);

function request(folder: string, builds: { count: number }) {
  return {
    kind: 'test',
    stem: path.join(folder, 'books_text_sentence'),
    cacheDir: path.join(folder, 'cache'),
    inputs: { idx: { bytes: 1 }, bin: { bytes: 2 }, documents: [0, 10] },
    identity: ['idx', 'bin'],
    build: () => {
      builds.count++;
      return { first: first.slice(), starts: starts.slice() };
    },
  };
}

describe('sample-index columns', () => {
  it('are built and written once, then read from the file element by element', async () => {
    const folder = path.join(scratch, 'read');
    fs.mkdirSync(folder);
    const builds = { count: 0 };
    const built = await openOrBuildSampleIndexColumns(request(folder, builds));
    expect([built.origin, builds.count]).toEqual(['built', 1]);
    expect(built.file).toMatch(/books_text_sentence\.test-[0-9a-f]{16}\.pidx$/);
    expect(built.arrays.first.length).toBe(1001);
    expect(Array.from({ length: 1001 }, (_, i) => built.arrays.first.get(i))).toEqual(Array.from(first));
    expect([0, 1, 2].map((i) => built.arrays.starts.get(i))).toEqual(Array.from(starts));
    expect(() => built.arrays.first.get(1001)).toThrow(RangeError);

    const cached = await openOrBuildSampleIndexColumns(request(folder, builds));
    expect([cached.origin, cached.file, builds.count]).toEqual(['cache', built.file, 1]);
    expect(cached.arrays.first.get(1000)).toBe(7000);
    // The file loadOrBuildSampleIndex reads whole, unchanged in format.
    const whole = await loadOrBuildSampleIndex(request(folder, builds));
    expect([whole.origin, builds.count]).toEqual(['cache', 1]);
    expect(whole.arrays.first).toEqual(first);
    expect(whole.arrays.starts).toEqual(starts);

    // Element 5 is read when asked for: rewritten in place, the open columns give the new value.
    const file = cached.file as string;
    const bytes = fs.readFileSync(file);
    const at = bytes.length - 8 * 3 - 4 * 1001 - 4; // first is padded to 8: 1001 × 4 + 4
    expect(bytes.readUInt32LE(at + 4 * 5)).toBe(35);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.from([99, 0, 0, 0]), 0, 4, at + 4 * 5);
    fs.closeSync(fd);
    expect(cached.arrays.first.get(5)).toBe(99);
  });

  it('are rebuilt from a damaged file, and served from memory when nowhere is writable', async () => {
    const folder = path.join(scratch, 'damaged');
    fs.mkdirSync(folder);
    const builds = { count: 0 };
    const built = await openOrBuildSampleIndexColumns(request(folder, builds));
    fs.truncateSync(built.file as string, fs.statSync(built.file as string).size - 8);
    const rebuilt = await openOrBuildSampleIndexColumns(request(folder, builds));
    expect([rebuilt.origin, rebuilt.file, builds.count]).toEqual(['built', built.file, 2]);
    expect(rebuilt.arrays.starts.get(2)).toBe(2 ** 40 + 2);

    if (process.getuid?.() === 0) return; // root writes into read-only folders
    const locked = path.join(scratch, 'locked');
    fs.mkdirSync(locked);
    const req = { ...request(locked, builds), cacheDir: locked };
    fs.chmodSync(locked, 0o555);
    try {
      const memory = await openOrBuildSampleIndexColumns(req);
      expect([memory.origin, memory.file]).toEqual(['built', null]);
      expect(memory.arrays.first.get(1000)).toBe(7000);
    } finally {
      fs.chmodSync(locked, 0o755);
    }
  });
});
