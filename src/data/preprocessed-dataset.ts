// `data.path`: a Dataset over Megatron indexed datasets made by `paratrain preprocess` (or Megatron's
// tools/preprocess_data.py), one prefix or a weighted blend, with the tokenizer.json beside them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Split } from './batch';
import { BLEND_BLOCK, BlendedStream, blendingOrder, parseDataPath, type DataPath, type SampleStream } from './blend';
import type { Dataset, DatasetOptions, SampleIndexUse } from './dataset';
import { sniffText } from './documents';
import { DataError } from './errors';
import { buildStreamLayout, IndexedCausalLmDataset, splitDocuments } from './indexed-causal-lm-dataset';
import { IndexedDataset } from './indexed-dataset';
import { IndexedSentences } from './indexed-sentences';
import { packFullSentences, type FullSentencePacking } from './full-sentence-dataset';
import { endOfDocumentId } from './preprocess';
import { maskedLmStream } from './masked-lm-samples';
import { maskedLmVocabulary, type MaskedLmVocabulary } from './masking';
import { loadOrBuildSampleIndex, openOrBuildSampleIndexColumns } from './sample-index-cache';
import { cutPairChunks, type PairChunkColumns } from './sentence-pair-dataset';
import { TextTokenizer } from './tokenizer';

/** The split used when data.split is not given: Megatron's default. */
export const DEFAULT_SPLIT = '969,30,1';

/**
 * Where `paratrain preprocess` wrote the tokenizer for PREFIX: it names the data
 * OUT_<key>_document (or _sentence) and the tokenizer OUT_tokenizer.json, and a key may hold
 * underscores, so every cut at an underscore is tried, longest OUT first.
 */
export function tokenizerBeside(prefix: string): { found?: string; tried: string[] } {
  const stem = prefix.replace(/_(document|sentence)$/, '');
  const tried: string[] = [];
  for (let cut = stem.lastIndexOf('_'); cut > path.dirname(stem).length; cut = stem.lastIndexOf('_', cut - 1)) {
    const candidate = `${stem.slice(0, cut)}_tokenizer.json`;
    tried.push(candidate);
    if (fs.existsSync(candidate)) return { found: candidate, tried };
  }
  return { tried };
}

/** One prefix of data.path, opened: its files, its document ranges and its split streams. */
interface OpenedSource {
  prefix: string;
  weight: number;
  data: IndexedDataset;
  ranges: Record<Split, [number, number]>;
  streams: Record<Split, SampleStream | null>;
}

/**
 * Samples from data.path: one prefix, or several blended by weight (see blend.ts). GPT reads windows
 * of each split's document stream; the masked-LM families read sentence-split data (each sequence a
 * sentence) as the text pipeline reads a corpus, in sentence pairs or full sentences. Every prefix
 * keeps its own train/valid/test split by documents; all must have been tokenized with one tokenizer,
 * of at most model.vocab_size tokens. The indices built here are cached beside the data.
 */
export async function openPreprocessedDataset(
  opts: DatasetOptions,
): Promise<{ dataset: Dataset; tokenizer: TextTokenizer }> {
  const started = Date.now();
  const split = opts.split ?? DEFAULT_SPLIT;
  const weighted = parseDataPath(opts.path as DataPath).map((s) => ({ ...s, prefix: path.resolve(s.prefix) }));
  const name = (prefix: string) =>
    weighted.length === 1 ? `data.path ${prefix}` : `data.path ${prefix} (${weighted.length} blended)`;

  for (const { prefix } of weighted) refuseFileAsPrefix(prefix, name(prefix));
  const { tokenizer, tokenizerOf } = sharedTokenizer(
    weighted.map((s) => s.prefix),
    opts.tokenizerPath,
    name,
  );
  const masked = opts.objective === 'masked-lm';
  if (masked && tokenizer.kind !== opts.tokenizerKind)
    throw new DataError(
      'ERR_TOKENIZER',
      `${name(weighted[0].prefix)} was tokenized with a ${tokenizer.kind} tokenizer (${tokenizerOf}), but this ` +
        `model family reads ${opts.tokenizerKind} ids; preprocess the text again with a ${opts.tokenizerKind} tokenizer`,
    );
  // Throws for a tokenizer of the wrong kind (GPT needs <|endoftext|>, masked LM [MASK], [CLS], [SEP]).
  const endOfText = masked ? -1 : tokenizer.endOfTextId();
  const vocabulary = masked ? maskedLmVocabulary(tokenizer, opts.wholeWordMask === true) : undefined;
  if (tokenizer.vocabSize > opts.vocabSize)
    throw new DataError(
      'ERR_TOKENIZER',
      `the tokenizer of ${name(weighted[0].prefix)} (${tokenizerOf}) has ${tokenizer.vocabSize} tokens but ` +
        `model.vocab_size is ${opts.vocabSize}: the dataset was tokenized with a larger vocabulary than the ` +
        `model's; set model.vocab_size to at least ${tokenizer.vocabSize}, or preprocess the text again with a ` +
        `tokenizer of at most ${opts.vocabSize} tokens`,
    );

  const indices: SampleIndexUse[] = [];
  /** A split's samples of one prefix, with its index read from the cache or built (and cached). */
  const splitStream = async (
    data: IndexedDataset,
    sentences: IndexedSentences | undefined,
    documents: [number, number],
    part: Split,
  ) => {
    const [first, end] = documents;
    if (!masked) {
      const layout = await loadOrBuildSampleIndex({
        kind: 'gpt-stream',
        stem: data.prefix,
        cacheDir: opts.cacheDir,
        inputs: { ...fileIdentity(data.prefix), documents, endOfText },
        identity: FILE_IDENTITY,
        build: () => ({ ...buildStreamLayout(data, documents, endOfText) }),
      });
      indices.push({ kind: 'gpt-stream', split: part, file: layout.file, origin: layout.origin });
      const options = { seqLen: opts.seqLen, seed: opts.seed };
      return new IndexedCausalLmDataset(data, documents, endOfText, tokenizer.vocabSize, options, part, layout.arrays);
    }
    const source = sentences as IndexedSentences; // made for every prefix when masked
    const ids = Array.from({ length: end - first }, (_, i) => first + i);
    const inputs = { ...fileIdentity(data.prefix), documents, seqLen: opts.seqLen };
    const request = { stem: data.prefix, cacheDir: opts.cacheDir, inputs, identity: FILE_IDENTITY };
    let cached: FullSentencePacking | PairChunkColumns;
    if (opts.packing === 'full-sentences') {
      const kind = 'full-sentences';
      const index = await loadOrBuildSampleIndex({
        ...request,
        kind,
        build: () => ({ ...packFullSentences(source, ids, opts.seqLen - 2) }),
      });
      indices.push({ kind, split: part, file: index.file, origin: index.origin });
      cached = index.arrays;
    } else {
      // 12 bytes a chunk, read from the file a sample at a time rather than kept in memory.
      const kind = 'sentence-pairs';
      const index = await openOrBuildSampleIndexColumns({
        ...request,
        kind,
        build: () => ({ ...cutPairChunks(source, ids, opts.seqLen) }),
      });
      indices.push({ kind, split: part, file: index.file, origin: index.origin });
      cached = index.arrays;
    }
    return maskedLmStream(source, ids, vocabulary as MaskedLmVocabulary, opts, part, cached);
  };

  const sources: OpenedSource[] = [];
  const warnings: string[] = [];
  for (const { prefix, weight } of weighted) {
    for (const file of [`${prefix}.idx`, `${prefix}.bin`])
      if (!fs.existsSync(file))
        throw new DataError(
          'ERR_DATA_NOT_FOUND',
          `${name(prefix)}: ${file} does not exist (an indexed dataset is a .bin/.idx pair); give the prefix ` +
            `without .bin/.idx, or make the pair with \`paratrain preprocess --output-prefix\``,
        );
    const data = IndexedDataset.open(prefix);
    const ranges = splitDocuments(split, data.documentCount);
    const sentences = masked ? new IndexedSentences(data, tokenizer.vocabSize) : undefined;
    if (sentences) {
      const eod = endOfDocumentId(tokenizer);
      const { ending, checked } = documentsEndingWith(sentences, data.documentCount, eod);
      if (checked > 0 && ending === checked)
        warnings.push(
          `${name(prefix)}: all of its first ${checked} documents end with ${tokenizer.idToToken(eod)} (id ${eod}), ` +
            `the token \`paratrain preprocess --append-eod\` adds; the ${opts.tokenizerKind} samples read it as ` +
            `the last token of each document's last sentence. Preprocess the text again without --append-eod`,
        );
    }
    const streams: Record<Split, SampleStream | null> = { train: null, eval: null };
    for (const part of ['train', 'eval'] as const) {
      const [first, end] = ranges[part];
      if (end <= first) {
        if (part === 'train')
          throw new DataError(
            'ERR_CORPUS',
            `${name(prefix)} has ${data.documentCount} documents: data.split ${split} ` +
              `gives training none; preprocess more text or give training a larger share`,
          );
        continue;
      }
      try {
        streams[part] = await splitStream(data, sentences, [first, end], part);
      } catch (error) {
        if (!(error instanceof RangeError)) throw error;
        throw new DataError(
          'ERR_CORPUS',
          `${name(prefix)} has too little text: its ${part === 'train' ? 'training' : 'validation'} split ` +
            `(documents ${first} to ${end - 1}) cannot fill one sequence of model.seq_len ${opts.seqLen} ` +
            `(${error.message}); preprocess more text, lower model.seq_len or change data.split`,
          { cause: error },
        );
      }
    }
    sources.push({ prefix, weight, data, ranges, streams });
  }

  const blended: Record<Split, SampleStream | null> = { train: null, eval: null };
  for (const part of ['train', 'eval'] as const) {
    const feeding = sources.filter((s) => s.streams[part] !== null);
    if (feeding.length === 0) continue;
    if (weighted.length === 1) {
      blended[part] = feeding[0].streams[part];
      continue;
    }
    // A source without validation documents leaves evaluation to the others, in their proportions.
    const total = feeding.reduce((sum, s) => sum + s.weight, 0);
    const weights = feeding.map((s) => s.weight / total);
    const order = await loadOrBuildSampleIndex({
      kind: 'blend',
      stem: weighted[0].prefix,
      cacheDir: opts.cacheDir,
      inputs: { weights, block: BLEND_BLOCK },
      build: () => blendingOrder(weights, BLEND_BLOCK),
    });
    indices.push({ kind: 'blend', split: part, file: order.file, origin: order.origin });
    const streams = feeding.map((s) => s.streams[part] as SampleStream);
    const stream = new BlendedStream(streams, order.arrays, part);
    const starved = feeding.findIndex((_, k) => stream.drawnPerBlock[k] === 0);
    if (starved >= 0)
      throw new DataError(
        'ERR_DATA_CONFIG',
        `data.path: the weight of ${feeding[starved].prefix} (${weights[starved]} of the total) gives it no sample ` +
          `in ${BLEND_BLOCK} (the blend's block); raise it above ${(1 / BLEND_BLOCK).toPrecision(2)}, or leave the ` +
          `dataset out`,
      );
    blended[part] = stream;
  }

  let corpusTokens = 0;
  for (const { data } of sources) corpusTokens += data.tokenCount;
  const documentsIn = (part: Split) =>
    sources.reduce((sum, s) => sum + Math.max(0, s.ranges[part][1] - s.ranges[part][0]), 0);

  const dataset: Dataset = {
    objective: opts.objective,
    seqLen: opts.seqLen,
    summary: {
      tokenizerVocabSize: tokenizer.vocabSize,
      corpusDocuments: sources.reduce((sum, s) => sum + s.data.documentCount, 0),
      corpusTokens,
      trainDocuments: documentsIn('train'),
      evalDocuments: documentsIn('eval'),
      heldoutBy: blended.eval ? 'documents' : 'none',
      tokenStoreOrigin: 'preprocessed',
      tokenStoreMillis: Date.now() - started,
      sampleIndices: indices,
      ...(warnings.length > 0 ? { warnings } : {}),
      ...(weighted.length > 1 ? { blend: weighted.map(({ prefix, weight }) => ({ prefix, weight })) } : {}),
    },
    batch(part, firstSample, count) {
      if (!Number.isSafeInteger(firstSample) || firstSample < 0)
        throw new RangeError(`firstSample must be a non-negative integer, got ${firstSample}`);
      if (!Number.isSafeInteger(count) || count < 1)
        throw new RangeError(`count must be a positive integer, got ${count}`);
      const stream = blended[part];
      if (!stream)
        throw new DataError(
          'ERR_DATA_CONFIG',
          `the ${part} split of ${name(weighted[0].prefix)} is empty (data.split ${split}, ` +
            `${sources.map((s) => s.data.documentCount).join(' + ')} documents)`,
        );
      return stream.batch(firstSample, count);
    },
    samplesPerEpoch: (part) => blended[part]?.samplesPerEpoch ?? 0,
    documentIds: (part) =>
      sources.flatMap(({ prefix, ranges }) => {
        const [first, end] = ranges[part];
        return Array.from({ length: Math.max(0, end - first) }, (_, i) => `${path.basename(prefix)}#${first + i}`);
      }),
  };
  return { dataset, tokenizer };
}

/** How many of the first (up to) 100 documents end with the token id `eod`, of how many checked. */
function documentsEndingWith(
  sentences: IndexedSentences,
  documentCount: number,
  eod: number,
): { ending: number; checked: number } {
  let ending = 0;
  let checked = 0;
  for (let d = 0; d < Math.min(documentCount, 100); d++) {
    const end = sentences.documentTokenEnd(d);
    if (end <= sentences.documentTokenStart(d)) continue;
    checked++;
    if (sentences.readTokens(end - 1, end)[0] === eod) ending++;
  }
  return { ending, checked };
}

/** The one tokenizer of all the prefixes (data.tokenizer, or each one's tokenizer.json, all the same). */
function sharedTokenizer(
  prefixes: readonly string[],
  given: string | undefined,
  name: (prefix: string) => string,
): { tokenizer: TextTokenizer; tokenizerOf: string } {
  const firstFile = tokenizerFor(prefixes[0], given, name(prefixes[0]));
  const tokenizer = TextTokenizer.fromFile(firstFile);
  const tokenizerOf = `${prefixes[0]} (${firstFile})`;
  for (const prefix of prefixes.slice(1)) {
    const found = tokenizerFor(prefix, given, name(prefix));
    if (found !== firstFile && TextTokenizer.fromFile(found).hash !== tokenizer.hash)
      throw new DataError(
        'ERR_TOKENIZER',
        `the blended datasets of data.path were tokenized differently: ${prefix} with ${found}, ${tokenizerOf}; ` +
          `a model has one vocabulary, so preprocess them again with one tokenizer`,
      );
  }
  return { tokenizer, tokenizerOf };
}

/**
 * data.path names a dataset by its prefix (PREFIX.bin + PREFIX.idx); a file at the prefix itself is a
 * mistake worth naming before the tokenizer lookup or the missing .idx would hide it: a text corpus
 * given to the wrong key, one file of the pair, or an empty or binary file.
 */
function refuseFileAsPrefix(prefix: string, name: string): void {
  if (fs.existsSync(`${prefix}.idx`) || !fs.statSync(prefix, { throwIfNoEntry: false })?.isFile()) return;
  const pairOf = /\.(bin|idx)$/.exec(prefix);
  if (pairOf && fs.existsSync(`${prefix.slice(0, -4)}.idx`))
    throw new DataError(
      'ERR_DATA_CONFIG',
      `${name} is the .${pairOf[1]} file of a dataset: give its prefix, data.path=${prefix.slice(0, -4)}`,
    );
  const content = sniffText(prefix);
  const expected =
    'data.path names a preprocessed dataset by its prefix (PREFIX.bin and PREFIX.idx, from `paratrain preprocess`)';
  if (content === 'empty')
    throw new DataError(
      'ERR_CORPUS',
      `${name} is empty: ${expected}; give that prefix, or a UTF-8 text corpus as data.corpus`,
    );
  if (content !== 'text')
    throw new DataError(
      'ERR_CORPUS',
      `${name} is not text (${content.notText}): give a UTF-8 text corpus as data.corpus, or a preprocessed ` +
        `.bin/.idx prefix as data.path`,
    );
  throw new DataError(
    'ERR_DATA_CONFIG',
    `${name} is a text file, and ${expected}: train on the text with data.corpus=${prefix}, or make the pair ` +
      `with \`paratrain preprocess --input ${prefix} --output-prefix PREFIX\``,
  );
}

/** data.tokenizer when set, else the tokenizer.json preprocess wrote beside the prefix. */
function tokenizerFor(prefix: string, given: string | undefined, name: string): string {
  if (given !== undefined) return given;
  const beside = tokenizerBeside(prefix);
  if (!beside.found)
    throw new DataError(
      'ERR_DATA_NOT_FOUND',
      `${name} has no tokenizer.json beside it (looked for ${
        beside.tried.join(', ') || 'nothing: the ' + 'prefix does not end in _<key>_document'
      }); set data.tokenizer to the tokenizer.json the dataset was made with`,
    );
  return beside.found;
}

/** The inputs fileIdentity gives: an index whose header differs in them indexes files that are gone. */
const FILE_IDENTITY = ['idx', 'bin'] as const;

/** What identifies the files of a prefix in a cache key: sizes and modification times. */
function fileIdentity(prefix: string): Record<string, unknown> {
  const of = (file: string) => {
    const stat = fs.statSync(file);
    return { bytes: stat.size, mtimeMs: stat.mtimeMs };
  };
  return { idx: of(`${prefix}.idx`), bin: of(`${prefix}.bin`) };
}
