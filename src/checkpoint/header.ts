// header.ts — the manifest fields that are neither files nor tensor pieces (step, config, optimizer,
// layout, training state): their checks, and their conversion to and from a manifest.
import { MODEL_FAMILIES } from '../config/schema';
import { paratrainVersion } from '../package-root';
import { checkTrainingState, MANIFEST_FORMAT_VERSION } from './manifest';
import type { Arch, CheckpointManifest, ManifestHeader } from './types';

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Throws `fail(...)` at the first field that cannot go into a manifest. */
export function checkHeader(h: ManifestHeader, fail: (what: string) => Error): void {
  if (typeof h !== 'object' || h === null) throw fail('header must be an object');
  if (!isCount(h.step)) throw fail(`header step must be a non-negative integer, got ${String(h.step)}`);
  if (!isCount(h.consumedSamples)) {
    throw fail(`header consumedSamples must be a non-negative integer, got ${String(h.consumedSamples)}`);
  }
  if (!(MODEL_FAMILIES as readonly string[]).includes(h.arch))
    throw fail(`header arch must be one of ${MODEL_FAMILIES.join(', ')}, got ${String(h.arch)}`);
  if (typeof h.config !== 'object' || h.config === null) throw fail('header config must be an object');
  if (typeof h.optimizer?.name !== 'string' || !isCount(h.optimizer.step)) {
    throw fail('header optimizer must be {name: string, step: non-negative integer}');
  }
  const { tensorParallel: tp, dataParallel: dp } = h.layout ?? {};
  if (!isCount(tp) || !isCount(dp) || tp < 1 || dp < 1) {
    throw fail(`header layout must be {tensorParallel, dataParallel} >= 1, got ${JSON.stringify(h.layout)}`);
  }
  if (h.training !== undefined) {
    try {
      checkTrainingState(h.training);
    } catch (e) {
      throw fail(`header ${(e as Error).message}`);
    }
  }
  let extraJson: string | undefined;
  try {
    JSON.stringify(h.config);
    extraJson = h.extra === undefined ? '' : JSON.stringify(h.extra);
  } catch (e) {
    throw fail(`header config or extra is not JSON-serialisable (${(e as Error).message})`);
  }
  if (extraJson === undefined) throw fail('header extra is not JSON-serialisable');
}

/** The manifest of a checkpoint with this header and these pieces. */
export function manifestFromHeader(
  h: ManifestHeader,
  parts: Pick<CheckpointManifest, 'files' | 'tensors' | 'tokenizerFile'>,
): CheckpointManifest {
  const m: CheckpointManifest = {
    formatVersion: MANIFEST_FORMAT_VERSION,
    paratrainVersion: paratrainVersion(),
    step: h.step,
    consumedSamples: h.consumedSamples,
    configJson: JSON.stringify(h.config),
    arch: h.arch,
    layout: { tensorParallel: h.layout.tensorParallel, dataParallel: h.layout.dataParallel },
    optimizer: { name: h.optimizer.name, step: h.optimizer.step },
    tensors: parts.tensors,
    files: parts.files,
    tokenizerFile: parts.tokenizerFile,
    createdUnixMs: Date.now(),
    extraJson: h.extra === undefined ? '' : JSON.stringify(h.extra),
  };
  if (h.training !== undefined) m.training = h.training;
  return m;
}

/** The header fields of a manifest; config_json and extra_json are parsed (`fail` on bad JSON). */
export function headerFromManifest(m: CheckpointManifest, fail: (what: string) => Error): ManifestHeader {
  let config: object;
  try {
    config = JSON.parse(m.configJson) as object;
  } catch (e) {
    throw fail(`config_json is not valid JSON (${(e as Error).message})`);
  }
  const h: ManifestHeader = {
    step: m.step,
    consumedSamples: m.consumedSamples,
    config,
    arch: m.arch as Arch,
    optimizer: { ...m.optimizer },
    layout: { ...m.layout },
  };
  if (m.training !== undefined) h.training = m.training;
  if (m.extraJson !== '') {
    try {
      h.extra = JSON.parse(m.extraJson);
    } catch (e) {
      throw fail(`extra_json is not valid JSON (${(e as Error).message})`);
    }
  }
  return h;
}
