import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tokenizer, byteLevelAlphabet } from 'tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fingerprintDocuments, loadCorpus, type Document } from '../../src/data/corpus';
import { DataError } from '../../src/data/errors';
import {
  TextTokenizer,
  loadOrTrainTokenizer,
  tokenizerCachePath,
  type TokenizerRequest,
} from '../../src/data/tokenizer';

const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-roberta-tokenizer-'));
afterAll(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

let corpus: Document[];
let request: TokenizerRequest;
let tokenizer: TextTokenizer;
beforeAll(async () => {
  corpus = loadCorpus('bundled', { maxDocuments: 20 });
  request = { kind: 'roberta-bpe', vocabSize: 600, corpus, corpusKey: fingerprintDocuments(corpus), cacheDir };
  tokenizer = await loadOrTrainTokenizer(request);
});

function thrown(action: () => unknown): DataError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(DataError);
    return error as DataError;
  }
  throw new Error('expected an error');
}

describe('trained RoBERTa byte-level BPE', () => {
  it('numbers <s> <pad> </s> <unk> <mask> 0..4, then the 256 byte symbols, then learned pieces', () => {
    expect(tokenizer.kind).toBe('roberta-bpe');
    expect(tokenizer.vocabSize).toBe(600);
    expect(['<s>', '<pad>', '</s>', '<unk>', '<mask>'].map((token) => tokenizer.tokenToId(token))).toEqual([
      0, 1, 2, 3, 4,
    ]);
    expect(tokenizer.maskedLmSpecialIds()).toEqual({ cls: 0, pad: 1, sep: 2, unk: 3, mask: 4 });
    const byteSymbols = [...byteLevelAlphabet()].sort();
    expect(byteSymbols.map((symbol) => tokenizer.tokenToId(symbol))).toEqual(byteSymbols.map((_, i) => 5 + i));
    // The first learned pieces are the corpus' most frequent merges.
    expect(tokenizer.idToToken(261)).toBe('Ġt');
    expect(tokenizer.tokenToId('Ġthe')).not.toBeNull();
    expect([0, 1, 2, 3, 4].every((id) => tokenizer.isSpecialId(id))).toBe(true);
    expect(tokenizer.isSpecialId(5)).toBe(false);
    expect(tokenizer.tokenToId('<|endoftext|>')).toBeNull();
    expect(thrown(() => tokenizer.endOfTextId()).code).toBe('ERR_TOKENIZER');
  });

  it('round-trips the bundled text exactly and never emits special ids for it', async () => {
    const texts = corpus.slice(0, 5).map((doc) => doc.text);
    const encoded = await tokenizer.encodeBatch(texts);
    for (let i = 0; i < texts.length; i++) {
      expect(await tokenizer.decode(encoded[i])).toBe(texts[i]);
      expect(encoded[i].some((id) => id < 5)).toBe(false);
    }
    const unusual = 'Naïve café — 東京 🐋 1790s';
    expect(await tokenizer.decode(await tokenizer.encode(unusual))).toBe(unusual);
  });

  it('encodes "<mask>" as one token that absorbs the space before it (lstrip, as HF RoBERTa)', async () => {
    const ids = await tokenizer.encode('the <mask> sea');
    expect(ids).toEqual([...(await tokenizer.encode('the')), 4, ...(await tokenizer.encode(' sea'))]);
    expect(ids.filter((id) => id === 4)).toHaveLength(1);
  });

  it('declares a RobertaProcessing post-processor for users of the file elsewhere', async () => {
    const json = JSON.parse(tokenizer.toJSON()) as { post_processor: Record<string, unknown> };
    expect(json.post_processor).toMatchObject({ type: 'RobertaProcessing', cls: ['<s>', 0], sep: ['</s>', 2] });
    const native = Tokenizer.fromString(tokenizer.toJSON());
    const a = await tokenizer.encode('Call me Ishmael.');
    const b = await tokenizer.encode(' The whale.');
    expect((await native.encode('Call me Ishmael.', null, { addSpecialTokens: true })).getIds()).toEqual([0, ...a, 2]);
    expect((await native.encode('Call me Ishmael.', ' The whale.', { addSpecialTokens: true })).getIds()).toEqual([
      0,
      ...a,
      2,
      2,
      ...b,
      2,
    ]);
  });

  it('is cached under its own key, apart from the GPT BPE of the same size, and trains the same every time', async () => {
    const robertaPath = tokenizerCachePath(request);
    const gptPath = tokenizerCachePath({ ...request, kind: 'bpe' });
    expect(path.basename(robertaPath)).toMatch(/^roberta-bpe-600-[0-9a-f]{20}\.json$/);
    expect(path.basename(robertaPath).slice('roberta-'.length)).not.toBe(path.basename(gptPath));
    expect(fs.existsSync(robertaPath)).toBe(true);
    const otherCache = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-roberta-again-'));
    try {
      const again = await loadOrTrainTokenizer({ ...request, cacheDir: otherCache });
      expect(again.hash).toBe(tokenizer.hash);
    } finally {
      fs.rmSync(otherCache, { recursive: true, force: true });
    }
  });

  it('refuses a vocabulary too small for the specials and the byte symbols', async () => {
    const otherCache = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-roberta-small-'));
    try {
      const error = await loadOrTrainTokenizer({ ...request, vocabSize: 260, cacheDir: otherCache }).catch(
        (caught: unknown) => caught as DataError,
      );
      expect(error).toBeInstanceOf(DataError);
      expect((error as DataError).message).toContain('minimum 261');
    } finally {
      fs.rmSync(otherCache, { recursive: true, force: true });
    }
  });
});

/**
 * A tokenizer.json shaped like Hugging Face's roberta-base one (specials 0..3, <mask> the
 * last and largest id), with a toy vocabulary: the byte symbols and the merges of " sea".
 */
function robertaShapedJson({ withUnk = true } = {}): string {
  const vocab: Record<string, number> = { '<s>': 0, '<pad>': 1, '</s>': 2 };
  if (withUnk) vocab['<unk>'] = 3;
  [...byteLevelAlphabet()].sort().forEach((symbol, i) => (vocab[symbol] = 4 + i));
  vocab['Ġs'] = 260;
  vocab['ea'] = 261;
  vocab['Ġsea'] = 262;
  vocab['<mask>'] = 50264;
  const special = (id: number, content: string, lstrip = false) => ({
    id,
    content,
    single_word: false,
    lstrip,
    rstrip: false,
    normalized: !lstrip,
    special: true,
  });
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      special(0, '<s>'),
      special(1, '<pad>'),
      special(2, '</s>'),
      ...(withUnk ? [special(3, '<unk>')] : []),
      special(50264, '<mask>', true),
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'RobertaProcessing',
      sep: ['</s>', 2],
      cls: ['<s>', 0],
      trim_offsets: true,
      add_prefix_space: false,
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: ['Ġ s', 'e a', 'Ġs ea'],
    },
  });
}

describe('loading a RoBERTa-shaped tokenizer.json', () => {
  it('is a roberta-bpe tokenizer whatever its ids (here <mask> = 50264)', async () => {
    const file = path.join(cacheDir, 'roberta-base-like.json');
    fs.writeFileSync(file, robertaShapedJson());
    const loaded = await loadOrTrainTokenizer({ ...request, corpus: [], corpusKey: 'unused', path: file });
    expect(loaded.kind).toBe('roberta-bpe');
    expect(loaded.vocabSize).toBe(50265);
    expect(loaded.maskedLmSpecialIds()).toEqual({ cls: 0, pad: 1, sep: 2, unk: 3, mask: 50264 });
    expect(loaded.isSpecialId(50264)).toBe(true);
    expect(await loaded.encode('the <mask> sea')).toEqual([
      loaded.tokenToId('t'),
      loaded.tokenToId('h'),
      loaded.tokenToId('e'),
      50264,
      262,
    ]);
    const asGpt = await loadOrTrainTokenizer({ ...request, kind: 'bpe', corpus: [], path: file }).catch(
      (caught: unknown) => caught as DataError,
    );
    expect(asGpt).toBeInstanceOf(DataError);
    expect((asGpt as DataError).message).toContain('is a roberta-bpe tokenizer but a bpe one is required');
  });

  it('names a missing <unk>', () => {
    const error = thrown(() => TextTokenizer.fromJSON(robertaShapedJson({ withUnk: false }), 'no-unk.json'));
    expect(error.code).toBe('ERR_TOKENIZER');
    expect(error.message).toContain('<unk>');
    expect(error.message).toContain('no-unk.json');
  });

  it('names both conventions for a BPE that has neither <|endoftext|> nor <mask>', () => {
    const json = JSON.parse(robertaShapedJson()) as {
      added_tokens: Array<{ content: string }>;
      model: { vocab: Record<string, number> };
    };
    json.added_tokens = json.added_tokens.filter((token) => token.content !== '<mask>');
    delete json.model.vocab['<mask>'];
    const error = thrown(() => TextTokenizer.fromJSON(JSON.stringify(json), 'neither.json'));
    expect(error.message).toContain('<|endoftext|>');
    expect(error.message).toContain('<mask>');
  });
});
