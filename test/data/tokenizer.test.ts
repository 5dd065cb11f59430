import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { byteLevelAlphabet } from 'tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fingerprintDocuments, loadCorpus, type Document } from '../../src/data/corpus';
import { ConfigError, validateConfig } from '../../src/config/load';
import { DataError } from '../../src/data/errors';
import { TextTokenizer, loadOrTrainTokenizer, tokenizerCachePath } from '../../src/data/tokenizer';

const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-tokenizer-'));
afterAll(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

let corpus: Document[];
let corpusKey: string;
beforeAll(() => {
  corpus = loadCorpus('bundled', { maxDocuments: 20 });
  corpusKey = fingerprintDocuments(corpus);
});

async function rejection(promise: Promise<unknown>): Promise<DataError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(DataError);
    return error as DataError;
  }
  throw new Error('expected a rejection');
}

describe('WordPiece tokenizer', () => {
  it('trains with BERT special ids first and at most vocabSize tokens', async () => {
    const tokenizer = await loadOrTrainTokenizer({ kind: 'wordpiece', vocabSize: 512, corpus, corpusKey, cacheDir });
    expect(tokenizer.kind).toBe('wordpiece');
    expect(tokenizer.vocabSize).toBe(512);
    expect(tokenizer.maskedLmSpecialIds()).toEqual({ pad: 0, unk: 1, cls: 2, sep: 3, mask: 4 });
    expect(tokenizer.idToToken(2)).toBe('[CLS]');
    expect([0, 1, 2, 3, 4].every((id) => tokenizer.isSpecialId(id))).toBe(true);
    expect(tokenizer.isSpecialId(5)).toBe(false);
    // The most frequent words survive the cut to 512.
    expect(tokenizer.tokenToId('the')).not.toBeNull();
    expect(() => tokenizer.endOfTextId()).toThrow(DataError);
  });

  it('encodes without special tokens and decodes back (lowercased)', async () => {
    const tokenizer = await loadOrTrainTokenizer({ kind: 'wordpiece', vocabSize: 512, corpus, corpusKey, cacheDir });
    const text = 'Call me Ishmael. The whale, the sea and the ship!';
    const ids = await tokenizer.encode(text);
    expect(ids).not.toContain(tokenizer.maskedLmSpecialIds().cls);
    expect(ids).not.toContain(tokenizer.maskedLmSpecialIds().unk);
    expect(await tokenizer.decode(ids)).toBe(text.toLowerCase());
    expect(await tokenizer.encodeBatch([text, 'sea'])).toEqual([ids, await tokenizer.encode('sea')]);
  });

  it('trains the same tokenizer every time (ranks racing to build the cache must agree)', async () => {
    const first = await loadOrTrainTokenizer({ kind: 'wordpiece', vocabSize: 512, corpus, corpusKey, cacheDir });
    const otherCache = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-tokenizer-again-'));
    try {
      const again = await loadOrTrainTokenizer({
        kind: 'wordpiece',
        vocabSize: 512,
        corpus,
        corpusKey,
        cacheDir: otherCache,
      });
      expect(again.hash).toBe(first.hash);
    } finally {
      fs.rmSync(otherCache, { recursive: true, force: true });
    }
  });
});

describe('cased WordPiece tokenizer (data.lowercase: false)', () => {
  it('keeps capitals, round-trips its text, and is cached apart from the uncased one', async () => {
    const request = { kind: 'wordpiece', vocabSize: 2000, corpus, corpusKey, cacheDir } as const;
    const cased = await loadOrTrainTokenizer({ ...request, lowercase: false });
    const uncased = await loadOrTrainTokenizer(request);
    expect(cased.hash).not.toBe(uncased.hash);
    expect(tokenizerCachePath({ ...request, lowercase: false })).not.toBe(tokenizerCachePath(request));
    // The uncased key is the one it always was: lowercase true and unset name the same file.
    expect(tokenizerCachePath({ ...request, lowercase: true })).toBe(tokenizerCachePath(request));
    expect(fs.existsSync(tokenizerCachePath({ ...request, lowercase: false }))).toBe(true);
    expect(cased.maskedLmSpecialIds()).toEqual({ pad: 0, unk: 1, cls: 2, sep: 3, mask: 4 });

    const text = 'Call me Ishmael. The whale, the sea and the ship!';
    const casedIds = await cased.encode(text);
    expect(casedIds).not.toContain(cased.maskedLmSpecialIds().unk);
    expect(await cased.decode(casedIds)).toBe(text);
    expect(await uncased.decode(await uncased.encode(text))).toBe(text.toLowerCase());
    // A name and the same letters in lower case are different tokens only when cased.
    expect(await cased.encode('The')).not.toEqual(await cased.encode('the'));
    expect(await uncased.encode('The')).toEqual(await uncased.encode('the'));
    // The bundled text starts sentences with capitals, so the cased vocabulary learns them as pieces.
    expect(cased.tokenToId('The')).not.toBeNull();
    expect(uncased.tokenToId('The')).toBeNull();
    // The saved JSON says so, for anyone loading it elsewhere (HF tokenizers).
    expect(JSON.parse(cased.toJSON()).normalizer).toMatchObject({ type: 'BertNormalizer', lowercase: false });
    expect(JSON.parse(uncased.toJSON()).normalizer).toMatchObject({ type: 'BertNormalizer', lowercase: true });
  });
});

describe('data.lowercase in a config', () => {
  const base = {
    model: { arch: 'bert', layers: 1, hidden: 32, heads: 4, ffn: 64, vocab_size: 300, seq_len: 16 },
    train: { steps: 1, micro_batch: 2, lr: 0.01 },
  };
  it('is taken where paratrain trains the WordPiece tokenizer', () => {
    expect(validateConfig({ ...base, data: { lowercase: false } }).data.lowercase).toBe(false);
  });
  it('is refused, naming why, wherever it would be ignored', () => {
    const refusal = (doc: Record<string, unknown>) => () => validateConfig({ ...base, ...doc });
    const gpt = { ...base.model, arch: 'gpt' };
    expect(refusal({ model: gpt, data: { lowercase: false } })).toThrow(/data\.lowercase: gpt uses a byte-level BPE/);
    expect(refusal({ data: { lowercase: false, tokenizer: 'tok.json' } })).toThrow(
      /data\.lowercase: applies to a tokenizer that paratrain trains .* tok\.json keeps its own normalizer/,
    );
    expect(refusal({ data: { lowercase: true, path: 'corpus_text_sentence' } })).toThrow(
      /data\.lowercase: a preprocessed data\.path brings its own tokenizer/,
    );
    expect(
      refusal({
        model: { ...base.model, init: 'runs/x/checkpoints' },
        task: { name: 'text-classification', train: 'train.jsonl' },
        data: { lowercase: false },
      }),
    ).toThrow(/data\.lowercase: a fine-tuning run reads the tokenizer saved with model\.init/);
    expect(refusal({ model: gpt, data: { lowercase: false } })).toThrow(ConfigError);
  });
});

describe('byte-level BPE tokenizer', () => {
  it('trains with all 256 byte symbols, <|endoftext|> last, and at most vocabSize tokens', async () => {
    const tokenizer = await loadOrTrainTokenizer({ kind: 'bpe', vocabSize: 600, corpus, corpusKey, cacheDir });
    expect(tokenizer.kind).toBe('bpe');
    expect(tokenizer.vocabSize).toBe(600);
    expect(tokenizer.endOfTextId()).toBe(599);
    expect(tokenizer.idToToken(599)).toBe('<|endoftext|>');
    for (const symbol of byteLevelAlphabet()) expect(tokenizer.tokenToId(symbol)).not.toBeNull();
    expect(() => tokenizer.maskedLmSpecialIds()).toThrow(DataError);
    expect(() => tokenizer.maskedLmSpecialIds()).toThrow(/'wordpiece'.*'roberta-bpe'/);
  });

  it('round-trips any text exactly, including bytes never seen in training', async () => {
    const tokenizer = await loadOrTrainTokenizer({ kind: 'bpe', vocabSize: 600, corpus, corpusKey, cacheDir });
    const text = 'Call me Ishmael.\n\tNaïve café — 東京 🐋 <tag> 1790s';
    const ids = await tokenizer.encode(text);
    expect(await tokenizer.decode(ids)).toBe(text);
    expect(ids).not.toContain(tokenizer.endOfTextId());
  });

  it('is reused from the cache instead of retrained', async () => {
    const request = { kind: 'bpe' as const, vocabSize: 600, corpus, corpusKey, cacheDir };
    const first = await loadOrTrainTokenizer(request);
    expect(fs.existsSync(tokenizerCachePath(request))).toBe(true);
    // With an empty corpus a retrain would throw, so success proves a cache hit.
    const cached = await loadOrTrainTokenizer({ ...request, corpus: [] });
    expect(cached.hash).toBe(first.hash);
  });
});

describe('loading a tokenizer.json', () => {
  it('detects the kind and special ids of a saved tokenizer', async () => {
    const trained = await loadOrTrainTokenizer({ kind: 'wordpiece', vocabSize: 512, corpus, corpusKey, cacheDir });
    const file = path.join(cacheDir, 'saved-tokenizer.json');
    fs.writeFileSync(file, trained.toJSON());
    const loaded = await loadOrTrainTokenizer({
      kind: 'wordpiece',
      vocabSize: 512,
      corpus: [],
      corpusKey: 'unused',
      cacheDir,
      path: file,
    });
    expect(loaded.hash).toBe(trained.hash);
    expect(loaded.maskedLmSpecialIds()).toEqual(trained.maskedLmSpecialIds());
    expect(await loaded.encode('the whale')).toEqual(await trained.encode('the whale'));
  });

  it('names missing special tokens', async () => {
    const trained = await loadOrTrainTokenizer({ kind: 'wordpiece', vocabSize: 512, corpus, corpusKey, cacheDir });
    const json = JSON.parse(trained.toJSON()) as {
      added_tokens: Array<{ content: string }>;
      model: { vocab: Record<string, number> };
    };
    json.added_tokens = json.added_tokens.filter((token) => token.content !== '[MASK]');
    delete json.model.vocab['[MASK]'];
    const error = (() => {
      try {
        TextTokenizer.fromJSON(JSON.stringify(json), 'no-mask.json');
      } catch (caught) {
        return caught as DataError;
      }
      throw new Error('expected an error');
    })();
    expect(error.code).toBe('ERR_TOKENIZER');
    expect(error.message).toContain('[MASK]');
    expect(error.message).toContain('no-mask.json');
  });

  it('rejects a tokenizer of the wrong kind and an unreadable file', async () => {
    const bpe = await loadOrTrainTokenizer({ kind: 'bpe', vocabSize: 600, corpus, corpusKey, cacheDir });
    const file = path.join(cacheDir, 'bpe-tokenizer.json');
    fs.writeFileSync(file, bpe.toJSON());
    const wrongKind = await rejection(
      loadOrTrainTokenizer({ kind: 'wordpiece', vocabSize: 512, corpus: [], corpusKey: 'x', cacheDir, path: file }),
    );
    expect(wrongKind.code).toBe('ERR_TOKENIZER');
    const missing = await rejection(
      loadOrTrainTokenizer({
        kind: 'bpe',
        vocabSize: 600,
        corpus: [],
        corpusKey: 'x',
        cacheDir,
        path: path.join(cacheDir, 'none.json'),
      }),
    );
    expect(missing.code).toBe('ERR_TOKENIZER');
    expect(missing.message).toContain('none.json');
  });
});
