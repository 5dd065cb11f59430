// load.ts — read a config (a YAML file or a preset name), apply `--set key=value` overrides,
// validate, and report every problem with its key path and what is allowed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import type { z } from 'zod';

import { generatorShape, isMaskedLm, layerGroups, lossNames, packing, pairTask, tokenizerKind } from './family';
import { configSchema, type Config } from './schema';
import { PACKAGE_ROOT } from '../package-root';

export class ConfigError extends Error {
  readonly code = 'ERR_CONFIG';
  constructor(
    message: string,
    readonly problems: string[] = [],
  ) {
    super(problems.length ? `${message}\n  ${problems.join('\n  ')}` : message);
  }
}

export const presetDir = path.join(PACKAGE_ROOT, 'configs');

export function listPresets(): string[] {
  if (!fs.existsSync(presetDir)) return [];
  return fs
    .readdirSync(presetDir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.slice(0, -'.yaml'.length))
    .sort();
}

/** A path to a YAML file, or the name of a preset in configs/. */
export function resolveConfigPath(nameOrPath: string): string {
  if (fs.existsSync(nameOrPath) && fs.statSync(nameOrPath).isFile()) return nameOrPath;
  const preset = path.join(presetDir, `${nameOrPath.replace(/\.yaml$/, '')}.yaml`);
  if (!nameOrPath.includes('/') && fs.existsSync(preset)) return preset;
  throw new ConfigError(
    `config '${nameOrPath}' is neither a file nor a preset. Presets: ${listPresets().join(', ')}; ` +
      `or give the path to a YAML file.`,
  );
}

function readYaml(file: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = YAML.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`cannot read config ${file}: ${(err as Error).message}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc))
    throw new ConfigError(`config ${file} must be a YAML mapping (model:, train:, ...)`);
  return doc as Record<string, unknown>;
}

/** Applies one `a.b.c=value` override; the value is parsed as YAML (numbers, booleans, strings). */
export function applyOverride(doc: Record<string, unknown>, assignment: string): void {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new ConfigError(`--set expects key=value (e.g. train.steps=100), got '${assignment}'`);
  const keys = assignment.slice(0, eq).trim().split('.');
  const raw = assignment.slice(eq + 1);
  let value: unknown;
  try {
    value = YAML.parse(raw);
  } catch {
    value = raw;
  }
  let node = doc;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (next === undefined) node[key] = {};
    else if (typeof next !== 'object' || next === null || Array.isArray(next))
      throw new ConfigError(`--set ${assignment}: '${key}' is not a section`);
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]] = value;
}

type AnySchema = z.ZodType & { shape?: Record<string, AnySchema>; _zod: { def: { innerType?: AnySchema } } };

/** The keys a section of the schema allows, for "unknown key" messages. */
function allowedKeys(keyPath: PropertyKey[]): string[] {
  let s: AnySchema | undefined = configSchema as unknown as AnySchema;
  const unwrap = (x: AnySchema | undefined) => {
    while (x && !x.shape && x._zod.def.innerType) x = x._zod.def.innerType;
    return x;
  };
  for (const key of keyPath) s = unwrap(s)?.shape?.[String(key)];
  return Object.keys(unwrap(s)?.shape ?? {});
}

function formatIssues(error: z.ZodError): string[] {
  return error.issues.flatMap((issue) => {
    const where = issue.path.map(String).join('.') || '(top level)';
    if (issue.code === 'unrecognized_keys') {
      const allowed = allowedKeys(issue.path).join(', ');
      return issue.keys.map((k) => `${issue.path.length ? where + '.' : ''}${k}: unknown key (allowed: ${allowed})`);
    }
    return [`${where}: ${issue.message}`];
  });
}

/** Checks that involve several keys. */
function crossChecks(c: Config): string[] {
  const problems: string[] = [];
  const m = c.model;
  if (m.hidden % m.heads !== 0)
    problems.push(
      `model.heads: ${m.heads} does not divide model.hidden ${m.hidden}; pick heads with hidden % heads = 0`,
    );
  if ((m.max_positions ?? m.seq_len) < m.seq_len)
    problems.push(`model.max_positions: ${m.max_positions} is below model.seq_len ${m.seq_len}`);
  if (isMaskedLm(m.arch) && m.seq_len < 8)
    problems.push(`model.seq_len: a masked-LM model (${m.arch}) needs at least 8 positions`);
  const tp = c.parallel.tensor;
  if (m.heads % tp !== 0 || m.hidden % tp !== 0 || m.ffn % tp !== 0)
    problems.push(
      `parallel.tensor: ${tp} must divide model.heads (${m.heads}), model.hidden (${m.hidden}) and model.ffn (${m.ffn})`,
    );
  problems.push(...familyChecks(c));
  if (c.parallel.comm === 'nccl' && c.device !== 'cuda')
    problems.push(`parallel.comm: nccl runs between GPUs and needs device: cuda; use zmq on the CPU (its default)`);
  if (c.precision !== 'fp32' && c.device === 'cpu')
    problems.push(
      `precision: ${c.precision} needs device: cuda; the CPU engine computes in fp32 ` +
        `(its kernels have no ${c.precision} arithmetic to gain from): remove the key or set precision: fp32`,
    );
  if (c.loss_scale.min > c.loss_scale.initial)
    problems.push(
      `loss_scale.min: ${c.loss_scale.min} is above loss_scale.initial ${c.loss_scale.initial}; lower min or raise initial`,
    );
  return problems;
}

/** Keys that only some families have, and combinations a family cannot train. */
function familyChecks(c: Config): string[] {
  const problems: string[] = [];
  const m = c.model;
  const task = pairTask(c);
  if (m.embedding_size !== undefined && m.embedding_size !== m.hidden && m.arch !== 'albert' && m.arch !== 'electra')
    problems.push(
      `model.embedding_size: ${m.embedding_size} differs from model.hidden (${m.hidden}); only albert and electra ` +
        `project smaller embeddings up (remove the key, or set it to ${m.hidden})`,
    );
  const groups = layerGroups(c);
  if (m.layers % groups !== 0) problems.push(`model.layer_groups: ${groups} must divide model.layers (${m.layers})`);
  if (m.generator !== undefined && m.arch !== 'electra')
    problems.push(`model.generator: only electra has a generator (model.arch is ${m.arch}); remove the section`);
  if (m.arch === 'electra') {
    const g = generatorShape(c);
    if (g.hidden % g.heads !== 0)
      problems.push(`model.generator.heads: ${g.heads} does not divide the generator's hidden size ${g.hidden}`);
    const tp = c.parallel.tensor;
    if (g.heads % tp !== 0 || g.hidden % tp !== 0 || g.ffn % tp !== 0)
      problems.push(
        `parallel.tensor: ${tp} must divide the generator's heads (${g.heads}), hidden (${g.hidden}) and ffn ` +
          `(${g.ffn}); set model.generator.heads / hidden_fraction / ffn`,
      );
  }
  if ((m.arch === 'roberta' || m.arch === 'electra') && task !== 'none')
    problems.push(`data.pair_task: ${m.arch} has no sentence-pair head; use none (its default)`);
  if (c.data.path !== undefined && c.data.corpus !== 'bundled')
    problems.push(`data.path and data.corpus both name training data; keep one`);
  if (m.arch === 'gpt' && c.data.whole_word_mask)
    problems.push(`data.whole_word_mask: gpt predicts every next token, nothing is masked; remove the key`);
  if (m.arch === 'gpt' && c.data.packing !== undefined)
    problems.push(`data.packing: gpt reads windows of the token stream; remove the key`);
  if (packing(c) === 'full-sentences' && task !== 'none')
    problems.push(`data.pair_task: ${task} needs sentence pairs, but data.packing is full-sentences; use none`);
  if (c.data.lowercase !== undefined && tokenizerKind(c) !== 'wordpiece')
    problems.push(
      `data.lowercase: ${m.arch} uses a byte-level BPE tokenizer, which keeps case and has no lowercasing; remove the key`,
    );
  else if (c.data.lowercase !== undefined && c.data.path !== undefined)
    problems.push(
      `data.lowercase: a preprocessed data.path brings its own tokenizer (PREFIX_tokenizer.json); remove the key, ` +
        `or preprocess the text again with \`paratrain preprocess --cased\``,
    );
  else if (c.data.lowercase !== undefined && c.model.init !== undefined)
    problems.push(
      `data.lowercase: a fine-tuning run reads the tokenizer saved with model.init, so its case is already chosen; ` +
        `remove the key`,
    );
  else if (c.data.lowercase !== undefined && c.data.tokenizer !== 'auto')
    problems.push(
      `data.lowercase: applies to a tokenizer that paratrain trains (data.tokenizer: auto); ` +
        `${c.data.tokenizer} keeps its own normalizer; remove one of the two keys`,
    );
  const names = lossNames(c);
  for (const key of Object.keys(m.loss_weights ?? {}))
    if (!names.includes(key))
      problems.push(`model.loss_weights.${key}: ${m.arch} reports the losses ${names.join(', ')}, not ${key}`);
  return problems;
}

export interface LoadOptions {
  config: string;
  set?: string[];
}

export function loadConfig(opts: LoadOptions): Config {
  const file = resolveConfigPath(opts.config);
  const doc = readYaml(file);
  for (const assignment of opts.set ?? []) applyOverride(doc, assignment);
  return validateConfig(doc, file);
}

export function validateConfig(doc: unknown, source = 'config'): Config {
  const parsed = configSchema.safeParse(doc);
  if (!parsed.success) throw new ConfigError(`invalid ${source}:`, formatIssues(parsed.error));
  const problems = crossChecks(parsed.data);
  if (problems.length) throw new ConfigError(`invalid ${source}:`, problems);
  return parsed.data;
}

/** Derived values used everywhere, in one place. */
export function maxPositions(c: Config): number {
  return c.model.max_positions ?? c.model.seq_len;
}
export function attentionDropout(c: Config): number {
  return c.model.attention_dropout ?? c.model.dropout;
}
/** BERT: the most masked positions a micro-batch can hold (dataset cap per sequence × batch). */
export function maxPredictionsPerSequence(c: Config): number {
  return Math.max(1, Math.round(c.model.seq_len * c.data.mask_prob));
}
