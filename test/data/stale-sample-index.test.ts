// Stale sample-index files: writing a new index removes the files of the same stem and kind whose
// header names other data files (request.identity), and nothing else: not another configuration's
// index of the same data, not another kind or stem, not a name outside the exact pattern, not a file
// that is no index. A read-only data folder is skipped. Real files throughout.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadOrBuildSampleIndex, sampleIndexPaths } from '../../src/data/sample-index-cache';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-stale-pidx-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** An index request of kind 'test' over data files identified by `version`, for documents [first, end). */
function request(folder: string, version: number, documents: [number, number], identity = ['idx', 'bin']) {
  return {
    kind: 'test',
    stem: path.join(folder, 'web_text_document'),
    cacheDir: `${folder}-cache`,
    inputs: { idx: { bytes: 100 + version }, bin: { bytes: 200 }, documents },
    identity,
    build: () => ({ values: new Uint32Array([version, documents[0], documents[1]]) }),
  };
}

const pidxFiles = (folder: string) =>
  fs
    .readdirSync(folder)
    .filter((f) => f.includes('.pidx'))
    .sort();

describe('stale sample-index files', () => {
  it('are removed when a new index of the same stem and kind is written; nothing else is', async () => {
    const folder = path.join(scratch, 'beside');
    fs.mkdirSync(folder);
    const train = await loadOrBuildSampleIndex(request(folder, 1, [0, 90]));
    const valid = await loadOrBuildSampleIndex(request(folder, 1, [90, 99]));
    expect([train.origin, valid.origin]).toEqual(['built', 'built']);
    // Another split of the same files serves another configuration: both stay.
    expect(fs.existsSync(train.file as string)).toBe(true);

    // Look-alikes that must survive: another kind, another stem, names off the pattern, a non-index.
    const bytes = fs.readFileSync(train.file as string);
    const hash = path.basename(train.file as string).slice('web_text_document.test-'.length, -'.pidx'.length);
    const decoys = [
      `web_text_document.other-${hash}.pidx`,
      `books_text_document.test-${hash}.pidx`,
      `web_text_document.test-${hash}.pidx.bak`,
      `web_text_document.test-${hash.slice(1)}.pidx`,
      `web_text_document.test-${hash.toUpperCase()}.pidx`,
      `xweb_text_document.test-${hash}.pidx`,
    ];
    for (const name of decoys) fs.writeFileSync(path.join(folder, name), bytes);
    const notAnIndex = `web_text_document.test-${'0'.repeat(16)}.pidx`;
    fs.writeFileSync(path.join(folder, notAnIndex), 'not an index');
    fs.writeFileSync(path.join(folder, 'web_text_document.idx'), 'data stays');

    // The data files change: the next index written removes both of the old files' indices.
    const changed = await loadOrBuildSampleIndex(request(folder, 2, [0, 90]));
    expect(changed.origin).toBe('built');
    expect(Array.from(changed.arrays.values)).toEqual([2, 0, 90]);
    expect(fs.existsSync(train.file as string)).toBe(false);
    expect(fs.existsSync(valid.file as string)).toBe(false);
    expect(pidxFiles(folder)).toEqual([...decoys, notAnIndex, path.basename(changed.file as string)].sort());
    expect(fs.readFileSync(path.join(folder, 'web_text_document.idx'), 'utf8')).toBe('data stays');

    // The old files are gone, so asking for the old inputs builds them again (and removes the new one).
    const back = await loadOrBuildSampleIndex(request(folder, 1, [0, 90]));
    expect(back.origin).toBe('built');
    expect(fs.existsSync(changed.file as string)).toBe(false);
  });

  it('are kept when the request names no identity (the blend order)', async () => {
    const folder = path.join(scratch, 'no-identity');
    fs.mkdirSync(folder);
    const first = await loadOrBuildSampleIndex(request(folder, 1, [0, 9], []));
    const second = await loadOrBuildSampleIndex(request(folder, 2, [0, 9], []));
    expect(pidxFiles(folder)).toEqual([first.file, second.file].map((f) => path.basename(f as string)).sort());
  });

  // `chattr +i` makes a folder refuse new and removed files even to root (ext4 and root needed).
  const immutable = path.join(scratch, 'immutable');
  fs.mkdirSync(immutable);
  const canFreeze = spawnSync('chattr', ['+i', immutable]).status === 0;
  if (canFreeze) spawnSync('chattr', ['-i', immutable]);

  it.skipIf(!canFreeze)('skip a read-only data folder and still clean data.cache_dir', async () => {
    const old = await loadOrBuildSampleIndex(request(immutable, 1, [0, 9]));
    expect(old.file).toBe(sampleIndexPaths(request(immutable, 1, [0, 9])).beside);
    expect(spawnSync('chattr', ['+i', immutable]).status).toBe(0);
    try {
      // The folder refuses the new file (it goes to the cache) and the removal of the stale one.
      const second = await loadOrBuildSampleIndex(request(immutable, 2, [0, 9]));
      expect(second.file).toBe(sampleIndexPaths(request(immutable, 2, [0, 9])).fallback);
      expect(fs.existsSync(old.file as string)).toBe(true);
      // In the cache folder a stale file is removed as beside the data.
      const third = await loadOrBuildSampleIndex(request(immutable, 3, [0, 9]));
      expect(third.file).toBe(sampleIndexPaths(request(immutable, 3, [0, 9])).fallback);
      expect(fs.existsSync(second.file as string)).toBe(false);
      expect(fs.existsSync(third.file as string)).toBe(true);
      expect(fs.existsSync(old.file as string)).toBe(true);
    } finally {
      spawnSync('chattr', ['-i', immutable]);
    }
  });
});
