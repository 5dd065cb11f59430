// The safetensors reader under a property-based fuzzer: a file with any header (raw bytes, JSON of
// any shape, tensor entries with lying dtypes, shapes and offsets) or a valid file with bits
// flipped, cut or extended is read, or refused with a CheckpointError that names the file (never a
// RangeError, TypeError or crash); every valid file reads back what was written.
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CheckpointError, numelOf, readSafetensors, writeSafetensors, type AnyTensor } from '../../src/checkpoint';
import { fuzzOptions, mutateAll, mutation } from './fuzz-options';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-fuzz-st-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

let files = 0;
const nextFile = () => path.join(dir, `case-${files++}.safetensors`);

/** The reader's answer to `file`: its tensors, or a CheckpointError naming it (anything else fails). */
async function readOrRefuse(file: string): Promise<Awaited<ReturnType<typeof readSafetensors>> | CheckpointError> {
  try {
    const read = await readSafetensors(file);
    for (const t of read.tensors) expect(t.data.length).toBe(numelOf(t.shape));
    return read;
  } catch (err) {
    if (!(err instanceof CheckpointError)) throw err;
    expect(['ERR_CHECKPOINT_CORRUPT', 'ERR_CHECKPOINT_UNSUPPORTED']).toContain(err.code);
    expect(err.file).toBe(file);
    expect(err.message).toContain(file);
    return err;
  }
}

/** A file made of an 8-byte little-endian header length, a header and a data region. */
function safetensorsBytes(header: Buffer, data: Uint8Array, declaredLength = BigInt(header.length)): Buffer {
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(declaredLength);
  return Buffer.concat([length, header, data]);
}

const name = fc.oneof(
  fc.string({ unit: 'binary', minLength: 1, maxLength: 8 }),
  fc.constantFrom('__proto__', 'a.b', ' '),
);
const shape = fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 });

/** F32 and I32 tensors with distinct names, as writeSafetensors takes them. */
const tensors: fc.Arbitrary<AnyTensor[]> = fc
  .uniqueArray(fc.tuple(name, shape, fc.boolean()), {
    maxLength: 5,
    selector: ([n]) => n,
  })
  .chain((specs) =>
    fc.tuple(
      ...specs
        .filter(([n]) => n !== '__metadata__')
        .map(([n, s, float]) =>
          (float
            ? fc.float32Array({ minLength: numelOf(s), maxLength: numelOf(s) })
            : fc.int32Array({ minLength: numelOf(s), maxLength: numelOf(s) })
          ).map((data): AnyTensor => ({ name: n, shape: s, data })),
        ),
    ),
  );
const metadata = fc.option(fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 3 }), {
  nil: undefined,
});

const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

/**
 * A header of entries in any of the format's dtypes (offsets contiguous, data random: I64 and U32
 * values may not fit the int32 paratrain decodes to), each field replaced by arbitrary JSON now
 * and then, entries dropped or added: mostly almost valid.
 */
const craftedFile = fc
  .tuple(
    fc.uniqueArray(fc.tuple(name, fc.constantFrom(...Object.keys(DTYPE_BYTES)), shape), {
      maxLength: 4,
      selector: ([n]) => n,
    }),
    fc.array(fc.tuple(fc.constantFrom('dtype', 'shape', 'data_offsets', 'entry'), fc.jsonValue({ maxDepth: 2 })), {
      maxLength: 2,
    }),
    fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined }),
    fc.integer({ min: -2, max: 2 }),
  )
  .chain(([entries, damage, metadataValue, dataLengthError]) => {
    const header: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    let offset = 0;
    for (const [n, dtype, s] of entries) {
      const end = offset + numelOf(s) * (DTYPE_BYTES[dtype] as number);
      header[n] = { dtype, shape: s, data_offsets: [offset, end] };
      offset = end;
    }
    const names = Object.keys(header);
    damage.forEach(([field, value], i) => {
      const victim = names[i % Math.max(1, names.length)] ?? 'x';
      const entry = header[victim];
      // An entry an earlier damage replaced (by a string, say) is replaced again.
      if (field === 'entry' || typeof entry !== 'object' || entry === null || Array.isArray(entry))
        header[victim] = value;
      else (entry as Record<string, unknown>)[field] = value;
    });
    if (metadataValue !== undefined) header['__metadata__'] = metadataValue;
    const dataLength = Math.max(0, offset + dataLengthError);
    return fc
      .uint8Array({ minLength: dataLength, maxLength: dataLength })
      .map((data) => safetensorsBytes(Buffer.from(JSON.stringify(header)), data));
  });

/** JSON text of arrays nested `depth` deep: beyond JSON.stringify's stack at a few thousand. */
const nestedArrays = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

/** An entry whose dtype, shape or data_offsets is nested arrays, shallow or too deep to print. */
const deeplyNestedField = fc
  .tuple(
    fc.constantFrom('dtype', 'shape', 'data_offsets'),
    fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 300_000 })),
  )
  .map(([field, depth]) => {
    const entry: Record<string, string> = { dtype: '"F32"', shape: '[1]', data_offsets: '[0,4]' };
    entry[field] = nestedArrays(depth);
    const json = `{"t":{${Object.entries(entry)
      .map(([k, v]) => `"${k}":${v}`)
      .join(',')}}}`;
    return safetensorsBytes(Buffer.from(json), new Uint8Array(4));
  });

const rawFile = fc.oneof(
  deeplyNestedField,
  fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
  fc
    .tuple(
      fc.uint8Array({ maxLength: 48 }),
      fc.uint8Array({ maxLength: 16 }),
      fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    )
    .map(([h, d, len]) => safetensorsBytes(Buffer.from(h), d, len % 2n === 0n ? BigInt(h.length) : len)),
  fc
    .tuple(fc.jsonValue({ maxDepth: 3 }), fc.uint8Array({ maxLength: 16 }))
    .map(([json, d]) => safetensorsBytes(Buffer.from(JSON.stringify(json) ?? 'null'), d)),
);

describe('safetensors reader', () => {
  it('every valid file reads back what was written', async () => {
    await fc.assert(
      fc.asyncProperty(tensors, metadata, async (ts, meta) => {
        const file = nextFile();
        await writeSafetensors(file, ts, meta);
        const read = await readSafetensors(file);
        // Tensors come back in file order, which is the order they were written in.
        expect(read.tensors.map((t) => [t.name, t.shape, t.dtype])).toEqual(
          ts.map((t) => [t.name, t.shape, t.data instanceof Float32Array ? 'F32' : 'I32']),
        );
        read.tensors.forEach((t, i) =>
          expect(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)).toEqual(
            Buffer.from(ts[i].data.buffer, ts[i].data.byteOffset, ts[i].data.byteLength),
          ),
        );
        expect(read.metadata).toEqual(meta);
      }),
      fuzzOptions(300),
    );
  });

  it('arbitrary bytes and headers are read or refused with a coded error naming the file', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(rawFile, craftedFile), async (bytes) => {
        const file = nextFile();
        fs.writeFileSync(file, bytes);
        await readOrRefuse(file);
      }),
      fuzzOptions(600),
    );
  });

  it('a header value nested too deep to print is refused as corrupt, not a RangeError (found by this fuzzer)', async () => {
    for (const field of ['"dtype"', '"shape"', '"data_offsets"']) {
      const entry = `{"dtype":"F32","shape":[1],"data_offsets":[0,4]}`.replace(
        new RegExp(`${field}:("F32"|\\[1\\]|\\[0,4\\])`),
        `${field}:${nestedArrays(200_000)}`,
      );
      const file = nextFile();
      fs.writeFileSync(file, safetensorsBytes(Buffer.from(`{"t":${entry}}`), new Uint8Array(4)));
      const refusal = await readOrRefuse(file);
      expect(refusal).toBeInstanceOf(CheckpointError);
      expect((refusal as CheckpointError).message).toMatch(/nested too deep to show/);
    }
  });

  it('mutations of a valid file are read or refused with a coded error naming the file', async () => {
    await fc.assert(
      fc.asyncProperty(tensors, metadata, fc.array(mutation, { minLength: 1, maxLength: 3 }), async (ts, meta, ms) => {
        const file = nextFile();
        await writeSafetensors(file, ts, meta);
        fs.writeFileSync(file, mutateAll(fs.readFileSync(file), ms));
        await readOrRefuse(file);
      }),
      fuzzOptions(400),
    );
  });
});
