// directory.ts — Hugging Face model directories on disk: config.json, model.safetensors (or a
// sharded index), tokenizer.json.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

import {
  isErrnoException,
  readSafetensors,
  writeSafetensors,
  type AnyTensor,
  type NamedTensor,
  type SafetensorsEntry,
} from '../../checkpoint';
import { atomicWriteFile } from '../../files/atomic-write';
import { quoted } from '../../text/quoted';
import type { HfConfig } from './family';
import { HfFormatError } from './tensors';

export interface HfDirContents {
  dir: string;
  config: HfConfig;
  /** Tensors under their names in the file(s); buffers (position_ids, attn.bias, ...) are skipped. */
  tensors: AnyTensor[];
  tokenizerJson?: string;
}

/** Buffers that real HF exports carry and that are not parameters (some are integer tensors). */
const BUFFERS: RegExp[] = [
  /(^|\.)embeddings\.(position_ids|token_type_ids)$/,
  /(^|\.)h\.\d+\.attn\.(bias|masked_bias)$/,
];

export function isHfBuffer(name: string): boolean {
  return BUFFERS.some((re) => re.test(name));
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.access(p);
    return true;
  } catch {
    return false;
  }
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if (isErrnoException(e) && e.code === 'ENOENT') throw new HfFormatError(`${file}: not found`, { cause: e });
    throw e;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new HfFormatError(`${file}: invalid JSON (${(e as Error).message})`, { cause: e });
  }
}

const keepEntry = (e: SafetensorsEntry): boolean => !isHfBuffer(e.name);

/**
 * Reads an HF model directory: config.json plus model.safetensors or a sharded
 * model.safetensors.index.json, and tokenizer.json when present.
 */
export async function readHuggingFaceDir(dir: string): Promise<HfDirContents> {
  const cfg = await readJson(path.join(dir, 'config.json'));
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg))
    throw new HfFormatError(`${path.join(dir, 'config.json')}: expected a JSON object`);
  const config = cfg as HfConfig;
  let tensors: AnyTensor[];
  const single = path.join(dir, 'model.safetensors');
  const index = path.join(dir, 'model.safetensors.index.json');
  if (await exists(single)) {
    tensors = (await readSafetensors(single, { filter: keepEntry })).tensors;
  } else if (await exists(index)) {
    const idx = (await readJson(index)) as { weight_map?: unknown };
    const wm = idx.weight_map;
    if (typeof wm !== 'object' || wm === null || Array.isArray(wm))
      throw new HfFormatError(`${index}: missing weight_map`);
    const shards = new Set(Object.values(wm as Record<string, unknown>));
    tensors = [];
    for (const shard of shards) {
      if (typeof shard !== 'string' || shard !== path.basename(shard) || shard.startsWith('.'))
        throw new HfFormatError(`${index}: invalid shard file name ${quoted(shard)}`);
      tensors.push(...(await readSafetensors(path.join(dir, shard), { filter: keepEntry })).tensors);
    }
  } else {
    const other = ['pytorch_model.bin', 'pytorch_model.bin.index.json', 'tf_model.h5', 'flax_model.msgpack'];
    const found: string[] = [];
    for (const f of other) if (await exists(path.join(dir, f))) found.push(f);
    if (found.length > 0)
      throw new HfFormatError(
        `${dir}: has ${found.join(', ')} but no model.safetensors; paratrain reads only safetensors. Convert it with ` +
          `transformers: AutoModel*.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)`,
      );
    throw new HfFormatError(`${dir}: no model.safetensors found`);
  }
  const out: HfDirContents = { dir, config, tensors };
  const tok = path.join(dir, 'tokenizer.json');
  if (await exists(tok)) out.tokenizerJson = await fsp.readFile(tok, 'utf8');
  return out;
}

/** Writes config.json, model.safetensors (+ tokenizer.json); returns the written paths. */
export async function writeHuggingFaceDir(
  dir: string,
  config: HfConfig,
  tensors: readonly NamedTensor[],
  tokenizerJson?: string,
): Promise<string[]> {
  await fsp.mkdir(dir, { recursive: true });
  // transformers refuses safetensors files whose metadata lacks format=pt.
  const model = await writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  const files = [model.path];
  const cfgPath = path.join(dir, 'config.json');
  await atomicWriteFile(cfgPath, `${JSON.stringify(config, null, 2)}\n`);
  files.push(cfgPath);
  if (tokenizerJson !== undefined) {
    const tokPath = path.join(dir, 'tokenizer.json');
    await atomicWriteFile(tokPath, tokenizerJson);
    files.push(tokPath);
  }
  return files;
}
