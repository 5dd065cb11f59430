// preprocess.ts — `paratrain preprocess`: text files, directories and JSON lines tokenized once into
// Megatron's .bin/.idx pairs (indexed-dataset.ts), streaming and in parallel. Documents are read one
// at a time (corpus.ts's rules), sent in batches to worker threads, and written in input order; at
// most 2 batches per worker are in flight, so memory is bounded whatever the input size.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { corpusDocuments, corpusFilePaths, fingerprintDocuments, type CorpusOptions, type Document } from './corpus';
import { PREPROCESS_INPUT } from './documents';
import { DataError } from './errors';
import { IndexedDatasetWriter, tokenDtypeFor } from './indexed-dataset';
import type { PreprocessWorkerData, TokenizeReply, TokenizeRequest } from './preprocess-worker';
import { loadOrTrainTokenizer, TextTokenizer, type TokenizerKind } from './tokenizer';

export interface PreprocessOptions {
  /** Files, directories (their .txt / .jsonl files) or globs of files (`*` and `?` in the last part). */
  inputs: string[];
  outputPrefix: string;
  /** A tokenizer.json, or 'auto': train one (tokenizerKind, vocabSize) on the first 100 MB of input. */
  tokenizer: string;
  tokenizerKind?: TokenizerKind;
  vocabSize?: number;
  /** 'auto' wordpiece: false keeps case (BERT cased); lower-cased by default. */
  lowercase?: boolean;
  cacheDir?: string;
  /** JSON lines: one output pair per key. Plain text files are read under the first key. */
  jsonKeys?: string[];
  /** Sequences are sentences (BERT-style data, `_sentence`), not whole documents (`_document`). */
  splitSentences?: boolean;
  /** Append the end-of-document token (GPT's <|endoftext|>, BERT's [SEP], RoBERTa's </s>). */
  appendEod?: boolean;
  workers?: number;
  corpus?: Omit<CorpusOptions, 'jsonKey'>;
  onProgress?: (p: PreprocessProgress) => void;
}

export interface PreprocessProgress {
  key: string;
  documents: number;
  tokens: number;
  /** Characters of text read so far (as UTF-16 units), and the input files' total bytes. */
  chars: number;
  inputBytes: number;
  seconds: number;
}

export interface PreprocessOutput {
  key: string;
  prefix: string;
  documents: number;
  sequences: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
}

const BATCH_CHARS = 1 << 20;
const AUTO_TOKENIZER_CHARS = 100e6;

/** The input files: each named file, each directory as is (corpus rules), each glob expanded. */
export function expandInputs(inputs: readonly string[]): string[] {
  const out: string[] = [];
  for (const input of inputs) {
    const base = path.basename(input);
    if (!/[*?]/.test(base)) {
      out.push(path.resolve(input));
      continue;
    }
    const directory = path.resolve(path.dirname(input));
    if (/[*?]/.test(directory))
      throw new DataError('ERR_DATA_CONFIG', `--input ${input}: only its last part may hold * or ?`);
    const pattern = new RegExp(
      `^${base
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.')}$`,
    );
    const matches = fs.existsSync(directory)
      ? fs
          .readdirSync(directory)
          .filter((name) => pattern.test(name))
          .sort()
      : [];
    if (matches.length === 0) throw new DataError('ERR_DATA_NOT_FOUND', `--input ${input} matches no file`);
    out.push(...matches.map((name) => path.join(directory, name)));
  }
  return out;
}

function* documentsOf(
  inputs: readonly string[],
  key: string,
  corpus: PreprocessOptions['corpus'],
): Generator<Document> {
  for (const input of inputs) yield* corpusDocuments(input, { ...corpus, jsonKey: key, role: PREPROCESS_INPUT });
}

function inputBytes(inputs: readonly string[]): number {
  let total = 0;
  for (const input of inputs) for (const file of corpusFilePaths(input)) total += fs.statSync(file).size;
  return total;
}

async function tokenizerFor(opts: PreprocessOptions, inputs: string[], key: string): Promise<TextTokenizer> {
  const kind = opts.tokenizerKind ?? 'wordpiece';
  if (opts.lowercase === false && (opts.tokenizer !== 'auto' || kind !== 'wordpiece'))
    throw new DataError(
      'ERR_DATA_CONFIG',
      `--cased applies to the wordpiece tokenizer that --tokenizer auto trains ` +
        `(a tokenizer.json keeps its own normalizer, and byte-level BPE never lower-cases); remove --cased`,
    );
  if (opts.tokenizer !== 'auto') return TextTokenizer.fromFile(opts.tokenizer);
  const sample: Document[] = [];
  let chars = 0;
  for (const document of documentsOf(inputs, key, opts.corpus)) {
    sample.push(document);
    chars += document.text.length;
    if (chars >= AUTO_TOKENIZER_CHARS) break;
  }
  return loadOrTrainTokenizer({
    kind,
    vocabSize: opts.vocabSize ?? 30522,
    corpus: sample,
    corpusKey: fingerprintDocuments(sample),
    cacheDir: opts.cacheDir ?? '.paratrain-cache',
    lowercase: opts.lowercase,
  });
}

/** The token --append-eod ends each document with: <|endoftext|> (GPT-2 BPE), else [SEP] or </s>. */
export function endOfDocumentId(tokenizer: TextTokenizer): number {
  if (tokenizer.kind === 'bpe') return tokenizer.endOfTextId();
  return tokenizer.maskedLmSpecialIds().sep;
}

/** Megatron's output name: PREFIX_<key>_document or PREFIX_<key>_sentence. */
export function outputPrefixFor(prefix: string, key: string, splitSentences: boolean): string {
  return `${prefix}_${key}_${splitSentences ? 'sentence' : 'document'}`;
}

export async function preprocess(opts: PreprocessOptions): Promise<PreprocessOutput[]> {
  const inputs = expandInputs(opts.inputs);
  const keys = opts.jsonKeys && opts.jsonKeys.length > 0 ? opts.jsonKeys : ['text'];
  const workers = opts.workers ?? 1;
  if (!Number.isInteger(workers) || workers < 1)
    throw new DataError('ERR_DATA_CONFIG', `--workers must be a positive integer, got ${workers}`);
  const bytes = inputBytes(inputs);
  const outputs: PreprocessOutput[] = [];
  for (const key of keys) {
    const tokenizer = await tokenizerFor(opts, inputs, key);
    const prefix = outputPrefixFor(opts.outputPrefix, key, opts.splitSentences ?? false);
    outputs.push(await writeKey(opts, inputs, key, tokenizer, prefix, workers, bytes));
    fs.writeFileSync(`${opts.outputPrefix}_tokenizer.json`, tokenizer.toJSON());
  }
  return outputs;
}

async function writeKey(
  opts: PreprocessOptions,
  inputs: string[],
  key: string,
  tokenizer: TextTokenizer,
  prefix: string,
  workerCount: number,
  bytes: number,
): Promise<PreprocessOutput> {
  const started = performance.now();
  const data: PreprocessWorkerData = {
    tokenizerJson: tokenizer.toJSON(),
    splitSentences: opts.splitSentences ?? false,
    endOfDocumentId: opts.appendEod ? endOfDocumentId(tokenizer) : -1,
  };
  // Worker threads run JavaScript: from the sources (tests) take the built twin in dist/.
  const script = __filename.endsWith('.ts')
    ? path.join(__dirname, '..', '..', 'dist', 'data', 'preprocess-worker.js')
    : path.join(__dirname, 'preprocess-worker.js');
  const pool = Array.from({ length: workerCount }, () => new Worker(script, { workerData: data }));
  const writer = new IndexedDatasetWriter(prefix, tokenDtypeFor(tokenizer.vocabSize));
  const progress = { key, documents: 0, tokens: 0, chars: 0, inputBytes: bytes, seconds: 0 };
  let sequences = 0;
  try {
    const replies = new Map<number, TokenizeReply>();
    const waiting = new Map<number, (reply: TokenizeReply) => void>();
    let failure: Error | null = null;
    for (const worker of pool) {
      worker.on('message', (reply: TokenizeReply & { error?: string }) => {
        if (reply.error !== undefined) failure ??= new DataError('ERR_TOKENIZER', `tokenizing failed: ${reply.error}`);
        const resolve = waiting.get(reply.batch);
        if (resolve) {
          waiting.delete(reply.batch);
          resolve(reply);
        } else replies.set(reply.batch, reply);
      });
      worker.on('error', (error) => (failure ??= error));
    }
    const replyTo = (batch: number) =>
      new Promise<TokenizeReply>((resolve) => {
        const ready = replies.get(batch);
        if (ready) {
          replies.delete(batch);
          resolve(ready);
        } else waiting.set(batch, resolve);
      });
    const write = (reply: TokenizeReply) => {
      let at = 0,
        s = 0;
      for (const count of reply.sequencesPerDocument) {
        if (count === 0) continue; // a document without a token is left out, as Megatron does
        for (let k = 0; k < count; k++, s++) {
          const length = reply.sequenceLengths[s];
          writer.addSequence(reply.tokens.subarray(at, at + length));
          at += length;
          progress.tokens += length;
          sequences++;
        }
        writer.endDocument();
        progress.documents++;
      }
    };

    const inFlight: Array<Promise<TokenizeReply>> = [];
    let batch = 0;
    let texts: string[] = [];
    let chars = 0;
    const send = async () => {
      const request: TokenizeRequest = { batch, texts };
      pool[batch % pool.length].postMessage(request);
      inFlight.push(replyTo(batch));
      batch++;
      texts = [];
      chars = 0;
      if (inFlight.length >= 2 * pool.length) write(await inFlight.shift()!);
      if (failure) throw failure;
      progress.seconds = (performance.now() - started) / 1000;
      opts.onProgress?.({ ...progress });
    };
    for (const document of documentsOf(inputs, key, opts.corpus)) {
      texts.push(document.text);
      chars += document.text.length;
      progress.chars += document.text.length;
      if (chars >= BATCH_CHARS) await send();
    }
    if (texts.length > 0) await send();
    while (inFlight.length > 0) write(await inFlight.shift()!);
    if (failure) throw failure;
    if (progress.documents === 0)
      throw new DataError('ERR_CORPUS', `the inputs hold no text to tokenize: ${inputs.join(', ')}`);
    writer.finish();
  } catch (error) {
    writer.abort();
    throw error;
  } finally {
    await Promise.all(pool.map((worker) => worker.terminate()));
  }
  const seconds = (performance.now() - started) / 1000;
  opts.onProgress?.({ ...progress, seconds });
  return {
    key,
    prefix,
    documents: progress.documents,
    sequences,
    tokens: progress.tokens,
    seconds,
    tokensPerSecond: progress.tokens / seconds,
  };
}
