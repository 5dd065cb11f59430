// convert.ts — paratrain tensors ⇄ Hugging Face models, for any family: the tensor names and shapes
// come from the engine's parameter table, the HF names and layouts from the family's module.
import * as path from 'node:path';

import { numelOf, type AnyTensor, type NamedTensor } from '../../checkpoint';
import { validateConfig } from '../../config/load';
import type { Config } from '../../config/schema';
import { paramTableFor } from '../../engine/engine';
import type { ParamEntry } from '../../engine/native';
import { quoted } from '../../text/quoted';
import { albert } from './albert';
import { bert } from './bert';
import { exists, readHuggingFaceDir, writeHuggingFaceDir, type HfDirContents } from './directory';
import { electra } from './electra';
import type { ExportOptions, HfConfig, HfFamily, HfModel } from './family';
import { gpt2 } from './gpt2';
import { roberta } from './roberta';
import { taskModel, taskOfHfConfig } from './tasks';
import { HfFormatError } from './tensors';

export const HF_FAMILIES: readonly HfFamily[] = [bert, gpt2, roberta, albert, electra];

export function hfFamilyOf(arch: Config['model']['arch']): HfFamily {
  const f = HF_FAMILIES.find((x) => x.arch === arch);
  if (!f) throw new HfFormatError(`no Hugging Face mapping for model.arch ${arch}`);
  return f;
}

function detectFamily(config: HfConfig, where: string): HfFamily {
  const f = HF_FAMILIES.find((x) => x.claims(config));
  if (f) return f;
  throw new HfFormatError(
    `${where}: unsupported model_type ${quoted(config['model_type'])} / architectures ` +
      `${quoted(config['architectures'] ?? null)}; paratrain reads ` +
      HF_FAMILIES.flatMap((x) => x.architectures).join(', '),
  );
}

const shapeStr = (s: readonly number[]) => `[${s.join(', ')}]`;
const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/** One HF model directory to write: its subdirectory ('' or 'generator'), config.json and tensors. */
export interface HfModelFiles {
  subdir: string;
  config: HfConfig;
  tensors: NamedTensor[];
}

/**
 * paratrain's whole tensors (every parameter of `c`'s model, by name) as the family's HF model(s).
 * The tensors may share buffers with `params`.
 */
export function toHuggingFace(c: Config, params: readonly NamedTensor[], opts: ExportOptions = {}): HfModelFiles[] {
  const table = paramTableFor(c);
  const byName = new Map<string, NamedTensor>();
  for (const p of params) {
    if (byName.has(p.name)) throw new HfFormatError(`duplicate parameter ${p.name}`);
    byName.set(p.name, p);
  }
  for (const e of table) {
    const p = byName.get(e.name);
    if (!p) throw new HfFormatError(`missing parameter ${e.name} (expected shape ${shapeStr(e.globalShape)})`);
    if (!sameShape(p.shape, e.globalShape) || p.data.length !== numelOf(e.globalShape))
      throw new HfFormatError(
        `parameter ${e.name} has shape ${shapeStr(p.shape)}, expected ${shapeStr(e.globalShape)}`,
      );
  }
  const known = new Set(table.map((e) => e.name));
  const extra = params.filter((p) => !known.has(p.name)).map((p) => p.name);
  if (extra.length > 0) throw new HfFormatError(`unexpected parameter(s) for ${c.model.arch}: ${extra.join(', ')}`);
  return hfModels(c, table, opts).map((m) => ({
    subdir: m.subdir,
    config: m.config,
    tensors: m.tensors.map((t) => ({
      name: t.hf,
      shape: [...t.hfShape],
      data: t.toHf(t.ours.map((name) => (byName.get(name) as NamedTensor).data)),
    })),
  }));
}

/** The HF model(s) of a config: the family's pretraining model(s), or its fine-tuned model for a task. */
function hfModels(c: Config, table: readonly ParamEntry[], opts: ExportOptions): HfModel[] {
  const family = hfFamilyOf(c.model.arch);
  return c.task.name === 'pretrain' ? family.models(c, table, opts) : [taskModel(family, c, table, opts)];
}

/** Writes the HF model directories of `c`'s model under `outDir`; returns the written paths. */
export async function exportHuggingFace(
  outDir: string,
  c: Config,
  params: readonly NamedTensor[],
  opts: ExportOptions & { tokenizerJson?: string } = {},
): Promise<{ dirs: string[]; files: string[] }> {
  const dirs: string[] = [];
  const files: string[] = [];
  for (const m of toHuggingFace(c, params, opts)) {
    const dir = path.join(outDir, m.subdir);
    dirs.push(dir);
    files.push(...(await writeHuggingFaceDir(dir, m.config, m.tensors, opts.tokenizerJson)));
  }
  return { dirs, files };
}

export interface HfImport {
  /** A complete paratrain config for the imported model (train keys at their defaults unless given). */
  config: Config;
  /** Every parameter of the model, whole, in parameter-table order. */
  params: NamedTensor[];
  /** Differences worth telling (activation, eps, ignored tensors, ...). */
  warnings: string[];
  tokenizerJson?: string;
}

function arraysEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The tensors of one HF directory under the model's keys, with tied duplicates checked and removed. */
function keyedTensors(m: HfModel, contents: HfDirContents): Map<string, { orig: string; t: AnyTensor }> {
  const byKey = new Map<string, { orig: string; t: AnyTensor }>();
  for (const t of contents.tensors) {
    if (m.ignored.some((re) => re.test(t.name))) continue;
    const k = m.normaliseKey(t.name);
    const prev = byKey.get(k);
    if (prev !== undefined) throw new HfFormatError(`tensors ${prev.orig} and ${t.name} both map to ${k}`);
    byKey.set(k, { orig: t.name, t });
  }
  for (const [dup, primary] of m.tied) {
    const d = byKey.get(dup);
    if (d === undefined) continue;
    const p = byKey.get(primary);
    byKey.delete(dup);
    if (p === undefined) {
      byKey.set(primary, d);
      continue;
    }
    if (
      !(d.t.data instanceof Float32Array) ||
      !(p.t.data instanceof Float32Array) ||
      !sameShape(d.t.shape, p.t.shape) ||
      !arraysEqual(d.t.data, p.t.data)
    )
      throw new HfFormatError(
        `${d.orig} differs from ${p.orig}; paratrain ties these weights, so untied checkpoints cannot be imported`,
      );
  }
  return byKey;
}

/**
 * HF directory contents (the main one, and the generator's for ELECTRA) → paratrain's config and
 * whole tensors. Buffers are skipped, tied duplicates must equal their primary, missing tensors and
 * wrong shapes are errors, unknown tensors warnings.
 */
export function fromHuggingFace(
  dirs: { main: HfDirContents; generator?: HfDirContents },
  base: { train?: Record<string, unknown> } = {},
): HfImport {
  const where = path.join(dirs.main.dir, 'config.json');
  const family = detectFamily(dirs.main.config, where);
  const warnings: string[] = [];
  const task = taskOfHfConfig(dirs.main.config, where);
  const { model, data } = family.fromHfConfig({ main: dirs.main.config, generator: dirs.generator?.config }, warnings);
  const positions = model.max_positions as number;
  const config = validateConfig(
    {
      model: { arch: family.arch, ...model, seq_len: Math.min(positions, family.arch === 'gpt' ? 1024 : 128) },
      train: base.train ?? { steps: 1000, micro_batch: 8, lr: 1e-4 },
      ...(data ? { data } : {}),
      ...(task ? { task } : {}),
    },
    `the model of ${where}`,
  );
  const pad = dirs.main.config['pad_token_id'];
  const table = paramTableFor(config);
  const models = hfModels(config, table, typeof pad === 'number' ? { pad } : {});
  const ours = new Map<string, Float32Array>();
  for (const m of models) {
    const contents = m.subdir === '' ? dirs.main : dirs.generator;
    if (!contents) throw new HfFormatError(`${dirs.main.dir}: the ${m.subdir} model is missing`);
    const byKey = keyedTensors(m, contents);
    for (const t of m.tensors) {
      const e = byKey.get(t.hf);
      if (e === undefined)
        throw new HfFormatError(
          `${contents.dir}: missing tensor ${t.hf} (expected shape ${shapeStr(t.hfShape)}) for ${family.arch} per config.json`,
        );
      if (!sameShape(e.t.shape, t.hfShape))
        throw new HfFormatError(
          `${contents.dir}: tensor ${e.orig} has shape ${shapeStr(e.t.shape)}, expected ${shapeStr(t.hfShape)} per config.json`,
        );
      if (!(e.t.data instanceof Float32Array))
        throw new HfFormatError(`${contents.dir}: tensor ${e.orig} is an integer tensor, expected floating point`);
      const parts = t.fromHf(e.t.data);
      t.ours.forEach((name, i) => {
        const value = parts[i] as Float32Array;
        const prev = ours.get(name);
        if (prev === undefined) ours.set(name, value);
        else if (!arraysEqual(prev, value))
          warnings.push(
            `${contents.dir}: ${t.hf} differs from the first model's copy; paratrain shares it and keeps the first`,
          );
      });
      byKey.delete(t.hf);
    }
    for (const { orig } of byKey.values()) warnings.push(`ignored unexpected tensor ${orig} in ${contents.dir}`);
  }
  const params = table.map((e) => ({
    name: e.name,
    shape: [...e.globalShape],
    data: ours.get(e.name) as Float32Array,
  }));
  const out: HfImport = { config, params, warnings };
  if (dirs.main.tokenizerJson !== undefined) out.tokenizerJson = dirs.main.tokenizerJson;
  return out;
}

/** Reads an HF directory (and ELECTRA's generator: `generator`, else <dir>/generator) and converts it. */
export async function importHuggingFace(
  dir: string,
  opts: { generator?: string; train?: Record<string, unknown> } = {},
): Promise<HfImport> {
  const main = await readHuggingFaceDir(dir);
  const family = detectFamily(main.config, path.join(dir, 'config.json'));
  let generator: HfDirContents | undefined;
  if (family.needsGenerator) {
    const gdir = opts.generator ?? path.join(dir, 'generator');
    if (opts.generator !== undefined || (await exists(path.join(gdir, 'config.json'))))
      generator = await readHuggingFaceDir(gdir);
  } else if (opts.generator !== undefined) {
    throw new HfFormatError(`--generator: a ${family.arch} model has no generator (only electra has one)`);
  }
  return fromHuggingFace({ main, generator }, opts);
}
