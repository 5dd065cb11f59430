import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { atomicWriteFile } from '../files/atomic-write';
import type { Document } from './corpus';
import type { SentenceSource } from './sentence-source';
import { splitSentences } from './sentences';
import type { TextTokenizer } from './tokenizer';

/**
 * The corpus tokenized once: all documents' token ids back to back in one
 * Int32Array (no separators), with sentence and document boundaries as
 * offset tables — the same idea as Megatron's .bin/.idx pair. Datasets take
 * zero-copy subarrays from it instead of re-tokenizing.
 *
 * Sentence s covers tokens [sentenceStarts[s], sentenceStarts[s+1]);
 * document d covers sentences [documentSentenceStarts[d], documentSentenceStarts[d+1]).
 * Sentences that tokenize to nothing are not recorded, so every sentence is non-empty.
 */
export class TokenStore implements SentenceSource {
  constructor(
    readonly tokens: Int32Array,
    readonly sentenceStarts: Uint32Array,
    readonly documentSentenceStarts: Uint32Array,
    readonly documentIds: readonly string[],
    /** Whether this process read the cache or tokenized the corpus itself. */
    readonly origin: 'cache' | 'tokenized',
    /** Wall time to obtain the store (read or tokenize + write). */
    readonly elapsedMillis: number,
  ) {}

  get documentCount(): number {
    return this.documentIds.length;
  }

  get sentenceCount(): number {
    return this.sentenceStarts.length - 1;
  }

  documentTokenStart(document: number): number {
    return this.sentenceStarts[this.documentSentenceStarts[document]];
  }

  documentTokenEnd(document: number): number {
    return this.sentenceStarts[this.documentSentenceStarts[document + 1]];
  }

  documentTokens(document: number): Int32Array {
    return this.tokens.subarray(this.documentTokenStart(document), this.documentTokenEnd(document));
  }

  readTokens(start: number, end: number): Int32Array {
    return this.tokens.subarray(start, end);
  }
}

export interface TokenStoreRequest {
  documents: readonly Document[];
  /** Identifies `documents` in the cache key, e.g. fingerprintDocuments(documents). */
  corpusKey: string;
  tokenizer: TextTokenizer;
  cacheDir: string;
}

// Bump when the file layout or the sentence splitter changes.
const STORE_FORMAT_VERSION = 1;
const MAGIC = Buffer.from('PTTOKST1', 'latin1');
// Sentences per encodeBatch call: large enough to keep tokenizers' thread pool
// busy, small enough not to hold the whole corpus' encodings at once.
const SENTENCES_PER_ENCODE_CALL = 4096;

interface StoreHeader {
  formatVersion: number;
  tokenizerHash: string;
  corpusKey: string;
  littleEndian: boolean;
  documentIds: string[];
  sentenceCount: number;
  tokenCount: number;
}

/** Reads the cached store for (tokenizer, corpus) or tokenizes the corpus and caches it. */
export async function loadOrBuildTokenStore(request: TokenStoreRequest): Promise<TokenStore> {
  const startedAt = performance.now();
  const cachePath = tokenStoreCachePath(request);
  const cached = tryReadStore(cachePath, request, startedAt);
  if (cached) return cached;

  const { tokens, sentenceStarts, documentSentenceStarts } = await tokenizeDocuments(request);
  const documentIds = request.documents.map((doc) => doc.id);
  await writeStore(cachePath, request, documentIds, tokens, sentenceStarts, documentSentenceStarts);
  return new TokenStore(
    tokens,
    sentenceStarts,
    documentSentenceStarts,
    documentIds,
    'tokenized',
    performance.now() - startedAt,
  );
}

export function tokenStoreCachePath(request: Pick<TokenStoreRequest, 'corpusKey' | 'tokenizer' | 'cacheDir'>): string {
  const key = crypto
    .createHash('sha256')
    .update(`format ${STORE_FORMAT_VERSION}|${request.tokenizer.hash}|${request.corpusKey}`)
    .digest('hex')
    .slice(0, 24);
  return path.join(request.cacheDir, 'token-stores', `${key}.ptok`);
}

async function tokenizeDocuments(request: TokenStoreRequest): Promise<{
  tokens: Int32Array;
  sentenceStarts: Uint32Array;
  documentSentenceStarts: Uint32Array;
}> {
  const { documents, tokenizer } = request;
  const sentencesPerDocument = new Uint32Array(documents.length);
  const sentenceLengths: number[] = [];
  const tokenChunks: Int32Array[] = [];
  let pendingTexts: string[] = [];
  let pendingDocuments: number[] = [];

  const encodePending = async (): Promise<void> => {
    const encoded = await tokenizer.encodeBatch(pendingTexts);
    let chunkLength = 0;
    for (const ids of encoded) chunkLength += ids.length;
    const chunk = new Int32Array(chunkLength);
    let offset = 0;
    encoded.forEach((ids, i) => {
      if (ids.length === 0) return; // whitespace-only piece
      chunk.set(ids, offset);
      offset += ids.length;
      sentenceLengths.push(ids.length);
      sentencesPerDocument[pendingDocuments[i]]++;
    });
    tokenChunks.push(chunk);
    pendingTexts = [];
    pendingDocuments = [];
  };

  for (let document = 0; document < documents.length; document++) {
    for (const sentence of splitSentences(documents[document].text)) {
      pendingTexts.push(sentence);
      pendingDocuments.push(document);
      if (pendingTexts.length >= SENTENCES_PER_ENCODE_CALL) await encodePending();
    }
  }
  await encodePending();

  const tokens = concatInt32(tokenChunks);
  const sentenceStarts = new Uint32Array(sentenceLengths.length + 1);
  for (let s = 0; s < sentenceLengths.length; s++) sentenceStarts[s + 1] = sentenceStarts[s] + sentenceLengths[s];
  const documentSentenceStarts = new Uint32Array(documents.length + 1);
  for (let d = 0; d < documents.length; d++) {
    documentSentenceStarts[d + 1] = documentSentenceStarts[d] + sentencesPerDocument[d];
  }
  return { tokens, sentenceStarts, documentSentenceStarts };
}

function concatInt32(chunks: readonly Int32Array[]): Int32Array {
  const total = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  const joined = new Int32Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    joined.set(chunk, offset);
    offset += chunk.length;
  }
  return joined;
}

/**
 * File layout: magic (8 bytes), header length (uint32 LE), header JSON padded
 * with spaces to a 4-byte boundary, then documentSentenceStarts (uint32),
 * sentenceStarts (uint32) and tokens (int32), in native byte order (the
 * header records it; a cache is not meant to move between architectures).
 */
async function writeStore(
  cachePath: string,
  request: TokenStoreRequest,
  documentIds: string[],
  tokens: Int32Array,
  sentenceStarts: Uint32Array,
  documentSentenceStarts: Uint32Array,
): Promise<void> {
  const header: StoreHeader = {
    formatVersion: STORE_FORMAT_VERSION,
    tokenizerHash: request.tokenizer.hash,
    corpusKey: request.corpusKey,
    littleEndian: os.endianness() === 'LE',
    documentIds,
    sentenceCount: sentenceStarts.length - 1,
    tokenCount: tokens.length,
  };
  let headerText = JSON.stringify(header);
  while ((MAGIC.length + 4 + Buffer.byteLength(headerText)) % 4 !== 0) headerText += ' ';
  const headerBytes = Buffer.from(headerText, 'utf8');
  const headerLength = Buffer.alloc(4);
  headerLength.writeUInt32LE(headerBytes.length);
  const bytesOf = (array: Uint32Array | Int32Array): Uint8Array =>
    new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  await atomicWriteFile(
    cachePath,
    [MAGIC, headerLength, headerBytes, bytesOf(documentSentenceStarts), bytesOf(sentenceStarts), bytesOf(tokens)],
    { createDir: true },
  );
}

function tryReadStore(cachePath: string, request: TokenStoreRequest, startedAt: number): TokenStore | null {
  if (!fs.existsSync(cachePath)) return null;
  let file = fs.readFileSync(cachePath);
  if (file.length < MAGIC.length + 4 || !file.subarray(0, MAGIC.length).equals(MAGIC)) return null;
  const headerLength = file.readUInt32LE(MAGIC.length);
  const arraysStart = MAGIC.length + 4 + headerLength;
  let header: StoreHeader;
  try {
    header = JSON.parse(file.toString('utf8', MAGIC.length + 4, arraysStart)) as StoreHeader;
  } catch {
    return null;
  }
  const documentCount = request.documents.length;
  const matches =
    header.formatVersion === STORE_FORMAT_VERSION &&
    header.tokenizerHash === request.tokenizer.hash &&
    header.corpusKey === request.corpusKey &&
    header.littleEndian === (os.endianness() === 'LE') &&
    header.documentIds.length === documentCount &&
    file.length === arraysStart + 4 * (documentCount + 1 + header.sentenceCount + 1 + header.tokenCount);
  if (!matches) return null; // stale or truncated: rebuild

  // Typed-array views need 4-byte-aligned offsets into the ArrayBuffer.
  if (file.byteOffset % 4 !== 0) file = Buffer.from(file);
  let offset = file.byteOffset + arraysStart;
  const view = <T>(make: (buffer: ArrayBufferLike, byteOffset: number, length: number) => T, length: number): T => {
    const array = make(file.buffer, offset, length);
    offset += 4 * length;
    return array;
  };
  const documentSentenceStarts = view((b, o, n) => new Uint32Array(b, o, n), documentCount + 1);
  const sentenceStarts = view((b, o, n) => new Uint32Array(b, o, n), header.sentenceCount + 1);
  const tokens = view((b, o, n) => new Int32Array(b, o, n), header.tokenCount);
  return new TokenStore(
    tokens,
    sentenceStarts,
    documentSentenceStarts,
    header.documentIds,
    'cache',
    performance.now() - startedAt,
  );
}
