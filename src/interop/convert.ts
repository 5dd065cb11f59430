// convert.ts — paratrain checkpoint ⇄ Hugging Face directory.
import * as fs from 'node:fs';

import { loadCheckpoint, OPTIMIZER_STATE_PREFIX, saveCheckpoint, type NamedTensor } from '../checkpoint';
import { validateConfig } from '../config/load';
import type { Config } from '../config/schema';
import { TextTokenizer } from '../data/tokenizer';
import { exportHuggingFace, importHuggingFace, HfFormatError, type ExportOptions } from './hf';

/** The special ids an exported config.json records, read from the checkpoint's tokenizer. */
function tokenizerIds(tokenizerJson: string | undefined): ExportOptions {
  if (tokenizerJson === undefined) return {};
  const tok = TextTokenizer.fromJSON(tokenizerJson, 'the checkpoint tokenizer.json');
  if (tok.kind === 'bpe') {
    const eos = tok.endOfTextId();
    return { bos: eos, eos };
  }
  const ids = tok.maskedLmSpecialIds();
  return { pad: ids.pad, bos: ids.cls, eos: ids.sep };
}

export async function exportCheckpointToHf(checkpoint: string, outDir: string) {
  const ckpt = await loadCheckpoint(checkpoint, { loadOptimizer: false });
  const config = validateConfig(ckpt.config, `config stored in ${ckpt.dir}`);
  const written = await exportHuggingFace(outDir, config, ckpt.params, {
    ...tokenizerIds(ckpt.tokenizerJson),
    tokenizerJson: ckpt.tokenizerJson,
  });
  return { from: ckpt.dir, step: ckpt.step, arch: config.model.arch, ...written };
}

/**
 * Reads a Hugging Face model directory of any supported family (config.json + model.safetensors;
 * ELECTRA: the discriminator, with its generator in `generator` or <dir>/generator) and writes a
 * paratrain checkpoint at step 0 under `outRoot` (fresh optimizer state).
 */
export async function importHfToCheckpoint(
  dir: string,
  outRoot: string,
  opts: { generator?: string; base?: Partial<Config> } = {},
) {
  if (!fs.existsSync(dir)) throw new HfFormatError(`--from ${dir}: no such directory`);
  if (opts.generator !== undefined && !fs.existsSync(opts.generator))
    throw new HfFormatError(`--generator ${opts.generator}: no such directory`);
  const hf = await importHuggingFace(dir, { generator: opts.generator, train: opts.base?.train });
  const config = validateConfig({ ...hf.config, run: { dir: outRoot } });
  const zeros = (t: NamedTensor, prefix: string): NamedTensor => ({
    name: prefix + t.name,
    shape: t.shape,
    data: new Float32Array(t.data.length),
  });
  const saved = await saveCheckpoint(outRoot, {
    step: 0,
    consumedSamples: 0,
    config,
    arch: config.model.arch,
    optimizer: {
      name: config.optimizer.name,
      step: 0,
      state: Object.values(OPTIMIZER_STATE_PREFIX).flatMap((prefix) => hf.params.map((t) => zeros(t, prefix))),
    },
    params: hf.params,
    tokenizerJson: hf.tokenizerJson,
  });
  return { dir: saved.dir, arch: config.model.arch, warnings: hf.warnings };
}
