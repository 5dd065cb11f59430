// The checkpoint manifest reader under a property-based fuzzer, on a real TP2 checkpoint written by
// writeShard + commitCheckpoint: a manifest.pb of arbitrary bytes, with bits flipped, cut or
// extended, or with one field changed to any value of its type, is refused with a CheckpointError
// naming the manifest, or accepted; and an accepted one either passes verification and loads (whole
// tensors, and a rank's state in two layouts), or is refused there with a CheckpointError. Never
// another exception.
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  CheckpointError,
  checkpointDirFor,
  commitCheckpoint,
  loadCheckpoint,
  MANIFEST_FILE,
  readCheckpointManifest,
  readRankState,
  verifyCheckpointDir,
  writeShard,
} from '../../src/checkpoint';
import { headerFor, rankShard, tableFor, wholeModel } from '../checkpoint/fake-engine';
import { fuzzOptions, mutateAll, mutation } from './fuzz-options';

const schema = protobuf.loadSync(path.join(__dirname, '..', '..', 'proto', 'checkpoint.proto'));
schema.resolveAll();
const ManifestType = schema.lookupType('paratrain.CheckpointManifest');

let root: string;
let dir: string;
let manifestFile: string;
let validManifest: Buffer;

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-fuzz-manifest-'));
  const model = wholeModel(7);
  const reports = await Promise.all(
    [0, 1].map((t) =>
      writeShard(checkpointDirFor(root, 5), rankShard(model, 5, 2, 1, t, 0), t === 0 ? headerFor(5, 2, 1) : undefined),
    ),
  );
  ({ dir } = await commitCheckpoint(root, reports));
  manifestFile = path.join(dir, MANIFEST_FILE);
  validManifest = fs.readFileSync(manifestFile);
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** Runs `step`; a CheckpointError is a refusal (false), anything else but success fails the property. */
async function acceptedBy(step: () => Promise<unknown>, file?: string): Promise<boolean> {
  try {
    await step();
    return true;
  } catch (err) {
    if (!(err instanceof CheckpointError)) throw err;
    if (file !== undefined) {
      expect(err.file).toBe(file);
      expect(err.message).toContain(file);
    }
    return false;
  }
}

/** Everything a resume does with this manifest.pb: read it, verify the checkpoint, load it. */
async function readVerifyLoad(bytes: Buffer): Promise<void> {
  fs.writeFileSync(manifestFile, bytes);
  let manifest: Awaited<ReturnType<typeof readCheckpointManifest>> | undefined;
  if (!(await acceptedBy(async () => (manifest = await readCheckpointManifest(dir)), manifestFile))) return;
  if (!(await acceptedBy(() => verifyCheckpointDir(dir, manifest!)))) return;
  await acceptedBy(() => loadCheckpoint(dir, { verify: false }));
  for (const [tp, rank] of [
    [2, 1],
    [1, 0],
  ])
    await acceptedBy(() => readRankState(dir, manifest!, tableFor(tp, rank)));
}

// One field of the decoded manifest changed to another value of its type, or a repeated field's
// element dropped or doubled.
type Leaf = { at: (string | number)[]; field: protobuf.Field };

function leavesOf(value: Record<string, unknown>, type: protobuf.Type, at: (string | number)[] = []): Leaf[] {
  return type.fieldsArray.flatMap((field) => {
    const here = [...at, field.name];
    const v = value[field.name];
    const sub = field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
    const one = (x: unknown, where: (string | number)[]): Leaf[] =>
      sub && x !== null && x !== undefined
        ? leavesOf(x as Record<string, unknown>, sub, where)
        : [{ at: where, field }];
    if (field.repeated) return [{ at: here, field }, ...(v as unknown[]).flatMap((x, i) => one(x, [...here, i]))];
    return sub ? [{ at: here, field }, ...one(v, here)] : one(v, here);
  });
}

const fieldEdit = fc.record({
  leaf: fc.nat(),
  listEdit: fc.constantFrom('drop', 'double', 'clear'),
  u32: fc.oneof(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 0xffffffff })),
  u64: fc.oneof(fc.bigInt({ min: 0n, max: 16n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
  double: fc.double(),
  bool: fc.boolean(),
  // Strings from elsewhere in the manifest (file names, hashes, tensor names) make the likeliest lies.
  text: fc.oneof(
    fc.string({ unit: 'binary', maxLength: 10 }),
    fc.nat(),
    fc.constantFrom('', '../x', '/etc/passwd', '{}', 'F16', 'bert'),
  ),
});

function strings(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.flatMap(strings);
  if (v !== null && typeof v === 'object') return Object.values(v).flatMap(strings);
  return [];
}

type FieldEdit = typeof fieldEdit extends fc.Arbitrary<infer E> ? E : never;

function editedManifest(edit: FieldEdit): Buffer {
  const plain = ManifestType.toObject(ManifestType.decode(validManifest), {
    longs: String,
    enums: Number,
    defaults: true,
    arrays: true,
  });
  const leaves = leavesOf(plain, ManifestType);
  const { at, field } = leaves[edit.leaf % leaves.length];
  const parent = at
    .slice(0, -1)
    .reduce<Record<string | number, unknown>>((o, k) => o[k] as Record<string, unknown>, plain);
  const key = at[at.length - 1];
  const current = parent[key];
  if (Array.isArray(current)) {
    parent[key] =
      edit.listEdit === 'clear' ? [] : edit.listEdit === 'drop' ? current.slice(1) : [...current, ...current.slice(-1)];
  } else if (field.resolvedType instanceof protobuf.Type) {
    parent[key] = null; // the sub-message absent
  } else {
    const pool = strings(plain);
    const text = typeof edit.text === 'number' ? pool[edit.text % pool.length] : edit.text;
    const byType: Record<string, unknown> = {
      uint32: edit.u32,
      fixed32: edit.u32,
      uint64: edit.u64.toString(),
      double: edit.double,
      bool: edit.bool,
      string: text,
      TensorRole: edit.u32 % 4,
    };
    if (!(field.type in byType)) throw new Error(`no edit for ${field.name} (${field.type})`);
    parent[key] = byType[field.type];
  }
  return Buffer.from(ManifestType.encode(ManifestType.fromObject(plain)).finish());
}

describe('checkpoint manifest reader', () => {
  it('the valid manifest reads, verifies and loads', async () => {
    await readVerifyLoad(validManifest);
    const loaded = await loadCheckpoint(dir);
    expect(loaded.step).toBe(5);
  });

  it('arbitrary bytes as manifest.pb are refused with a coded error naming it', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 128 }), async (b) => {
        fs.writeFileSync(manifestFile, b);
        expect(await acceptedBy(() => readCheckpointManifest(dir), manifestFile)).toBe(false);
      }),
      fuzzOptions(300),
    );
  });

  it('bit flips, cuts and extra bytes are refused, or the manifest passes verification and loads', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 3 }), async (ms) => {
        await readVerifyLoad(mutateAll(validManifest, ms));
      }),
      fuzzOptions(300),
    );
  });

  it('one field changed to any value of its type is refused, or passes verification and loads', async () => {
    await fc.assert(
      fc.asyncProperty(fieldEdit, async (edit) => {
        await readVerifyLoad(editedManifest(edit));
      }),
      fuzzOptions(300),
    );
  });
});
