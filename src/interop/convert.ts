// convert.ts — paratrain checkpoint ⇄ Hugging Face directory.
import * as fs from 'node:fs';

import { loadCheckpoint, OPTIMIZER_STATE_PREFIX, saveCheckpoint, type NamedTensor } from '../checkpoint';
import { validateConfig } from '../config/load';
import type { Config } from '../config/schema';
import { exportHuggingFaceDir, importHuggingFaceDir } from './hf';

export async function exportCheckpointToHf(checkpoint: string, outDir: string) {
  const ckpt = await loadCheckpoint(checkpoint, { loadOptimizer: false });
  const config = validateConfig(ckpt.config, `config stored in ${ckpt.dir}`);
  const written = await exportHuggingFaceDir(outDir, config.model.arch, ckpt.params, config.model, {
    tokenizerJson: ckpt.tokenizerJson,
  });
  return { from: ckpt.dir, step: ckpt.step, ...written };
}

/**
 * Reads any BertForPreTraining / GPT2LMHeadModel directory (config.json + model.safetensors) and
 * writes a paratrain checkpoint at step 0 under `outRoot` (fresh optimizer state).
 */
export async function importHfToCheckpoint(dir: string, outRoot: string, base?: Partial<Config>) {
  if (!fs.existsSync(dir))
    throw Object.assign(new Error(`--from ${dir}: no such directory`), { code: 'ERR_HF_FORMAT' });
  const hf = await importHuggingFaceDir(dir);
  const m = hf.modelConfig;
  const config = validateConfig({
    model: {
      arch: hf.arch,
      layers: m.layers,
      hidden: m.hidden,
      heads: m.heads,
      ffn: m.ffn,
      vocab_size: m.vocab_size,
      seq_len: Math.min(m.max_positions, hf.arch === 'bert' ? 128 : 1024),
      max_positions: m.max_positions,
      dropout: m.dropout,
      attention_dropout: m.attention_dropout,
    },
    train: base?.train ?? { steps: 1000, micro_batch: 8, lr: 1e-4 },
    run: { dir: outRoot },
  });
  const zeros = (t: NamedTensor, prefix: string): NamedTensor => ({
    name: prefix + t.name,
    shape: t.shape,
    data: new Float32Array(t.data.length),
  });
  const saved = await saveCheckpoint(outRoot, {
    step: 0,
    consumedSamples: 0,
    config,
    arch: hf.arch,
    optimizer: {
      name: config.optimizer.name,
      step: 0,
      state: Object.values(OPTIMIZER_STATE_PREFIX).flatMap((prefix) => hf.params.map((t) => zeros(t, prefix))),
    },
    params: hf.params,
    tokenizerJson: hf.tokenizerJson,
  });
  return { dir: saved.dir, arch: hf.arch, warnings: hf.warnings };
}
