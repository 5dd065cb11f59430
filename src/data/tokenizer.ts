import * as crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  Tokenizer,
  WordPiece,
  bertNormalizer,
  bertPreTokenizer,
  bertProcessing,
  byteLevelAlphabet,
  wordPieceDecoder,
} from 'tokenizers';
import { atomicWriteFile } from '../files/atomic-write';
import type { Document } from './corpus';
import { DataError } from './errors';

/**
 * The tokenizer conventions:
 * - 'wordpiece': BERT-style ([PAD] [UNK] [CLS] [SEP] [MASK]; lowercased like bert-base-uncased unless
 *   trained cased, like bert-base-cased), for BERT, ALBERT, ELECTRA;
 * - 'bpe': GPT-2-style byte-level BPE with <|endoftext|>;
 * - 'roberta-bpe': byte-level BPE with RoBERTa's <s> <pad> </s> <unk> <mask>.
 */
export type TokenizerKind = 'wordpiece' | 'bpe' | 'roberta-bpe';

/** The special ids a masked-LM layout needs: [PAD] [UNK] [CLS] [SEP] [MASK] or <pad> <unk> <s> </s> <mask>. */
export interface MaskedLmSpecialIds {
  pad: number;
  unk: number;
  cls: number;
  sep: number;
  mask: number;
}

export interface BpeSpecialIds {
  /** `<|endoftext|>`, the document separator of the GPT stream. */
  eos: number;
}

export const WORDPIECE_SPECIAL_TOKENS: Readonly<Record<keyof MaskedLmSpecialIds, string>> = {
  pad: '[PAD]',
  unk: '[UNK]',
  cls: '[CLS]',
  sep: '[SEP]',
  mask: '[MASK]',
};
/** RoBERTa's specials, in the order of their ids in a trained 'roberta-bpe' tokenizer (<s>=0 ... <mask>=4). */
export const ROBERTA_SPECIAL_TOKENS: Readonly<Record<keyof MaskedLmSpecialIds, string>> = {
  cls: '<s>',
  pad: '<pad>',
  sep: '</s>',
  unk: '<unk>',
  mask: '<mask>',
};
export const END_OF_TEXT_TOKEN = '<|endoftext|>';
/** How byte-level BPE writes the space before a word (U+0120). */
const BYTE_LEVEL_SPACE = '\u0120';

/**
 * Bump whenever the training recipe below changes, so that cached tokenizers
 * trained by an older recipe are not reused under the same key.
 */
const TRAINING_RECIPE_VERSION = 1;
/**
 * The 'roberta-bpe' layout's own part of its cache key (the older kinds have
 * none, so their keys stay what they were): bump when only that layout changes.
 */
const ROBERTA_BPE_LAYOUT_VERSION = 1;

interface TokenizerModelJson {
  type: string;
  vocab: Record<string, number>;
  merges?: Array<[string, string] | string>;
  [key: string]: unknown;
}

/** The parts of a tokenizer.json this module reads or rewrites. */
interface TokenizerJson {
  model: TokenizerModelJson;
  added_tokens: Array<{ id: number; content: string; special: boolean; [key: string]: unknown }>;
  [key: string]: unknown;
}

/**
 * A Hugging Face tokenizer plus what the data pipeline needs to know about it
 * (kind, vocabulary size, special ids). Encoding never adds special tokens:
 * the datasets lay out [CLS]/[SEP]/<s>/</s>/<|endoftext|> themselves.
 */
export class TextTokenizer {
  readonly kind: TokenizerKind;
  /** Largest id + 1, i.e. the embedding rows the model needs. */
  readonly vocabSize: number;
  readonly specialIds: MaskedLmSpecialIds | BpeSpecialIds;
  /** sha256 of the tokenizer JSON: identifies the tokenizer in cache keys. */
  readonly hash: string;
  private readonly native: Tokenizer;
  private readonly json: string;
  private readonly specialIdSet: ReadonlySet<number>;

  private constructor(json: string, origin: string) {
    let parsed: TokenizerJson;
    try {
      parsed = JSON.parse(json) as TokenizerJson;
      this.native = Tokenizer.fromString(json);
    } catch (error) {
      throw new DataError('ERR_TOKENIZER', `cannot parse tokenizer ${origin}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    // A tokenizer.json from elsewhere may carry padding/truncation settings that would corrupt our layouts.
    this.native.disablePadding();
    this.native.disableTruncation();
    this.json = json;
    this.hash = crypto.createHash('sha256').update(json).digest('hex');

    const vocab = this.native.getVocab(true);
    // A loop, not Math.max(...ids): spreading a 250k-entry vocabulary would overflow the call stack.
    let largestId = -1;
    for (const id of Object.values(vocab)) largestId = Math.max(largestId, id);
    this.vocabSize = largestId + 1;
    const modelType = parsed.model?.type;
    if (modelType === 'WordPiece') {
      this.kind = 'wordpiece';
      this.specialIds = findSpecialIds(vocab, WORDPIECE_SPECIAL_TOKENS, origin, 'a WordPiece (BERT)');
    } else if (modelType === 'BPE' && isRobertaShaped(vocab)) {
      this.kind = 'roberta-bpe';
      this.specialIds = findSpecialIds(vocab, ROBERTA_SPECIAL_TOKENS, origin, 'a RoBERTa-style BPE');
    } else if (modelType === 'BPE') {
      this.kind = 'bpe';
      this.specialIds = findSpecialIds(vocab, { eos: END_OF_TEXT_TOKEN }, origin, 'a BPE (GPT)', [
        `a RoBERTa-style BPE needs ${Object.values(ROBERTA_SPECIAL_TOKENS).join(' ')} instead`,
      ]);
    } else {
      throw new DataError(
        'ERR_TOKENIZER',
        `tokenizer ${origin} has model type ${String(modelType)}; expected WordPiece (BERT) or BPE (GPT)`,
      );
    }
    const declaredSpecial = (parsed.added_tokens ?? []).filter((token) => token.special).map((token) => token.id);
    this.specialIdSet = new Set([...declaredSpecial, ...Object.values(this.specialIds)]);
  }

  static fromJSON(json: string, origin = '<in-memory JSON>'): TextTokenizer {
    return new TextTokenizer(json, origin);
  }

  static fromFile(filePath: string): TextTokenizer {
    let json: string;
    try {
      json = fs.readFileSync(filePath, 'utf8');
    } catch (error) {
      throw new DataError(
        'ERR_TOKENIZER',
        `tokenizer file ${path.resolve(filePath)} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'}); ` +
          'expected a Hugging Face tokenizer.json',
        { cause: error },
      );
    }
    return new TextTokenizer(json, path.resolve(filePath));
  }

  /**
   * pad, unk, cls, sep and mask ids for a masked-LM layout: [PAD] [UNK] [CLS]
   * [SEP] [MASK] of a 'wordpiece' tokenizer or <pad> <unk> <s> </s> <mask> of
   * a 'roberta-bpe' one; throws ERR_TOKENIZER for a GPT 'bpe' tokenizer.
   */
  maskedLmSpecialIds(): MaskedLmSpecialIds {
    if (this.kind === 'bpe') {
      throw new DataError(
        'ERR_TOKENIZER',
        `a masked-LM objective needs a tokenizer with mask, cls and sep tokens, but this is a GPT byte-level BPE ` +
          `tokenizer (${END_OF_TEXT_TOKEN} only); use a 'wordpiece' tokenizer ` +
          `(${Object.values(WORDPIECE_SPECIAL_TOKENS).join(' ')}) or a 'roberta-bpe' one ` +
          `(${Object.values(ROBERTA_SPECIAL_TOKENS).join(' ')})`,
      );
    }
    return this.specialIds as MaskedLmSpecialIds;
  }

  /** The `<|endoftext|>` id; throws ERR_TOKENIZER unless this is a GPT 'bpe' tokenizer. */
  endOfTextId(): number {
    if (this.kind !== 'bpe') {
      throw new DataError(
        'ERR_TOKENIZER',
        `a causal-LM (GPT) objective needs a byte-level BPE tokenizer with ${END_OF_TEXT_TOKEN}, got a ${this.kind} one`,
      );
    }
    return (this.specialIds as BpeSpecialIds).eos;
  }

  isSpecialId(id: number): boolean {
    return this.specialIdSet.has(id);
  }

  async encode(text: string): Promise<number[]> {
    const encoding = await this.native.encode(text, null, { addSpecialTokens: false });
    return encoding.getIds();
  }

  /**
   * Ids with each token's [start, end) in `text`, in UTF-16 code units (JavaScript string
   * offsets; the native tokenizer counts code points). Special tokens are never added.
   */
  async encodeWithOffsets(text: string): Promise<{ ids: number[]; offsets: Array<[number, number]> }> {
    const encoding = await this.native.encode(text, null, { addSpecialTokens: false });
    const offsets = encoding.getOffsets() as Array<[number, number]>;
    if (!/[\uD800-\uDFFF]/.test(text)) return { ids: encoding.getIds(), offsets };
    const unitAt: number[] = []; // code point index → UTF-16 offset
    let unit = 0;
    for (const ch of text) {
      unitAt.push(unit);
      unit += ch.length;
    }
    unitAt.push(unit);
    return { ids: encoding.getIds(), offsets: offsets.map(([a, b]) => [unitAt[a], unitAt[b]]) };
  }

  async encodeBatch(texts: string[]): Promise<number[][]> {
    if (texts.length === 0) return [];
    const encodings = await this.native.encodeBatch(texts, { addSpecialTokens: false });
    return encodings.map((encoding) => encoding.getIds());
  }

  async decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): Promise<string> {
    return this.native.decode([...ids], opts.skipSpecialTokens ?? false);
  }

  idToToken(id: number): string | null {
    return this.native.idToToken(id);
  }

  tokenToId(token: string): number | null {
    return this.native.tokenToId(token);
  }

  /**
   * For whole-word masking: entry id is 1 when token id continues the word of
   * the token before it: a WordPiece "##x" piece, or a byte-level BPE token
   * without the leading-space marker "Ġ" (RoBERTa, GPT-2). Special tokens are 0.
   */
  wordContinuationTable(): Uint8Array {
    const table = new Uint8Array(this.vocabSize);
    for (let id = 0; id < this.vocabSize; id++) {
      const token = this.native.idToToken(id);
      if (token === null || this.specialIdSet.has(id)) continue;
      table[id] = (this.kind === 'wordpiece' ? token.startsWith('##') : !token.startsWith(BYTE_LEVEL_SPACE)) ? 1 : 0;
    }
    return table;
  }

  /** The Hugging Face tokenizer.json text (loadable by HF tokenizers in any language). */
  toJSON(): string {
    return this.json;
  }
}

/**
 * A BPE vocabulary with RoBERTa's specials (e.g. any HF roberta-base
 * tokenizer.json, <mask>=50264) rather than GPT-2's <|endoftext|>. <unk> is
 * left out of the test so that a file lacking only it is named as such.
 */
function isRobertaShaped(vocab: Record<string, number>): boolean {
  const { cls, sep, pad, mask } = ROBERTA_SPECIAL_TOKENS;
  return [cls, sep, pad, mask].every((token) => Object.hasOwn(vocab, token));
}

function findSpecialIds<Name extends string>(
  vocab: Record<string, number>,
  tokens: Readonly<Record<Name, string>>,
  origin: string,
  description: string,
  alternatives: readonly string[] = [],
): Record<Name, number> {
  const ids = {} as Record<Name, number>;
  const missing: string[] = [];
  for (const name of Object.keys(tokens) as Name[]) {
    const id = vocab[tokens[name]];
    if (id === undefined) missing.push(tokens[name]);
    else ids[name] = id;
  }
  if (missing.length > 0) {
    throw new DataError(
      'ERR_TOKENIZER',
      `tokenizer ${origin} is ${description} tokenizer but lacks the special token(s) ${missing.join(', ')}; ` +
        `expected ${Object.values<string>(tokens).join(', ')} in its vocabulary` +
        alternatives.map((alternative) => ` (${alternative})`).join(''),
    );
  }
  return ids;
}

export interface TokenizerRequest {
  kind: TokenizerKind;
  /** Upper bound on the trained vocabulary (special tokens included). */
  vocabSize: number;
  /** Training text (ignored when `path` is given). */
  corpus: readonly Document[];
  /** Identifies `corpus` in the cache key, e.g. fingerprintDocuments(corpus). */
  corpusKey: string;
  cacheDir: string;
  /** An existing tokenizer.json to use instead of training. */
  path?: string;
  /**
   * WordPiece only: lower-case text before splitting (BERT uncased, the default), or keep case
   * (BERT cased), which keeps the capitals that mark names. A given `path` decides for itself.
   */
  lowercase?: boolean;
}

/**
 * Loads `path` if given; otherwise reuses a tokenizer cached under
 * (kind, vocabSize, corpusKey) or trains one and caches it.
 */
export async function loadOrTrainTokenizer(request: TokenizerRequest): Promise<TextTokenizer> {
  if (request.path !== undefined) {
    const tokenizer = TextTokenizer.fromFile(request.path);
    if (tokenizer.kind !== request.kind) {
      throw new DataError(
        'ERR_TOKENIZER',
        `tokenizer ${path.resolve(request.path)} is a ${tokenizer.kind} tokenizer but a ${request.kind} one is required ` +
          `(wordpiece: ${Object.values(WORDPIECE_SPECIAL_TOKENS).join(' ')}; bpe: byte-level BPE with ` +
          `${END_OF_TEXT_TOKEN}; roberta-bpe: byte-level BPE with ${Object.values(ROBERTA_SPECIAL_TOKENS).join(' ')})`,
      );
    }
    return tokenizer;
  }
  const cachePath = tokenizerCachePath(request);
  const cached = tryLoadCached(cachePath);
  if (cached) return cached;

  const lowercase = request.lowercase ?? true;
  const json = trainTokenizerJson(request.kind, request.vocabSize, request.corpus, lowercase);
  const tokenizer = TextTokenizer.fromJSON(json, `trained ${request.kind}`);
  await assertRoundTrip(tokenizer, request.corpus, lowercase);
  await atomicWriteFile(cachePath, json, { createDir: true });
  return tokenizer;
}

export function tokenizerCachePath(
  request: Pick<TokenizerRequest, 'kind' | 'vocabSize' | 'corpusKey' | 'cacheDir' | 'lowercase'>,
): string {
  // The older kinds' key must stay exactly this, so that their caches are reused.
  let layout = request.kind === 'roberta-bpe' ? `roberta-bpe ${ROBERTA_BPE_LAYOUT_VERSION}|` : '';
  const cased = request.kind === 'wordpiece' && request.lowercase === false;
  if (cased) layout = 'cased|';
  const key = crypto
    .createHash('sha256')
    .update(`recipe ${TRAINING_RECIPE_VERSION}|${layout}${request.corpusKey}`)
    .digest('hex')
    .slice(0, 20);
  const name = `${request.kind}${cased ? '-cased' : ''}-${request.vocabSize}-${key}.json`;
  return path.join(request.cacheDir, 'tokenizers', name);
}

function tryLoadCached(cachePath: string): TextTokenizer | null {
  if (!fs.existsSync(cachePath)) return null;
  try {
    return TextTokenizer.fromFile(cachePath);
  } catch {
    // A damaged cache entry is rebuilt rather than reported: it is ours, not the user's.
    return null;
  }
}

/**
 * Trains with tokenizers' built-in default trainer (the node binding exposes
 * no trainer options) and rewrites the result into the vocabulary we want.
 *
 * WordPiece is NOT trained with WordPiece.train(): its default trainer
 * numbers the "##x" continuation characters in hash-map order, so two runs
 * on the same text give different vocabularies, and two ranks racing to
 * build the cache could disagree. Instead a (deterministic) BPE is trained
 * on BERT-normalized, BERT-pre-tokenized words that each start with a marker
 * character; a learned piece with the marker is a word start ("the"), one
 * without is a continuation ("##ing"). This is the same pair-merge algorithm
 * the WordPiece trainer runs internally.
 */
function trainTokenizerJson(
  kind: TokenizerKind,
  vocabSize: number,
  corpus: readonly Document[],
  lowercase: boolean,
): string {
  if (corpus.length === 0 || corpus.every((doc) => doc.text.trim() === '')) {
    throw new DataError('ERR_DATA_CONFIG', 'cannot train a tokenizer on an empty corpus');
  }
  const { minimum, why } = MINIMUM_VOCAB[kind];
  if (!Number.isInteger(vocabSize) || vocabSize < minimum) {
    throw new DataError(
      'ERR_TOKENIZER',
      `vocabSize ${vocabSize} is too small for a ${kind} tokenizer (minimum ${minimum}${why ? `: ${why}` : ''})`,
    );
  }
  const scratchDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-tokenizer-'));
  try {
    const trainingFiles = writeTrainingFiles(corpus, scratchDir);
    const trainedPath = path.join(scratchDir, 'trained.json');
    trainInChildProcess(kind, trainingFiles, trainedPath, lowercase);
    const trained = JSON.parse(fs.readFileSync(trainedPath, 'utf8')) as TokenizerJson;
    if (kind === 'wordpiece') return buildWordPieceJson(trained, vocabSize, scratchDir, lowercase);
    if (kind === 'roberta-bpe') return buildRobertaBpeJson(trained, vocabSize);
    return buildByteLevelBpeJson(trained, vocabSize);
  } finally {
    fs.rmSync(scratchDir, { recursive: true, force: true });
  }
}

const MINIMUM_VOCAB: Readonly<Record<TokenizerKind, { minimum: number; why?: string }>> = {
  wordpiece: { minimum: 6 },
  bpe: { minimum: 257, why: `256 byte symbols + ${END_OF_TEXT_TOKEN}` },
  'roberta-bpe': { minimum: 261, why: `${Object.values(ROBERTA_SPECIAL_TOKENS).join(' ')} + 256 byte symbols` },
};

/**
 * The binding's train() writes progress lines straight to the process's stdout, which would break
 * the JSON-lines log on stdout; so training runs in a short-lived child whose stdout is discarded.
 */
function trainInChildProcess(kind: TokenizerKind, files: string[], outputPath: string, lowercase: boolean): void {
  const program = `
    const t = require(process.argv[1]);
    const [kind, marker, lowercase, out, ...files] = process.argv.slice(2);
    const tok = new t.Tokenizer(t.BPE.empty());
    if (kind === 'wordpiece') {
      tok.setNormalizer(t.bertNormalizer({ lowercase: lowercase === 'lowercase' }));
      tok.setPreTokenizer(t.sequencePreTokenizer([t.bertPreTokenizer(), t.metaspacePreTokenizer(marker, 'always', false)]));
    } else {
      tok.setPreTokenizer(t.byteLevelPreTokenizer(false));
    }
    tok.train(files);
    tok.save(out);`;
  const run = spawnSync(
    process.execPath,
    [
      '-e',
      program,
      require.resolve('tokenizers'),
      kind,
      WORD_START_MARKER,
      lowercase ? 'lowercase' : 'cased',
      outputPath,
      ...files,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' },
  );
  if (run.status !== 0 || !fs.existsSync(outputPath))
    throw new DataError('ERR_TOKENIZER', `training the ${kind} tokenizer failed: ${run.stderr || run.error?.message}`);
}

// A private-use character: marks word starts during WordPiece training and cannot clash with real text.
const WORD_START_MARKER = '\uE000';

function writeTrainingFiles(corpus: readonly Document[], directory: string): string[] {
  // A few files of a few MB each let the trainer read in parallel.
  const targetFileBytes = 4 << 20;
  const files: string[] = [];
  let pending: string[] = [];
  let pendingBytes = 0;
  const flush = (): void => {
    if (pending.length === 0) return;
    const filePath = path.join(directory, `corpus-${files.length}.txt`);
    fs.writeFileSync(filePath, pending.join('\n'));
    files.push(filePath);
    pending = [];
    pendingBytes = 0;
  };
  for (const doc of corpus) {
    pending.push(doc.text);
    pendingBytes += doc.text.length;
    if (pendingBytes >= targetFileBytes) flush();
  }
  flush();
  return files;
}

/** Merges as pairs; older tokenizer.json files write them as "left right" strings. */
function mergePairs(model: TokenizerModelJson): Array<[string, string]> {
  return (model.merges ?? []).map((merge) => {
    if (typeof merge !== 'string') return merge;
    const space = merge.indexOf(' ');
    return [merge.slice(0, space), merge.slice(space + 1)];
  });
}

function tokensInIdOrder(vocab: Record<string, number>): string[] {
  return Object.entries(vocab)
    .sort((a, b) => a[1] - b[1])
    .map(([token]) => token);
}

// BERT's pre-tokenizer isolates punctuation, so "##," can never be used.
function canContinueWord(character: string): boolean {
  return !/^[\p{P}!-/:-@[-`{-~]$/u.test(character);
}

/**
 * WordPiece layout: [PAD] [UNK] [CLS] [SEP] [MASK] = 0..4, every character,
 * every continuation character, then learned pieces in merge order (most
 * frequent first), cut at vocabSize. Built through the native API so the
 * JSON is exactly what tokenizers itself writes.
 */
function buildWordPieceJson(trained: TokenizerJson, vocabSize: number, scratchDir: string, lowercase: boolean): string {
  const ordered = tokensInIdOrder(trained.model.vocab);
  const mergeResults = new Set(mergePairs(trained.model).map(([left, right]) => left + right));
  const alphabet = ordered.filter((token) => !mergeResults.has(token) && token !== WORD_START_MARKER);
  const learned = ordered.filter((token) => mergeResults.has(token));

  const candidates = [
    ...Object.values(WORDPIECE_SPECIAL_TOKENS),
    ...alphabet,
    ...alphabet.filter(canContinueWord).map((character) => `##${character}`),
    ...learned.map((piece) =>
      piece.startsWith(WORD_START_MARKER) ? piece.slice(WORD_START_MARKER.length) : `##${piece}`,
    ),
  ];
  const vocab: Record<string, number> = {};
  let size = 0;
  for (const token of candidates) {
    if (size >= vocabSize) break;
    if (token === '' || token === '##' || Object.hasOwn(vocab, token)) continue;
    vocab[token] = size++;
  }

  const tokenizer = new Tokenizer(WordPiece.init(vocab, { unkToken: WORDPIECE_SPECIAL_TOKENS.unk }));
  tokenizer.setNormalizer(bertNormalizer({ lowercase }));
  tokenizer.setPreTokenizer(bertPreTokenizer());
  tokenizer.setDecoder(wordPieceDecoder());
  tokenizer.addSpecialTokens(Object.values(WORDPIECE_SPECIAL_TOKENS));
  // Only for users of the saved tokenizer.json elsewhere; our encode() never adds special tokens.
  tokenizer.setPostProcessor(
    bertProcessing(
      [WORDPIECE_SPECIAL_TOKENS.sep, vocab[WORDPIECE_SPECIAL_TOKENS.sep]],
      [WORDPIECE_SPECIAL_TOKENS.cls, vocab[WORDPIECE_SPECIAL_TOKENS.cls]],
    ),
  );
  const outputPath = path.join(scratchDir, 'wordpiece.json');
  tokenizer.save(outputPath);
  return fs.readFileSync(outputPath, 'utf8');
}

/**
 * Byte-level BPE layout: the 256 byte symbols (so any text encodes without
 * unknowns, even bytes absent from the corpus), learned pieces in merge order,
 * then <|endoftext|> last as in GPT-2. A merge is kept only if both parts and
 * its result survived the cut at vocabSize.
 */
function buildByteLevelBpeJson(trained: TokenizerJson, vocabSize: number): string {
  const vocab: Record<string, number> = {};
  const eosId = addByteLevelPieces(vocab, trained, vocabSize - 1);
  vocab[END_OF_TEXT_TOKEN] = eosId;
  const merges = mergesWithin(trained, vocab);

  const json: TokenizerJson = {
    ...trained,
    added_tokens: [
      {
        id: eosId,
        content: END_OF_TEXT_TOKEN,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      },
    ],
    // The node binding cannot construct ByteLevel decoders or post-processors,
    // so they are written the way tokenizers itself serializes them.
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: { ...trained.model, vocab, merges },
  };
  return JSON.stringify(json);
}

/**
 * RoBERTa's layout: <s> <pad> </s> <unk> <mask> = 0..4, the 256 byte symbols,
 * then learned pieces in merge order, cut at vocabSize. <mask> is declared as
 * HF's roberta-base declares it (lstrip: "the <mask> sea" encodes the mask as
 * one token that absorbs the space before it).
 */
function buildRobertaBpeJson(trained: TokenizerJson, vocabSize: number): string {
  const specials = [
    ROBERTA_SPECIAL_TOKENS.cls,
    ROBERTA_SPECIAL_TOKENS.pad,
    ROBERTA_SPECIAL_TOKENS.sep,
    ROBERTA_SPECIAL_TOKENS.unk,
    ROBERTA_SPECIAL_TOKENS.mask,
  ];
  const vocab: Record<string, number> = {};
  specials.forEach((token, id) => (vocab[token] = id));
  addByteLevelPieces(vocab, trained, vocabSize);
  const merges = mergesWithin(trained, vocab);

  const json: TokenizerJson = {
    ...trained,
    added_tokens: specials.map((content, id) => {
      const isMask = content === ROBERTA_SPECIAL_TOKENS.mask;
      return { id, content, single_word: false, lstrip: isMask, rstrip: false, normalized: !isMask, special: true };
    }),
    // Written the way tokenizers serializes them (the node binding cannot build ByteLevel parts). The
    // post-processor is only for users of the file elsewhere; our encode() never adds special tokens.
    post_processor: {
      type: 'RobertaProcessing',
      sep: [ROBERTA_SPECIAL_TOKENS.sep, vocab[ROBERTA_SPECIAL_TOKENS.sep]],
      cls: [ROBERTA_SPECIAL_TOKENS.cls, vocab[ROBERTA_SPECIAL_TOKENS.cls]],
      trim_offsets: true,
      add_prefix_space: false,
    },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: { ...trained.model, vocab, merges },
  };
  return JSON.stringify(json);
}

/**
 * Adds the 256 byte symbols (so any text encodes without unknowns), then the
 * trained pieces in merge order, to `vocab` until it holds `limit` tokens.
 * Returns the next free id.
 */
function addByteLevelPieces(vocab: Record<string, number>, trained: TokenizerJson, limit: number): number {
  // byteLevelAlphabet() comes back in hash order; sort for a stable numbering.
  const byteSymbols = [...byteLevelAlphabet()].sort();
  let size = Object.keys(vocab).length;
  for (const token of [...byteSymbols, ...tokensInIdOrder(trained.model.vocab)]) {
    if (size >= limit) break;
    if (!Object.hasOwn(vocab, token)) vocab[token] = size++;
  }
  return size;
}

/** The trained merges whose two parts and result all survived the cut of `vocab`. */
function mergesWithin(trained: TokenizerJson, vocab: Record<string, number>): Array<[string, string]> {
  return mergePairs(trained.model).filter(
    ([left, right]) => Object.hasOwn(vocab, left) && Object.hasOwn(vocab, right) && Object.hasOwn(vocab, left + right),
  );
}

/**
 * Guards against a silently broken recipe (e.g. a future tokenizers release
 * changing its JSON): a tokenizer trained on this text must reproduce it.
 */
async function assertRoundTrip(
  tokenizer: TextTokenizer,
  corpus: readonly Document[],
  lowercase: boolean,
): Promise<void> {
  const sample = corpus
    .slice(0, 3)
    .map((doc) => doc.text.slice(0, 2000))
    .join('\n');
  const ids = await tokenizer.encode(sample);
  let reproduced: boolean;
  if (tokenizer.kind !== 'wordpiece') {
    reproduced = (await tokenizer.decode(ids)) === sample;
  } else {
    // WordPiece decoding is lossy in whitespace and its cleanup rewrites
    // some phrases, so compare the pieces with the normalized text instead.
    if (ids.includes(tokenizer.maskedLmSpecialIds().unk)) return; // a deliberately tiny vocabulary
    const pieces = ids.map((id) => (tokenizer.idToToken(id) ?? '').replace(/^##/, '')).join('');
    reproduced = pieces === normalizeLikeBert(sample, lowercase);
  }
  if (!reproduced) {
    throw new DataError('ERR_TOKENIZER', `trained ${tokenizer.kind} tokenizer does not reproduce its training text`);
  }
}

function normalizeLikeBert(text: string, lowercase: boolean): string {
  const normalizer = bertNormalizer({ lowercase });
  return normalizer.normalizeString(text).replace(/\s+/g, '');
}
