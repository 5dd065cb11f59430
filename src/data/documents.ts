// From one file to its documents, streaming: the file is read in chunks and decoded as strict
// UTF-8 (an empty or binary file is named), its lines are cut into documents at separator lines or
// one per JSON object, and a document longer than maxChars is cut at the last line break before the
// limit as soon as it grows past it, so memory stays bounded by the longest document kept.
import * as fs from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { DataError } from './errors';

/**
 * Where one document ends and the next begins in a user's text file:
 * - 'auto' (default): a single file is split at blank lines; in a directory each file is one document;
 * - 'blank-line': at every run of blank (whitespace-only) lines;
 * - 'file': each file is one document;
 * - any other text: at every line that, trimmed, equals it (e.g. '<|endoftext|>'); blank lines stay inside.
 */
export type DocumentSeparator = 'auto' | 'blank-line' | 'file' | (string & {});

/** What a text file is to the run, for messages: e.g. the corpus, or a fine-tuning data file. */
export interface TextFileRole {
  noun: string;
  code: 'ERR_CORPUS' | 'ERR_TASK_DATA';
  /** What to do about an empty file. */
  whenEmpty: string;
  /** What to give instead of a file that is not text; the default says to convert it. */
  whenNotText?: string;
}

export const CORPUS_FILE: TextFileRole = {
  noun: 'corpus file',
  code: 'ERR_CORPUS',
  whenEmpty: 'put text in it or point data.corpus elsewhere',
  whenNotText:
    'give data.corpus UTF-8 text or JSON lines, or a preprocessed dataset as data.path (its .bin/.idx prefix)',
};

/** A file `paratrain preprocess --input` reads. */
export const PREPROCESS_INPUT: TextFileRole = {
  noun: 'input file',
  code: 'ERR_CORPUS',
  whenEmpty: 'put text in it or give --input another file',
  whenNotText:
    'preprocess reads UTF-8 text or JSON lines; a .bin/.idx pair is preprocessed already: train on it with ' +
    'data.path=PREFIX',
};

function emptyFile(filePath: string, role: TextFileRole): DataError {
  return new DataError(role.code, `${role.noun} ${filePath} is empty; ${role.whenEmpty}`);
}

function notText(filePath: string, role: TextFileRole, why: string): DataError {
  return new DataError(
    role.code,
    `${role.noun} ${filePath} is not text (${why}); ${role.whenNotText ?? 'convert the file to UTF-8 text first'}`,
  );
}

const SNIFF_BYTES = 64 * 1024;

/**
 * What the first 64 KiB of a file are: 'empty', 'text', or why they are not text ('a NUL byte at
 * offset N', 'not valid UTF-8'), for a file that should not have been text-or-not in the first place
 * (data.path names a .bin/.idx prefix, not a file).
 */
export function sniffText(filePath: string): 'empty' | 'text' | { notText: string } {
  const fd = fs.openSync(filePath, 'r');
  try {
    const head = Buffer.alloc(SNIFF_BYTES);
    const n = fs.readSync(fd, head, 0, SNIFF_BYTES, 0);
    if (n === 0) return 'empty';
    const bytes = head.subarray(0, n);
    const nul = bytes.indexOf(0);
    if (nul >= 0) return { notText: `a NUL byte at offset ${nul}` };
    try {
      // stream: a character cut at the 64 KiB mark is not an error
      new TextDecoder('utf-8', { fatal: true }).decode(bytes, { stream: n === SNIFF_BYTES });
    } catch {
      return { notText: 'not valid UTF-8' };
    }
    return 'text';
  } finally {
    fs.closeSync(fd);
  }
}

/** A whole file as text (line ends normalised), or a message naming it when it is missing, empty or not UTF-8 text. */
export function readTextFile(filePath: string, role: TextFileRole = CORPUS_FILE): string {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(filePath);
  } catch (error) {
    throw new DataError('ERR_DATA_NOT_FOUND', `cannot read ${role.noun} ${filePath}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (bytes.length === 0) throw emptyFile(filePath, role);
  const nul = bytes.indexOf(0);
  if (nul >= 0) throw notText(filePath, role, `a NUL byte at offset ${nul}`);
  if (!isUtf8(bytes)) throw notText(filePath, role, 'not valid UTF-8');
  return normaliseLineEnds(bytes.toString('utf8'));
}

/** Drop a byte-order mark and Windows line ends so the same text tokenizes the same everywhere. */
export function normaliseLineEnds(text: string): string {
  return text.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n');
}

const CHUNK_BYTES = 1 << 20;

/**
 * The lines of a file without their line ends (a final line break ends the last line; it does not
 * start an empty one), read 1 MiB at a time. `skipEmpty`: an empty file yields nothing instead of
 * failing.
 */
export function* fileLines(filePath: string, role: TextFileRole = CORPUS_FILE, skipEmpty = false): Generator<string> {
  const fd = fs.openSync(filePath, 'r');
  try {
    const decoder = new TextDecoder('utf-8', { fatal: true }); // drops a byte-order mark
    const chunk = Buffer.alloc(CHUNK_BYTES);
    let rest = ''; // the unfinished last line (and a '\r' that may be half of '\r\n')
    for (let offset = 0; ;) {
      const n = fs.readSync(fd, chunk, 0, CHUNK_BYTES, offset);
      if (n === 0 && offset === 0) {
        if (skipEmpty) return;
        throw emptyFile(filePath, role);
      }
      const bytes = chunk.subarray(0, n);
      const nul = bytes.indexOf(0);
      if (nul >= 0) throw notText(filePath, role, `a NUL byte at offset ${offset + nul}`);
      let text: string;
      try {
        text = rest + decoder.decode(bytes, { stream: n > 0 });
      } catch {
        throw notText(filePath, role, 'not valid UTF-8');
      }
      offset += n;
      const heldReturn = n > 0 && text.endsWith('\r');
      if (heldReturn) text = text.slice(0, -1);
      const lines = text.replace(/\r\n?/g, '\n').split('\n');
      const last = lines.pop()!;
      for (const line of lines) yield line;
      if (n === 0) {
        if (last !== '') yield last;
        return;
      }
      rest = last + (heldReturn ? '\r' : '');
    }
  } finally {
    fs.closeSync(fd);
  }
}

export interface DocumentRules {
  /** 'blank-line', 'file' or a separator line ('auto' is resolved by the caller). */
  splitAt: Exclude<DocumentSeparator, 'auto'>;
  /** 0 = no limit. */
  maxChars: number;
  /** JSON lines: the field holding the text; undefined for plain text. */
  jsonKey?: string;
  /** Whose file it is, for messages (default: the corpus). */
  role?: TextFileRole;
}

/** The documents of one file, in order (empty ones skipped). */
export function* fileDocuments(filePath: string, rules: DocumentRules, skipEmptyFile = false): Generator<string> {
  const pending: string[] = [];
  let pendingLength = 0;
  // Emits the pieces of the pending text that are complete: all of it at a document's end, else
  // the pieces cut off while it is longer than maxChars.
  function* flush(documentEnds: boolean): Generator<string> {
    let text = pending.join('\n');
    if (rules.maxChars > 0) {
      while (text.length > rules.maxChars) {
        const cut = cutPoint(text, rules.maxChars);
        const piece = text.slice(0, cut);
        if (piece.trim() !== '') yield piece;
        text = text.slice(cut);
      }
    }
    pending.length = 0;
    pendingLength = 0;
    if (documentEnds) {
      if (text.trim() !== '') yield text;
    } else {
      pending.push(text);
      pendingLength = text.length;
    }
  }

  const separator = rules.splitAt === 'blank-line' ? '' : rules.splitAt.trim();
  let lineNumber = 0;
  for (const line of fileLines(filePath, rules.role ?? CORPUS_FILE, skipEmptyFile)) {
    lineNumber++;
    if (rules.jsonKey !== undefined) {
      if (line.trim() === '') continue;
      pending.push(jsonText(line, `${filePath}:${lineNumber}`, rules.jsonKey));
      yield* flush(true);
    } else if (rules.splitAt !== 'file' && line.trim() === separator) {
      yield* flush(true);
    } else {
      pending.push(line);
      pendingLength += line.length + 1;
      if (rules.maxChars > 0 && pendingLength > 2 * rules.maxChars) yield* flush(false);
    }
  }
  yield* flush(true);
}

/**
 * One line of a JSON-lines file as an object, or a `code` error at `where` (file:line) saying what
 * the line should hold (`wants`, e.g. 'a "text" field').
 */
export function parseJsonLine(
  line: string,
  where: string,
  code: TextFileRole['code'],
  wants: string,
): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new DataError(
      code,
      `${where}: not JSON (${(error as Error).message}); expected one JSON object per line, with ${wants}`,
    );
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const what = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
    throw new DataError(code, `${where}: expected a JSON object with ${wants}, got ${what}`);
  }
  return value as Record<string, unknown>;
}

function jsonText(line: string, where: string, key: string): string {
  const value = parseJsonLine(line, where, 'ERR_CORPUS', `a "${key}" field`);
  const field = value[key];
  if (typeof field !== 'string') {
    const keys = Object.keys(value).slice(0, 8).join(', ') || 'none';
    throw new DataError(
      'ERR_CORPUS',
      `${where}: the object has no string field "${key}" (its fields: ${keys}); ` +
        `set data.json_key to the field that holds the text`,
    );
  }
  return normaliseLineEnds(field);
}

/**
 * Where to end a piece of at most maxChars characters: after the last line break before the
 * limit, else after the last space, else at the limit (never inside a surrogate pair).
 */
function cutPoint(text: string, maxChars: number): number {
  let cut = text.lastIndexOf('\n', maxChars - 1) + 1;
  if (cut <= 0) cut = text.lastIndexOf(' ', maxChars - 1) + 1;
  if (cut <= 0) {
    const code = text.charCodeAt(maxChars - 1);
    cut = code >= 0xd800 && code <= 0xdbff ? maxChars - 1 : maxChars;
  }
  return cut;
}
