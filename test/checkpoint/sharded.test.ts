// Sharded saves with real files: every rank of a TP×DP job writes its pieces concurrently, one
// process commits, and any layout reads back exactly the slice of the whole tensors it holds.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  checkpointDirFor,
  commitCheckpoint,
  decodeShardReport,
  encodeManifest,
  encodeShardReport,
  loadCheckpoint,
  MIN_PIECE_ELEMENTS,
  planShardWriters,
  readCheckpointManifest,
  readRankState,
  readSafetensorsHeader,
  saveCheckpoint,
  selectResumeCheckpoint,
  shardReportProtoType,
  verifyCheckpoint,
  writeSafetensors,
  writeShard,
  type ShardReport,
  type ShardTensor,
  type ShardWritePiece,
} from '../../src/checkpoint';
import {
  BERT_MINI,
  BIG_SPECS,
  bytesOf,
  engineTable,
  flatFor,
  headerFor,
  rankShard,
  SPECS,
  tableFor,
  TRAINING,
  namedTensors,
  wholeModel,
  type TensorSpec,
  type WholeModel,
} from './fake-engine';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-sharded-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}

/** Bitwise equality, reporting the first differing element (toEqual is slow on big buffers). */
function expectBitwise(got: Float32Array, want: Float32Array) {
  if (bytesOf(got).equals(bytesOf(want))) return;
  const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
  const [g, w] = [bits(got), bits(want)];
  let i = 0;
  while (i < Math.min(g.length, w.length) && g[i] === w[i]) i++;
  expect.fail(`${got.length} vs ${want.length} elements; first difference at element ${i}: ${got[i]} vs ${want[i]}`);
}

/** Every rank of a TP×DP job writes concurrently; rank 0 passes the header. */
async function writeAllRanks(
  root: string,
  model: WholeModel,
  step: number,
  tp: number,
  dp: number,
  specs: TensorSpec[] = SPECS,
) {
  const dir = checkpointDirFor(root, step);
  const ranks: Array<[number, number]> = [];
  for (let d = 0; d < dp; d++) for (let t = 0; t < tp; t++) ranks.push([t, d]);
  return Promise.all(
    ranks.map(([t, d]) =>
      writeShard(
        dir,
        rankShard(model, step, tp, dp, t, d, specs),
        t === 0 && d === 0 ? headerFor(step, tp, dp) : undefined,
      ),
    ),
  );
}

async function saveSharded(root: string, model: WholeModel, step: number, tp: number, dp: number, keep?: number) {
  const reports = await writeAllRanks(root, model, step, tp, dp);
  return commitCheckpoint(root, reports, keep === undefined ? {} : { keep });
}

/** readRankState for every rank of a TP size equals that rank's slice of the whole model, bitwise. */
async function expectEveryRankReads(dir: string, model: WholeModel, tp: number, specs: TensorSpec[] = SPECS) {
  const manifest = await readCheckpointManifest(dir);
  for (let t = 0; t < tp; t++) {
    const table = tableFor(tp, t, specs);
    const got = await readRankState(dir, manifest, table, { optimizer: true });
    expectBitwise(got.params, flatFor(table, model.params));
    expectBitwise(got.m as Float32Array, flatFor(table, model.m));
    expectBitwise(got.v as Float32Array, flatFor(table, model.v));
    expect(got.optimizerStep).toBe(manifest.optimizer.step);
    expect(got.bytesRead).toBeGreaterThan(0);
  }
}

function expectWholeModel(
  loaded: Awaited<ReturnType<typeof loadCheckpoint>>,
  model: WholeModel,
  specs: TensorSpec[] = SPECS,
) {
  // Names in the order the ranks reported them; the set is the model's.
  expect(loaded.params.map((p) => p.name).sort()).toEqual(specs.map((s) => s.name).sort());
  for (const p of loaded.params) {
    expect(p.shape).toEqual(specs.find((s) => s.name === p.name)?.globalShape);
    expectBitwise(p.data, model.params.get(p.name) as Float32Array);
  }
  expect(loaded.optimizer.state).toHaveLength(2 * specs.length);
  for (const s of loaded.optimizer.state) {
    const [prefix, name] = s.name.startsWith('exp_avg_sq.')
      ? [model.v, s.name.slice('exp_avg_sq.'.length)]
      : [model.m, s.name.slice('exp_avg.'.length)];
    expectBitwise(s.data, prefix.get(name) as Float32Array);
  }
}

/** Checks that a plan writes every element once; returns the bytes each rank stores (params and moments). */
function checkPlan(tables: ShardTensor[][], tp: number, dp: number): number[] {
  const plan = planShardWriters(tables[0] as ShardTensor[], tp, dp);
  // Every rank derives the same plan from its own table (local shapes are the same on all TP ranks).
  for (const table of tables.slice(1)) expect(planShardWriters(table, tp, dp)).toEqual(plan);
  const bytes = new Array<number>(tp * dp).fill(0);
  const units = new Map<string, ShardWritePiece[]>();
  for (const p of plan) {
    const key = `${p.name}@${p.holderTpRank}`;
    units.set(key, [...(units.get(key) ?? []), p]);
    expect(p.writer.rank).toBe(p.writer.dpRank * tp + p.writer.tpRank);
    if (p.holderTpRank >= 0) expect(p.writer.tpRank).toBe(p.holderTpRank);
    // Stored elements: the valid rows (split dim 0) or the valid part of each row (a later split dim).
    const t = tables[Math.max(p.holderTpRank, 0)]?.[p.index] as ShardTensor;
    const rowNumel = t.shape.length === 0 ? 1 : t.numel / (t.shape[0] as number);
    const d = t.splitDim;
    const rows =
      d === 0 ? Math.max(0, Math.min(p.rows.start + p.rows.length, t.shardValid) - p.rows.start) : p.rows.length;
    const stored = d > 0 ? (rows * rowNumel * t.shardValid) / (t.shape[d] as number) : rows * rowNumel;
    bytes[p.writer.rank] = (bytes[p.writer.rank] as number) + 3 * 4 * stored;
  }
  // One unit per TP rank of each split tensor, one per replicated tensor.
  const split = tables[0]?.filter((t) => t.splitDim >= 0).length ?? 0;
  expect(units.size).toBe(split * tp + ((tables[0]?.length ?? 0) - split));
  for (const pieces of units.values()) {
    const t = tables[0]?.[pieces[0]?.index as number] as ShardTensor;
    const rows = t.shape.length === 0 ? 1 : (t.shape[0] as number);
    // The pieces tile the unit's rows, each on its own rank; a cut unit has pieces of at least 1 MiB.
    let next = 0;
    for (const p of pieces) {
      expect(p.rows.start).toBe(next);
      next += p.rows.length;
      if (pieces.length > 1) expect(p.numel).toBeGreaterThanOrEqual(MIN_PIECE_ELEMENTS);
    }
    expect(next).toBe(rows);
    expect(new Set(pieces.map((p) => p.writer.rank)).size).toBe(pieces.length);
    expect(pieces.length).toBeLessThanOrEqual(pieces[0]?.holderTpRank === -1 ? tp * dp : dp);
  }
  return bytes;
}

describe('writer plan', () => {
  it('writes every small tensor whole, once, on a rank that holds it, spreading bytes over all ranks', () => {
    const tp = 2;
    const dp = 2;
    const units = planShardWriters(tableFor(tp, 0), tp, dp);
    expect(units.every((u) => u.rows.start === 0 && u.numel === tableFor(tp, 0)[u.index]?.numel)).toBe(true);
    const bytes = checkPlan([tableFor(tp, 0), tableFor(tp, 1)], tp, dp);
    expect(bytes.every((b) => b > 0)).toBe(true);
  });

  it('is greedy by size with ties to the lowest rank', () => {
    const table = [
      { name: 'b', splitDim: -1, numel: 10, shape: [10] },
      { name: 'a', splitDim: -1, numel: 10, shape: [2, 5] },
      { name: 'big', splitDim: 0, numel: 30, shape: [30] },
    ];
    const units = planShardWriters(table, 2, 1);
    expect(units.map((u) => [u.name, u.holderTpRank, u.writer.rank, u.rows])).toEqual([
      ['big', 0, 0, { start: 0, length: 30 }],
      ['big', 1, 1, { start: 0, length: 30 }],
      ['a', -1, 0, { start: 0, length: 2 }],
      ['b', -1, 1, { start: 0, length: 10 }],
    ]);
    expect(planShardWriters(table, 1, 1).every((u) => u.writer.rank === 0)).toBe(true);
  });

  it('cuts the vocabulary embedding into row ranges so every bert-mini rank writes about the mean', () => {
    for (const [tp, dp] of [
      [2, 2],
      [1, 4],
      [4, 2],
      [1, 8],
    ] as const) {
      const tables = Array.from({ length: tp }, (_, t) => engineTable(BERT_MINI, tp, t));
      const bytes = checkPlan(tables, tp, dp);
      const mean = bytes.reduce((a, b) => a + b, 0) / bytes.length;
      // Whole pieces put both ~15 MB embedding pieces (and moments) on dp0: 47 MB vs 21 MB at TP2×DP2.
      for (const b of bytes)
        expect(Math.abs(b - mean) / mean, `TP${tp}×DP${dp}: ${bytes.join(', ')}`).toBeLessThan(0.1);
      const word = planShardWriters(tables[0] as ShardTensor[], tp, dp).filter(
        (p) => p.name === 'embeddings.word.weight',
      );
      expect(word.length).toBeGreaterThan(tp);
    }
  });

  it('keeps a tensor whole when cutting it would make pieces under 1 MiB', () => {
    // 2 MiB: two pieces at most; on 4 ranks with a 0.5 MiB target it is cut in two.
    const t = { name: 'w', splitDim: -1, numel: 2 * MIN_PIECE_ELEMENTS, shape: [512, 1024] };
    expect(planShardWriters([t], 1, 4).map((p) => [p.writer.rank, p.rows])).toEqual([
      [0, { start: 0, length: 256 }],
      [1, { start: 256, length: 256 }],
    ]);
    // Just under 2 MiB: whole; a scalar: whole.
    const under = { ...t, numel: 2 * MIN_PIECE_ELEMENTS - 1024, shape: [511, 1024] };
    expect(planShardWriters([under], 1, 4)).toHaveLength(1);
    expect(planShardWriters([{ name: 's', splitDim: -1, numel: 1, shape: [] }], 1, 4)).toHaveLength(1);
  });
});

describe('sharded save and resharding load', () => {
  it('TP2×DP2: all ranks write, one commit, every layout reads its exact slice', async () => {
    const root = path.join(tmp, 'ckpts');
    const model = wholeModel(1);
    const reports = await writeAllRanks(root, model, 10, 2, 2);
    expect(reports.map((r) => r.rank)).toEqual([0, 1, 2, 3]);
    expect(reports.every((r) => r.files.length > 0 && r.bytes > 0)).toBe(true);
    expect(reports[0]?.header?.training).toEqual(TRAINING);
    expect(reports.slice(1).every((r) => r.header === undefined)).toBe(true);
    const dir = checkpointDirFor(root, 10);
    expect(fs.existsSync(path.join(dir, 'manifest.pb'))).toBe(false);

    const saved = await commitCheckpoint(root, reports);
    expect(saved.dir).toBe(dir);
    expect(fs.readFileSync(path.join(root, 'latest'), 'utf8')).toBe('step-0000010\n');
    expect(fs.readdirSync(dir).sort()).toEqual([
      'manifest.pb',
      'model-tp00-dp00.safetensors',
      'model-tp00-dp01.safetensors',
      'model-tp01-dp00.safetensors',
      'model-tp01-dp01.safetensors',
      'optimizer-tp00-dp00.safetensors',
      'optimizer-tp00-dp01.safetensors',
      'optimizer-tp01-dp00.safetensors',
      'optimizer-tp01-dp01.safetensors',
      'tokenizer.json',
    ]);

    const m = await readCheckpointManifest(dir);
    expect(m.formatVersion).toBe(2);
    expect(m.layout).toEqual({ tensorParallel: 2, dataParallel: 2 });
    expect(m.training).toEqual(TRAINING);
    expect(m.tokenizerFile).toBe('tokenizer.json');
    // Each unit once: the embedding's TP1 piece holds only its 3 valid rows (padding dropped).
    const emb = m.tensors.filter((t) => t.name === 'embeddings.word.weight');
    expect(emb.map((t) => t.slice)).toEqual([
      [
        { start: 0, length: 8 },
        { start: 0, length: 6 },
      ],
      [
        { start: 8, length: 3 },
        { start: 0, length: 6 },
      ],
    ]);
    const head = m.tensors.filter((t) => t.name === 'head.weight').map((t) => t.slice[1]);
    expect(head).toEqual([
      { start: 0, length: 8 },
      { start: 8, length: 3 },
    ]);
    const pieceKeys = m.tensors.map((t) => `${t.name}${JSON.stringify(t.slice)}`);
    expect(new Set(pieceKeys).size).toBe(pieceKeys.length);
    expect(m.tensors.filter((t) => t.name === 'final_norm.weight')).toHaveLength(1);
    for (const t of m.tensors) {
      const header = await readSafetensorsHeader(path.join(dir, t.file));
      const e = header.entries.find((x) => x.name === t.name);
      expect(e?.shape).toEqual(t.slice.map((s) => s.length));
    }

    for (const tp of [1, 2, 4]) await expectEveryRankReads(dir, model, tp);
    // A data-parallel replica has the same table as the first one and reads the same.
    const replica = await readRankState(dir, m, rankShard(model, 10, 2, 2, 1, 1).table);
    expectBitwise(replica.params, flatFor(tableFor(2, 1), model.params));
    expect(replica.m).toBeUndefined();

    const loaded = await loadCheckpoint(root);
    expectWholeModel(loaded, model);
    expect(loaded.training).toEqual(TRAINING);
    expect(loaded.extra).toEqual({ note: 'fake engine' });
    expect(loaded.tokenizerJson).toContain('BPE');
    await expect(verifyCheckpoint(root)).resolves.toMatchObject({ dir });
  });

  it('reshards between layouts: TP4, TP1×DP3 and TP2×DP1 saves load in every TP size', async () => {
    const root = path.join(tmp, 'r');
    const layouts: Array<[number, number]> = [
      [4, 1],
      [1, 3],
      [2, 1],
      [4, 2],
    ];
    for (const [i, [tp, dp]] of layouts.entries()) {
      const model = wholeModel(10 + i);
      const { dir } = await saveSharded(root, model, 100 + i, tp, dp, 10);
      for (const readTp of [1, 2, 4]) await expectEveryRankReads(dir, model, readTp);
      expectWholeModel(await loadCheckpoint(dir), model);
    }
  });

  it('tensors cut into row ranges by several ranks commit, verify and reshard bitwise', async () => {
    const root = path.join(tmp, 'r');
    const layouts: Array<[number, number]> = [
      [2, 3],
      [1, 4],
    ];
    for (const [i, [tp, dp]] of layouts.entries()) {
      const model = wholeModel(20 + i, BIG_SPECS);
      const reports = await writeAllRanks(root, model, 200 + i, tp, dp, BIG_SPECS);
      const { dir, manifest } = await commitCheckpoint(root, reports, { keep: 10 });
      // More pieces than TP ranks: the big tensors were cut along their first dim.
      const pieces = (name: string) => manifest.tensors.filter((t) => t.name === name);
      for (const name of ['embeddings.word.weight', 'head.weight', 'exp_avg_sq.head.weight']) {
        expect(pieces(name).length, name).toBeGreaterThan(tp);
      }
      if (tp === 2) {
        expect(pieces('embeddings.position.weight').length).toBeGreaterThan(1);
        // TP rank 1's vocabulary rows end in padding, which no piece stores: [1028, 2050) in all.
        const rows = pieces('embeddings.word.weight').filter((t) => t.slice[0]!.start >= 1028);
        expect(rows.reduce((n, t) => n + t.slice[0]!.length, 0)).toBe(2050 - 1028);
        const cols = pieces('head.weight').filter((t) => t.slice[1]!.start === 1028);
        expect(cols.map((t) => t.slice[1]!.length)).toEqual(cols.map(() => 2050 - 1028));
      }
      for (const r of reports) {
        const names = r.tensors.map((t) => t.name);
        expect(new Set(names).size).toBe(names.length);
      }
      for (const readTp of [1, 2, 4]) await expectEveryRankReads(dir, model, readTp, BIG_SPECS);
      expectWholeModel(await loadCheckpoint(dir), model, BIG_SPECS);
    }
  });

  it('saveCheckpoint writes the same format (a TP1×DP1 shard) that readRankState reshards', async () => {
    const root = path.join(tmp, 'r');
    const model = wholeModel(3);
    const { params, state } = namedTensors(model);
    const { dir, manifest } = await saveCheckpoint(root, {
      step: 7,
      consumedSamples: 70,
      config: {},
      arch: 'bert',
      optimizer: { name: 'lamb', step: 7, state },
      params,
      training: TRAINING,
    });
    expect(manifest.layout).toEqual({ tensorParallel: 1, dataParallel: 1 });
    expect(manifest.training).toEqual(TRAINING);
    for (const tp of [1, 2, 4]) await expectEveryRankReads(dir, model, tp);
    await expect(
      saveCheckpoint(root, { ...(await loadCheckpoint(dir)) }, { layout: { tensorParallel: 2, dataParallel: 1 } }),
    ).rejects.toMatchObject({
      code: 'ERR_CHECKPOINT_INVALID_ARG',
    });
  });

  it('reads a large row-split tensor from another layout without reading whole files', async () => {
    const root = path.join(tmp, 'r');
    const rows = 512;
    const cols = 2048;
    const spec = [{ name: 'big.weight', globalShape: [rows, cols], splitDim: 1 }];
    const whole = wholeModel(5, spec);
    const dir = checkpointDirFor(root, 1);
    const reports = await Promise.all(
      [0, 1].map((t) => {
        const table = tableFor(2, t, spec);
        return writeShard(
          dir,
          {
            step: 1,
            rank: t,
            tpRank: t,
            tpSize: 2,
            dpRank: 0,
            dpSize: 1,
            table,
            params: flatFor(table, whole.params),
            optimizer: { name: 'adamw', step: 1, m: flatFor(table, whole.m), v: flatFor(table, whole.v) },
          },
          t === 0 ? headerFor(1, 2, 1) : undefined,
        );
      }),
    );
    await commitCheckpoint(root, reports);
    const manifest = await readCheckpointManifest(dir);
    // TP4 rank 1 needs columns [512, 1024): half of TP2 rank 0's piece, row by row.
    const table = tableFor(4, 1, spec);
    const got = await readRankState(dir, manifest, table);
    expectBitwise(got.params, flatFor(table, whole.params));
    expect(got.bytesRead).toBeLessThan(rows * (cols / 4) * 4 + 4096);
    const one = tableFor(1, 0, spec);
    const all = await readRankState(dir, manifest, one, { optimizer: true });
    expectBitwise(all.v as Float32Array, whole.v.get('big.weight') as Float32Array);
  });

  it('a re-save of a committed step uncommits it before writing, and drops stale shard files', async () => {
    const root = path.join(tmp, 'r');
    await saveSharded(root, wholeModel(1), 5, 2, 2);
    const dir = checkpointDirFor(root, 5);
    const model = wholeModel(2);
    const reports = await writeAllRanks(root, model, 5, 1, 1);
    expect(fs.existsSync(path.join(dir, 'manifest.pb'))).toBe(false);
    await expect(loadCheckpoint(dir)).rejects.toMatchObject({ code: 'ERR_CHECKPOINT_NOT_FOUND' });
    await commitCheckpoint(root, reports);
    expect(fs.readdirSync(dir).sort()).toEqual([
      'manifest.pb',
      'model-tp00-dp00.safetensors',
      'optimizer-tp00-dp00.safetensors',
      'tokenizer.json',
    ]);
    expectWholeModel(await loadCheckpoint(dir), model);
  });

  it('rejects shards that do not match the layout or their table', async () => {
    const model = wholeModel(1);
    const dir = path.join(tmp, 'step-0000001');
    const shard = rankShard(model, 1, 2, 2, 1, 0);
    await expect(writeShard(dir, { ...shard, rank: 3 })).rejects.toThrow(
      /rank 3 is not dpRank \* tpSize \+ tpRank = 1/,
    );
    await expect(writeShard(dir, { ...shard, params: shard.params.subarray(1) })).rejects.toMatchObject({
      code: 'ERR_CHECKPOINT_INVALID_ARG',
    });
    await expect(writeShard(dir, rankShard(model, 1, 2, 2, 0, 0), headerFor(1, 4, 1))).rejects.toThrow(
      /header layout TP4×DP1 differs/,
    );
  });
});

describe('commit checks', () => {
  it('a missing rank leaves a gap, named by tensor, range and rank', async () => {
    const root = path.join(tmp, 'r');
    const reports = await writeAllRanks(root, wholeModel(1), 3, 2, 2);
    const err = await rejection(commitCheckpoint(root, reports.slice(0, 3)));
    expect(err.code).toBe('ERR_SHARD_REPORT');
    expect(err.message).toMatch(/tensor "[^"]+" \[[\d, ]*\]: no piece covers \[\d+:\d+/);
    expect(err.message).toContain('no report from rank 3 (tp1 dp1)');
    expect(fs.existsSync(path.join(checkpointDirFor(root, 3), 'manifest.pb'))).toBe(false);
  });

  it('overlapping pieces are rejected naming the tensor and both writers', async () => {
    const root = path.join(tmp, 'r');
    const reports = await writeAllRanks(root, wholeModel(1), 3, 2, 2);
    const victim = reports.flatMap((r) => r.tensors).find((t) => t.name === 'layers.0.mlp.up.weight' && t.tpRank === 1);
    if (victim === undefined) throw new Error('no tp1 piece of up.weight');
    victim.slice[0] = { start: 2, length: 4 };
    const err = await rejection(commitCheckpoint(root, reports));
    expect(err.code).toBe('ERR_SHARD_REPORT');
    expect(err.message).toMatch(
      /tensor "layers\.0\.mlp\.up\.weight": pieces overlap at \[2:4, 0:6\]: tp0\/dp\d in .* and tp1\/dp\d in/,
    );
  });

  it('needs exactly one header, one step, and each file once', async () => {
    const root = path.join(tmp, 'r');
    const reports = await writeAllRanks(root, wholeModel(1), 3, 2, 2);
    const noHeader = reports.map((r) => ({ ...r, header: undefined }));
    await expect(commitCheckpoint(root, noHeader)).rejects.toThrow(/0 reports carry a header/);
    const twoHeaders = reports.map((r) => ({ ...r, header: headerFor(3, 2, 2) }));
    await expect(commitCheckpoint(root, twoHeaders)).rejects.toThrow(/4 reports carry a header/);
    const otherStep = reports.map((r, i) => (i === 2 ? { ...r, step: 4 } : r));
    await expect(commitCheckpoint(root, otherStep)).rejects.toThrow(/reported step 4/);
    const dupFile = reports.map((r, i) =>
      i === 1 ? { ...r, files: [...r.files, ...(reports[0] as ShardReport).files.slice(0, 1)] } : r,
    );
    await expect(commitCheckpoint(root, dupFile)).rejects.toThrow(/is listed by both rank 0 \(tp0 dp0\) and rank 1/);
    await expect(commitCheckpoint(root, [])).rejects.toMatchObject({ code: 'ERR_SHARD_REPORT' });
  });

  it('a file the committer cannot see means the directory is not shared', async () => {
    const root = path.join(tmp, 'r');
    const reports = await writeAllRanks(root, wholeModel(1), 3, 2, 1);
    const file = path.join(checkpointDirFor(root, 3), 'model-tp01-dp00.safetensors');
    fs.rmSync(file);
    const err = await rejection(commitCheckpoint(root, reports));
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/filesystem every node shares/);
  });
});

describe('shard reports on the wire', () => {
  it('round-trip through protobuf, header and training state included', async () => {
    const reports = await writeAllRanks(path.join(tmp, 'r'), wholeModel(1), 3, 2, 2);
    for (const r of reports) expect(decodeShardReport(encodeShardReport(r))).toEqual(r);
  });

  it('reject garbage, unsafe paths, bad slices and a header without training state', async () => {
    const [r0] = await writeAllRanks(path.join(tmp, 'r'), wholeModel(1), 3, 1, 1);
    const report = r0 as ShardReport;
    expect(() => decodeShardReport(Uint8Array.from([0xff, 0xff, 0xff]))).toThrow(/not a valid protobuf/);
    const T = shardReportProtoType();
    const raw = (patch: (o: Record<string, unknown>) => void) => {
      const o = T.toObject(T.decode(encodeShardReport(report)), {
        longs: String,
        enums: Number,
        defaults: true,
        arrays: true,
      });
      patch(o);
      return T.encode(T.fromObject(o)).finish();
    };
    const unsafe = raw((o) => {
      (o.files as Array<{ path: string }>)[0]!.path = '../x';
    });
    expect(() => decodeShardReport(unsafe)).toThrow(
      expect.objectContaining({
        code: 'ERR_SHARD_REPORT',
        message: expect.stringContaining('unsafe file path "../x"'),
      }),
    );
    const badSlice = raw((o) => {
      (o.tensors as Array<{ slice: unknown[] }>)[0]!.slice.pop();
    });
    expect(() => decodeShardReport(badSlice)).toThrow(/slice dims for a rank-2 tensor/);
    const noTraining = raw((o) => {
      (o.header as { training: unknown }).training = null;
    });
    expect(() => decodeShardReport(noTraining)).toThrow(/header lacks the training state/);
    const wrongSha = raw((o) => {
      (o.tensors as Array<{ fileSha256: string }>)[0]!.fileSha256 = 'ab'.repeat(32);
    });
    expect(() => decodeShardReport(wrongSha)).toThrow(/file_sha256 differs/);
  });
});

describe('corruption, verification and resume', () => {
  async function threeSaves(root: string) {
    for (const step of [10, 20, 30]) await saveSharded(root, wholeModel(step), step, 2, 2);
    return [10, 20, 30].map((s) => checkpointDirFor(root, s));
  }

  it('a flipped byte in a shard names that file (sha256 mismatch)', async () => {
    const root = path.join(tmp, 'r');
    const [, , d30] = await threeSaves(root);
    const file = path.join(d30 as string, 'optimizer-tp01-dp00.safetensors');
    const bad = fs.readFileSync(file);
    bad[bad.length - 3] = (bad[bad.length - 3] as number) ^ 0x10;
    fs.writeFileSync(file, bad);
    const err = await rejection(verifyCheckpoint(d30 as string));
    expect(err.code).toBe('ERR_CHECKPOINT_CORRUPT');
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/sha256 mismatch/);
    const explicit = await rejection(selectResumeCheckpoint(d30 as string, root));
    expect(explicit.message).toContain(file);
    // Through the root, an explicit path follows latest (step 30) and still refuses to fall back.
    await expect(selectResumeCheckpoint(root, root)).rejects.toThrow(/sha256 mismatch/);
  });

  it('a truncated shard is "truncated" for verify and for a resharding read', async () => {
    const root = path.join(tmp, 'r');
    const [, d20] = await threeSaves(root);
    const file = path.join(d20 as string, 'model-tp00-dp01.safetensors');
    fs.truncateSync(file, fs.statSync(file).size - 8);
    const err = await rejection(verifyCheckpoint(d20 as string));
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/truncated: \d+ bytes, manifest says \d+/);
    const manifest = await readCheckpointManifest(d20 as string);
    const read = await rejection(readRankState(d20 as string, manifest, tableFor(1, 0)));
    expect(read.message).toContain(file);
    expect(read.message).toMatch(/truncated/);
  });

  it('a missing or torn manifest: not committed, or corrupt naming manifest.pb', async () => {
    const root = path.join(tmp, 'r');
    const [d10, d20] = (await threeSaves(root)) as [string, string, string];
    const manifestPath = path.join(d20, 'manifest.pb');
    const bytes = fs.readFileSync(manifestPath);
    for (const len of [0, 1, 9, Math.floor(bytes.length / 2), bytes.length - 7, bytes.length - 6, bytes.length - 1]) {
      fs.writeFileSync(manifestPath, bytes.subarray(0, len));
      const err = await rejection(readCheckpointManifest(d20));
      expect(err.code).toBe('ERR_CHECKPOINT_CORRUPT');
      expect(err.message).toContain(manifestPath);
    }
    fs.rmSync(path.join(d10, 'manifest.pb'));
    const err = await rejection(selectResumeCheckpoint(d10, root));
    expect(err.code).toBe('ERR_CHECKPOINT_NOT_FOUND');
    expect(err.message).toMatch(/not a committed checkpoint/);
  });

  it("resume 'auto' skips a corrupt newest and an uncommitted newer directory", async () => {
    const root = path.join(tmp, 'r');
    const [, d20, d30] = (await threeSaves(root)) as [string, string, string];
    const file = path.join(d30, 'model-tp00-dp00.safetensors');
    const bad = fs.readFileSync(file);
    bad[bad.length - 1] = (bad[bad.length - 1] as number) ^ 1;
    fs.writeFileSync(file, bad);
    await writeAllRanks(root, wholeModel(40), 40, 2, 2); // crashed before the commit
    const skipped: Array<[string, string]> = [];
    const chosen = await selectResumeCheckpoint('auto', root, (dir, reason) => skipped.push([dir, reason]));
    expect(chosen?.dir).toBe(d20);
    expect(chosen?.manifest.step).toBe(20);
    expect(skipped.map(([d]) => d)).toEqual([checkpointDirFor(root, 40), d30]);
    expect(skipped[0]?.[1]).toMatch(/not committed/);
    expect(skipped[1]?.[1]).toContain(file);
    expect(skipped[1]?.[1]).toMatch(/sha256 mismatch/);
    await expect(selectResumeCheckpoint(d30, root)).rejects.toThrow(/sha256 mismatch/);
    expect(await selectResumeCheckpoint('auto', path.join(tmp, 'nothing-here'))).toBeUndefined();
  });

  it('a piece missing from its file is caught by verification', async () => {
    const root = path.join(tmp, 'r');
    const { dir, manifest } = await saveSharded(root, wholeModel(1), 1, 1, 1);
    // Rewrite a shard without one tensor and patch the manifest's sizes and checksums to match.
    const file = path.join(dir, 'model-tp00-dp00.safetensors');
    const loaded = await loadCheckpoint(dir);
    const written = await writeSafetensors(file, loaded.params.slice(1));
    const patched = {
      ...manifest,
      files: manifest.files.map((f) =>
        f.path === 'model-tp00-dp00.safetensors' ? { ...f, sizeBytes: written.sizeBytes, sha256: written.sha256 } : f,
      ),
      tensors: manifest.tensors.map((t) =>
        t.file === 'model-tp00-dp00.safetensors' ? { ...t, fileSha256: written.sha256 } : t,
      ),
    };
    fs.writeFileSync(path.join(dir, 'manifest.pb'), encodeManifest(patched));
    const err = await rejection(verifyCheckpoint(dir));
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/tensor "embeddings\.word\.weight" listed in the manifest is missing from the file/);
  });
});

describe('format version 1', () => {
  it('whole-tensor model.safetensors / optimizer.safetensors checkpoints still load and reshard', async () => {
    const root = path.join(tmp, 'r');
    const dir = checkpointDirFor(root, 50);
    fs.mkdirSync(dir, { recursive: true });
    const model = wholeModel(7);
    const { params, state } = namedTensors(model);
    const mf = await writeSafetensors(path.join(dir, 'model.safetensors'), params, {
      format: 'paratrain',
      role: 'model',
    });
    const of = await writeSafetensors(path.join(dir, 'optimizer.safetensors'), state, {
      format: 'paratrain',
      role: 'optimizer',
    });
    const entry = (
      t: { name: string; shape: number[] },
      file: string,
      sha: string,
      role: 'parameter' | 'optimizer_state',
    ) => ({
      name: t.name,
      dtype: 'F32',
      globalShape: t.shape,
      file,
      slice: t.shape.map((d) => ({ start: 0, length: d })),
      fileSha256: sha,
      role,
      key: '',
      tpRank: 0,
      dpRank: 0,
    });
    fs.writeFileSync(
      path.join(dir, 'manifest.pb'),
      encodeManifest({
        formatVersion: 1,
        paratrainVersion: '0.0.9',
        step: 50,
        consumedSamples: 1600,
        configJson: '{"model":{"arch":"gpt"}}',
        arch: 'gpt',
        layout: { tensorParallel: 1, dataParallel: 1 },
        optimizer: { name: 'adamw', step: 50 },
        tensors: [
          ...params.map((t) => entry(t, 'model.safetensors', mf.sha256, 'parameter')),
          ...state.map((t) => entry(t, 'optimizer.safetensors', of.sha256, 'optimizer_state')),
        ],
        files: [
          { path: 'model.safetensors', sizeBytes: mf.sizeBytes, sha256: mf.sha256 },
          { path: 'optimizer.safetensors', sizeBytes: of.sizeBytes, sha256: of.sha256 },
        ],
        tokenizerFile: '',
        createdUnixMs: 1,
        extraJson: '{"rng":[1,2]}',
      }),
    );
    const loaded = await loadCheckpoint(root);
    expectWholeModel(loaded, model);
    expect(loaded.training).toBeUndefined();
    expect(loaded.extra).toEqual({ rng: [1, 2] });
    for (const tp of [1, 2, 4]) await expectEveryRankReads(dir, model, tp);
    const chosen = await selectResumeCheckpoint('auto', root);
    expect(chosen?.manifest.formatVersion).toBe(1);
  });
});
