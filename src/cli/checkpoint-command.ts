// checkpoint-command.ts — `paratrain checkpoint ls | verify | inspect`: what is on disk, whether it
// would load, and what a checkpoint holds. Problems are thrown as CheckpointErrors; main.ts prints
// them as one line and exits 1.
import type { Command } from 'commander';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

import {
  CheckpointError,
  corrupt,
  headerFromManifest,
  isStepDirName,
  listCheckpoints,
  MANIFEST_FILE,
  readCheckpointManifest,
  readLatest,
  resolveCheckpointDir,
  selectResumeCheckpoint,
  verifyCheckpoint,
  verifyCheckpointDir,
  type CheckpointManifest,
} from '../checkpoint';

interface StepDirSummary {
  name: string;
  dir: string;
  step: number;
  committed: boolean;
  /** Why the directory does not load, when it does not. */
  problem: string | null;
  latest: boolean;
  layout: { tensorParallel: number; dataParallel: number } | null;
  sizeBytes: number;
  files: number;
  createdUnixMs: number | null;
}

const layoutText = (l: { tensorParallel: number; dataParallel: number } | null) =>
  l === null ? '-' : `TP${l.tensorParallel}xDP${l.dataParallel}`;
const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
const manifestBytes = (m: CheckpointManifest) => m.files.reduce((n, f) => n + f.sizeBytes, 0);

async function requireDir(p: string): Promise<void> {
  const st = await fsp.stat(p).catch(() => undefined);
  if (st?.isDirectory() !== true) {
    throw new CheckpointError('ERR_CHECKPOINT_NOT_FOUND', `${p}: no such checkpoint directory`, p);
  }
}

/** Regular files in an uncommitted directory and their total size (what a crashed save left). */
async function filesIn(dir: string): Promise<{ files: number; sizeBytes: number }> {
  let files = 0;
  let sizeBytes = 0;
  for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
    if (!e.isFile()) continue;
    files++;
    sizeBytes += (await fsp.stat(path.join(dir, e.name))).size;
  }
  return { files, sizeBytes };
}

async function summarise(root: string): Promise<StepDirSummary[]> {
  const latest = await readLatest(root);
  const out: StepDirSummary[] = [];
  for (const c of await listCheckpoints(root)) {
    const base = { name: c.name, dir: c.dir, step: c.step, committed: c.committed, latest: c.name === latest };
    if (!c.committed) {
      const problem = `not committed: no ${MANIFEST_FILE} (the save was interrupted or is still running)`;
      out.push({ ...base, problem, layout: null, createdUnixMs: null, ...(await filesIn(c.dir)) });
      continue;
    }
    try {
      const m = await readCheckpointManifest(c.dir);
      out.push({
        ...base,
        problem: null,
        layout: m.layout,
        sizeBytes: manifestBytes(m),
        files: m.files.length,
        createdUnixMs: m.createdUnixMs,
      });
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      out.push({ ...base, problem: e.message, layout: null, createdUnixMs: null, ...(await filesIn(c.dir)) });
    }
  }
  return out;
}

function printTable(rows: string[][]): void {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const r of rows) {
    process.stdout.write(
      r
        .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] as number)))
        .join('  ')
        .trimEnd() + '\n',
    );
  }
}

async function listCommand(root: string, o: { json?: boolean }): Promise<void> {
  await requireDir(root);
  const rows = await summarise(root);
  if (o.json) {
    process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
    return;
  }
  if (rows.length === 0) {
    process.stdout.write(`${root}: no step directories\n`);
    return;
  }
  printTable([
    ['STEP', 'STATUS', 'LATEST', 'LAYOUT', 'SIZE_MB', 'FILES', 'CREATED'],
    ...rows.map((r) => [
      r.name,
      r.problem === null ? 'committed' : r.committed ? `unreadable (${r.problem})` : 'not committed',
      r.latest ? 'latest' : '',
      layoutText(r.layout),
      mb(r.sizeBytes),
      String(r.files),
      r.createdUnixMs === null ? '-' : new Date(r.createdUnixMs).toISOString(),
    ]),
  ]);
}

function okLine(dir: string, m: CheckpointManifest): string {
  return `OK ${dir}: step ${m.step}, ${m.files.length} files, ${manifestBytes(m)} bytes, ${layoutText(m.layout)}\n`;
}

async function isStepDir(p: string): Promise<boolean> {
  if (isStepDirName(path.basename(path.resolve(p)))) return true;
  return (await fsp.stat(path.join(p, MANIFEST_FILE)).catch(() => undefined)) !== undefined;
}

async function verifyCommand(target: string, o: { all?: boolean }): Promise<void> {
  await requireDir(target);
  if (await isStepDir(target)) {
    const { dir, manifest } = await verifyCheckpoint(target);
    process.stdout.write(okLine(dir, manifest));
    return;
  }
  if (!o.all) {
    const chosen = await selectResumeCheckpoint('auto', target, (dir, reason) =>
      process.stderr.write(`skipping ${dir}: ${reason}\n`),
    );
    if (chosen === undefined) {
      throw new CheckpointError('ERR_CHECKPOINT_NOT_FOUND', `${target}: no committed checkpoint verifies`, target);
    }
    process.stdout.write(okLine(chosen.dir, chosen.manifest));
    return;
  }
  let failed = 0;
  let verified = 0;
  for (const c of await listCheckpoints(target)) {
    if (!c.committed) {
      process.stdout.write(`SKIP ${c.dir}: not committed (no ${MANIFEST_FILE})\n`);
      continue;
    }
    try {
      const manifest = await readCheckpointManifest(c.dir);
      await verifyCheckpointDir(c.dir, manifest);
      verified++;
      process.stdout.write(okLine(c.dir, manifest));
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      failed++;
      process.stdout.write(`FAILED ${c.dir}: ${e.message}\n`);
    }
  }
  if (failed > 0) {
    throw new CheckpointError(
      'ERR_CHECKPOINT_CORRUPT',
      `${failed} of ${failed + verified} committed checkpoints failed verification`,
    );
  }
  if (verified === 0) {
    throw new CheckpointError('ERR_CHECKPOINT_NOT_FOUND', `${target}: no committed checkpoint`, target);
  }
}

/** The config keys worth a glance; the whole config is in --json. */
function configSummary(config: Record<string, unknown>): Record<string, unknown> {
  const pick = (section: unknown, keys: string[]) =>
    typeof section === 'object' && section !== null
      ? Object.fromEntries(keys.filter((k) => k in section).map((k) => [k, (section as Record<string, unknown>)[k]]))
      : undefined;
  const out: Record<string, unknown> = {};
  if (config.model !== undefined) out.model = config.model;
  if (config.parallel !== undefined) out.parallel = config.parallel;
  const train = pick(config.train, ['steps', 'micro_batch', 'grad_accum', 'lr', 'schedule', 'seed']);
  if (train !== undefined) out.train = train;
  return out;
}

/** Names compared piecewise, digit runs as numbers: layers.2 < layers.10, exp_avg.x < exp_avg_sq.x. */
function compareNames(a: string, b: string): number {
  const pa = a.match(/\d+|\D+/g) ?? [];
  const pb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const [x, y] = [pa[i] as string, pb[i] as string];
    if (x === y) continue;
    if (/^\d/.test(x) && /^\d/.test(y)) return Number(x) - Number(y);
    return x < y ? -1 : 1;
  }
  return pa.length - pb.length;
}

/** Parameters before optimizer state, then by name. */
function byModelOrder<T extends { name: string; role: string }>(tensors: T[]): T[] {
  const roleRank = (t: T) => (t.role === 'parameter' ? 0 : 1);
  return [...tensors].sort((a, b) => roleRank(a) - roleRank(b) || compareNames(a.name, b.name));
}

async function inspectCommand(target: string, o: { json?: boolean }): Promise<void> {
  const dir = await resolveCheckpointDir(target);
  const m = await readCheckpointManifest(dir);
  const header = headerFromManifest(m, (what) => corrupt(path.join(dir, MANIFEST_FILE), what));
  const config = header.config as Record<string, unknown>;
  interface PieceSummary {
    file: string;
    key: string;
    slice: Array<[number, number]>;
    tpRank: number;
    dpRank: number;
  }
  const tensors = new Map<
    string,
    { name: string; role: string; dtype: string; globalShape: number[]; pieces: PieceSummary[] }
  >();
  for (const t of m.tensors) {
    let entry = tensors.get(t.name);
    if (entry === undefined) {
      entry = { name: t.name, role: t.role, dtype: t.dtype, globalShape: t.globalShape, pieces: [] };
      tensors.set(t.name, entry);
    }
    entry.pieces.push({
      file: t.file,
      key: t.key || t.name,
      slice: t.slice.map((s): [number, number] => [s.start, s.start + s.length]),
      tpRank: t.tpRank,
      dpRank: t.dpRank,
    });
  }
  const summary = {
    dir,
    step: m.step,
    consumedSamples: m.consumedSamples,
    arch: m.arch,
    formatVersion: m.formatVersion,
    paratrainVersion: m.paratrainVersion,
    created: new Date(m.createdUnixMs).toISOString(),
    layout: m.layout,
    optimizer: m.optimizer,
    training: m.training ?? null,
    tokenizerFile: m.tokenizerFile || null,
    files: m.files,
    config,
    extra: header.extra ?? null,
    tensors: byModelOrder([...tensors.values()]),
  };
  if (o.json) {
    process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
    return;
  }
  const t = m.training;
  const training =
    t === undefined
      ? 'none recorded'
      : `rng seed ${t.rng.seed} (${t.rng.scheme}); lr ${t.schedule.kind} ${t.schedule.lr} → ${t.schedule.minLr} ` +
        `over ${t.schedule.steps} steps, warmup ${t.schedule.warmupSteps}, power ${t.schedule.power}, next lr ${t.schedule.nextLr}; ` +
        `loss scale ${t.lossScale.enabled ? `${t.lossScale.scale} (growth tracker ${t.lossScale.growthTracker})` : 'off'}` +
        `, ${t.lossScale.skippedSteps} skipped steps`;
  printTable([
    ['checkpoint', dir],
    ['step', `${m.step} (consumed samples ${m.consumedSamples})`],
    ['arch', m.arch],
    ['written by', `paratrain ${m.paratrainVersion}, format ${m.formatVersion}, at ${summary.created}`],
    ['layout', layoutText(m.layout)],
    ['optimizer', `${m.optimizer.name}, step ${m.optimizer.step}`],
    ['training', training],
    ['tokenizer', m.tokenizerFile || 'none'],
    ['files', `${m.files.length}, ${mb(manifestBytes(m))} MB`],
    ...Object.entries(configSummary(config)).map(([k, v]) => [`config.${k}`, JSON.stringify(v)]),
  ]);
  process.stdout.write(`\ntensors (${tensors.size}):\n`);
  printTable([
    ['NAME', 'GLOBAL_SHAPE', 'PIECES'],
    ...summary.tensors.map((x) => [
      x.name,
      `[${x.globalShape.join(', ')}]`,
      x.pieces.map((p) => `${p.file}[${p.slice.map(([a, b]) => `${a}:${b}`).join(', ')}]`).join('; '),
    ]),
  ]);
}

export function registerCheckpointCommand(program: Command): void {
  const checkpoint = program
    .command('checkpoint')
    .description('list, verify and inspect checkpoints (see docs/checkpoint-format.md)');
  checkpoint
    .command('ls')
    .description('one line per step directory: committed or not, latest, layout, size, files, time')
    .argument('<root>', 'checkpoints root (<run.dir>/checkpoints)')
    .option('--json', 'print JSON')
    .action(listCommand);
  checkpoint
    .command('verify')
    .description('check files, sizes, sha256, tensor coverage and entries; exit 1 on any problem')
    .argument('<path>', 'a step directory, or a root: the checkpoint `--resume auto` would pick')
    .option('--all', 'verify every committed step directory under the root')
    .action(verifyCommand);
  checkpoint
    .command('inspect')
    .description('what a checkpoint holds: step, layout, optimizer, training state, config, tensors and their pieces')
    .argument('<path>', 'a step directory or a checkpoints root (follows latest)')
    .option('--json', 'print JSON')
    .action(inspectCommand);
}
