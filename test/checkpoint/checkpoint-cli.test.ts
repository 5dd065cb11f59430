// `paratrain checkpoint ls | verify | inspect` as a user runs it: a real process on real files.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { checkpointDirFor, commitCheckpoint, writeShard } from '../../src/checkpoint';
import { headerFor, rankShard, wholeModel } from './fake-engine';

const repo = path.join(__dirname, '..', '..');

function paratrain(args: string[]) {
  const r = spawnSync(process.execPath, [path.join(repo, 'bin', 'paratrain.js'), 'checkpoint', ...args], {
    cwd: repo,
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function save(root: string, step: number, commit: boolean) {
  const dir = checkpointDirFor(root, step);
  const model = wholeModel(step);
  const reports = await Promise.all(
    [0, 1, 2, 3].map((rank) =>
      writeShard(
        dir,
        rankShard(model, step, 2, 2, rank % 2, Math.floor(rank / 2)),
        rank === 0 ? headerFor(step, 2, 2) : undefined,
      ),
    ),
  );
  if (commit) await commitCheckpoint(root, reports);
  return dir;
}

let tmp: string;
let root: string;
let d10: string;
let d20: string;
let d30: string;
beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-ckpt-cli-'));
  root = path.join(tmp, 'checkpoints');
  d10 = await save(root, 10, true);
  d20 = await save(root, 20, true);
  d30 = await save(root, 30, false); // a save that crashed before its commit
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function flipLastByte(file: string) {
  const bytes = fs.readFileSync(file);
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 0x01;
  fs.writeFileSync(file, bytes);
}

describe('paratrain checkpoint', () => {
  it('ls: one line per step directory, committed or not, latest, layout, size, files', () => {
    const r = paratrain(['ls', root]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^STEP\s+STATUS\s+LATEST\s+LAYOUT\s+SIZE_MB\s+FILES\s+CREATED$/);
    expect(lines[1]).toMatch(/^step-0000010\s+committed\s+TP2xDP2\s+\d+\.\d\s+9\s+\d{4}-\d\d-\d\dT/);
    expect(lines[2]).toMatch(/^step-0000020\s+committed\s+latest\s+TP2xDP2\s+\d+\.\d\s+9\s+\d{4}-/);
    expect(lines[3]).toMatch(/^step-0000030\s+not committed\s+-\s+\d+\.\d\s+9\s+-$/);

    const json = paratrain(['ls', '--json', root]);
    expect(json.code).toBe(0);
    const rows = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
    expect(rows.map((x) => [x.step, x.committed, x.latest])).toEqual([
      [10, true, false],
      [20, true, true],
      [30, false, false],
    ]);
    expect(rows[2]?.problem).toMatch(/no manifest\.pb/);
    expect(rows[0]?.layout).toEqual({ tensorParallel: 2, dataParallel: 2 });
  });

  it('inspect: header, training state, config and every piece', () => {
    const r = paratrain(['inspect', d10]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^step\s+10 \(consumed samples 320\)$/m);
    expect(r.stdout).toMatch(/^layout\s+TP2xDP2$/m);
    expect(r.stdout).toMatch(/^optimizer\s+adamw, step 10$/m);
    expect(r.stdout).toMatch(/^training\s+rng seed 42 .*lr poly 0\.0001/m);
    expect(r.stdout).toMatch(/^config\.model\s+\{"arch":"gpt"/m);
    expect(r.stdout).toMatch(
      /^embeddings\.word\.weight\s+\[11, 6\]\s+model-tp00-dp\d\d\.safetensors\[0:8, 0:6\]; model-tp01-dp\d\d\.safetensors\[8:11, 0:6\]$/m,
    );
    const json = paratrain(['inspect', '--json', root]);
    expect(json.code).toBe(0);
    const m = JSON.parse(json.stdout) as {
      step: number;
      training: { rng: { seed: number } };
      tensors: Array<{ name: string; pieces: unknown[] }>;
    };
    expect(m.step).toBe(20);
    expect(m.training.rng.seed).toBe(42);
    expect(m.tensors.find((t) => t.name === 'layers.0.mlp.down.weight')?.pieces).toHaveLength(2);
  });

  it('verify: OK for a good checkpoint; a root verifies what resume auto would pick', () => {
    const one = paratrain(['verify', d10]);
    expect(one.code).toBe(0);
    expect(one.stdout).toBe(`OK ${d10}: step 10, 9 files, ${sizeOf(d10)} bytes, TP2xDP2\n`);
    const auto = paratrain(['verify', root]);
    expect(auto.code).toBe(0);
    expect(auto.stdout).toContain(`OK ${d20}: step 20`);
    expect(auto.stderr).toContain(`skipping ${d30}: not committed`);
    const uncommitted = paratrain(['verify', d30]);
    expect(uncommitted.code).toBe(1);
    expect(uncommitted.stderr).toContain('[ERR_CHECKPOINT_NOT_FOUND]');
    expect(uncommitted.stderr).toMatch(/not a committed checkpoint/);
  });

  it('verify: a corrupt shard names the file and exits 1, without a stack trace', () => {
    const file = path.join(d20, 'model-tp01-dp00.safetensors');
    flipLastByte(file);
    try {
      const r = paratrain(['verify', d20]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('[ERR_CHECKPOINT_CORRUPT]');
      expect(r.stderr).toContain(file);
      expect(r.stderr).toMatch(/sha256 mismatch/);
      expect(r.stderr).not.toMatch(/\n\s+at /);

      const auto = paratrain(['verify', root]);
      expect(auto.code).toBe(0);
      expect(auto.stdout).toContain(`OK ${d10}`);
      expect(auto.stderr).toContain(`skipping ${d20}: ${file}: sha256 mismatch`);

      const all = paratrain(['verify', '--all', root]);
      expect(all.code).toBe(1);
      expect(all.stdout).toContain(`OK ${d10}`);
      expect(all.stdout).toContain(`FAILED ${d20}: ${file}`);
      expect(all.stdout).toContain(`SKIP ${d30}`);
      expect(all.stderr).toMatch(/1 of 2 committed checkpoints failed verification/);
    } finally {
      flipLastByte(file);
    }
  });

  it('a missing path is a clear error', () => {
    for (const cmd of ['ls', 'verify', 'inspect']) {
      const r = paratrain([cmd, path.join(tmp, 'nope')]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('[ERR_CHECKPOINT_NOT_FOUND]');
      expect(r.stderr).toContain(path.join(tmp, 'nope'));
    }
  });
});

function sizeOf(dir: string): number {
  return fs
    .readdirSync(dir)
    .filter((n) => n !== 'manifest.pb')
    .reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
}
