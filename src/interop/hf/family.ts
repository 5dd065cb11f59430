// family.ts — what every Hugging Face family module provides: which config.json it reads, how its
// config maps to paratrain's model keys, and which HF model(s) — names, shapes, layouts — a
// paratrain model of that family exports as. The modules: bert, gpt2, roberta, albert, electra.
import type { Config, ModelFamily } from '../../config/schema';
import type { ParamEntry } from '../../engine/native';
import { quoted } from '../../text/quoted';
import { HfFormatError, type HfTensorMap } from './tensors';

export type HfConfig = Record<string, unknown>;

/** One HF model directory's worth of tensors. */
export interface HfModel {
  /** '' = the directory itself; 'generator' = its generator/ subdirectory (ELECTRA). */
  subdir: string;
  config: HfConfig;
  tensors: HfTensorMap[];
  /** [duplicate, primary]: tied tensors that files may carry twice (must be equal). */
  tied: Array<[string, string]>;
  /** Rewrites other spellings of a key (a *Model export without the head prefix, TF gamma/beta). */
  normaliseKey(key: string): string;
  /** Keys that may be present and are not parameters of ours (buffers, an unused pooler). */
  ignored: RegExp[];
}

/** The config.json of the directory, and of its generator/ where the family has one. */
export interface HfConfigs {
  main: HfConfig;
  generator?: HfConfig;
}

/** What the export knows of the tokenizer: its special ids, written into config.json. */
export interface ExportOptions {
  /** Padding id (RoBERTa also numbers positions after it); default the family's. */
  pad?: number;
  /** First token of a sequence ([CLS] / <s>) and end of a sequence ([SEP] / </s> / <|endoftext|>). */
  bos?: number;
  eos?: number;
}

/** pad/bos/eos_token_id entries for config.json, those that are known. */
export function tokenIdEntries(opts: ExportOptions): Record<string, number> {
  const out: Record<string, number> = {};
  if (opts.pad !== undefined) out.pad_token_id = opts.pad;
  if (opts.bos !== undefined) out.bos_token_id = opts.bos;
  if (opts.eos !== undefined) out.eos_token_id = opts.eos;
  return out;
}

export interface HfFamily {
  arch: ModelFamily;
  /** The architectures this family exports as (for messages). */
  architectures: string[];
  claims(config: HfConfig): boolean;
  /** Needs a generator/ directory beside the main one (ELECTRA). */
  needsGenerator?: boolean;
  /** paratrain's model keys (and data keys) for these HF configs; notes differences in `warnings`. */
  fromHfConfig(
    configs: HfConfigs,
    warnings: string[],
  ): { model: Record<string, unknown>; data?: Record<string, unknown> };
  /** The HF models a paratrain model of this family is; `table` is its parameter table. */
  models(c: Config, table: readonly ParamEntry[], opts: ExportOptions): HfModel[];
}

// ---- config.json readers ----------------------------------------------------------------------

export function cfgInt(config: HfConfig, key: string, fallback?: number): number {
  const v = config[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)
    throw new HfFormatError(`config.json: ${key} must be a positive integer, got ${quoted(config[key])}`);
  return v;
}

export function cfgNum(config: HfConfig, key: string, fallback: number): number {
  const v = config[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new HfFormatError(`config.json: ${key} must be a number, got ${quoted(v)}`);
  return v;
}

export function architectures(config: HfConfig): string[] {
  const a = config['architectures'];
  return Array.isArray(a) ? a.filter((x): x is string => typeof x === 'string') : [];
}

/** A config is the family's by its model_type, or, without one, by its architecture's class prefix. */
export function claimedBy(modelType: string, classPrefix: string): (config: HfConfig) => boolean {
  return (config) =>
    config['model_type'] === modelType ||
    (config['model_type'] === undefined && architectures(config).some((a) => a.startsWith(classPrefix)));
}

/** Warns when an activation differs from the one paratrain computes for the family. */
export function checkActivation(
  config: HfConfig,
  key: string,
  accepted: string[],
  ours: string,
  warnings: string[],
): void {
  const act = config[key] ?? accepted[0];
  if (typeof act !== 'string' || !accepted.includes(act))
    warnings.push(`${key} ${quoted(act)}: paratrain computes ${ours} here; outputs will differ`);
}

export function checkEps(config: HfConfig, key: string, ours: number, warnings: string[]): void {
  const eps = cfgNum(config, key, ours);
  if (eps !== ours) warnings.push(`${key} ${eps}: paratrain uses ${ours}`);
}

export function checkTied(config: HfConfig, warnings: string[]): void {
  if (config['tie_word_embeddings'] === false)
    warnings.push('tie_word_embeddings=false: paratrain ties the output projection to the word embeddings');
}

/** A model that shares blocks across layers has no HF counterpart outside ALBERT. */
export function refuseSharedLayers(c: Config, table: readonly ParamEntry[]): void {
  const blocks = new Set(table.map((p) => /^layers\.(\d+)\./.exec(p.name)?.[1]).filter(Boolean));
  if (blocks.size !== c.model.layers)
    throw new HfFormatError(
      `model.layer_groups = ${blocks.size} (layers sharing blocks) has no Hugging Face ${c.model.arch} counterpart; ` +
        `only albert shares layers`,
    );
}
