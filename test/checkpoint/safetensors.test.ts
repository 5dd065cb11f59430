import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  encodeSafetensorsHeader,
  readSafetensors,
  readSafetensorsHeader,
  writeSafetensors,
} from '../../src/checkpoint';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-st-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Hand-assembles a safetensors file from a header object and a raw data region. */
function craft(
  file: string,
  header: unknown,
  data: Uint8Array,
  opts: { headerLen?: bigint; rawHeader?: string } = {},
): void {
  const json = Buffer.from(opts.rawHeader ?? JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(opts.headerLen ?? BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, json, Buffer.from(data)]));
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

async function expectCorrupt(p: Promise<unknown>, file: string, re: RegExp): Promise<void> {
  const err = (await p.then(
    () => {
      throw new Error('expected an error');
    },
    (e: unknown) => e,
  )) as Error & { code?: string };
  expect(err.code).toBe('ERR_CHECKPOINT_CORRUPT');
  expect(err.message).toContain(file);
  expect(err.message).toMatch(re);
}

describe('safetensors write/read', () => {
  it('round-trips F32 and I32 tensors and metadata', async () => {
    const file = path.join(tmp, 'a.safetensors');
    const a = new Float32Array([1.5, -2, 3.25, 0, Number.MIN_VALUE, -0, 1e30, -1e-30, 7, 8, 9, 10]);
    const ids = new Int32Array([0, -1, 2147483647, -2147483648, 5]);
    const scalar = new Float32Array([42]);
    const empty = new Float32Array(0);
    const written = await writeSafetensors(
      file,
      [
        { name: 'w', shape: [3, 4], data: a },
        { name: 'ids', shape: [5], data: ids },
        { name: 'scalar', shape: [], data: scalar },
        { name: 'empty', shape: [0, 3], data: empty },
      ],
      { format: 'pt', note: 'hello' },
    );
    const bytes = fs.readFileSync(file);
    expect(written.sizeBytes).toBe(bytes.length);
    expect(written.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    // Data region 8-byte aligned, header padded with spaces.
    const n = Number(bytes.readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    const headerText = bytes.subarray(8, 8 + n).toString('utf8');
    expect(headerText.trimEnd().length).toBeLessThanOrEqual(n);
    expect(/^ *$/.test(headerText.slice(headerText.trimEnd().length))).toBe(true);
    const hdr = JSON.parse(headerText) as Record<string, unknown>;
    expect(hdr['__metadata__']).toEqual({ format: 'pt', note: 'hello' });
    expect(hdr['w']).toEqual({ dtype: 'F32', shape: [3, 4], data_offsets: [0, 48] });
    expect(hdr['ids']).toEqual({ dtype: 'I32', shape: [5], data_offsets: [48, 68] });

    const { tensors, metadata } = await readSafetensors(file);
    expect(metadata).toEqual({ format: 'pt', note: 'hello' });
    expect(tensors.map((t) => t.name)).toEqual(['w', 'ids', 'scalar', 'empty']);
    const byName = new Map(tensors.map((t) => [t.name, t]));
    expect(byName.get('w')?.data).toEqual(a);
    expect(byName.get('w')?.data).toBeInstanceOf(Float32Array);
    expect(byName.get('ids')?.data).toEqual(ids);
    expect(byName.get('ids')?.data).toBeInstanceOf(Int32Array);
    expect(byName.get('scalar')?.shape).toEqual([]);
    expect(byName.get('empty')?.shape).toEqual([0, 3]);
    // No temp files are left behind.
    expect(fs.readdirSync(tmp)).toEqual(['a.safetensors']);
  });

  it('honours a filter and reads only the header on request', async () => {
    const file = path.join(tmp, 'b.safetensors');
    await writeSafetensors(file, [
      { name: 'x', shape: [2], data: new Float32Array([1, 2]) },
      { name: 'y', shape: [1], data: new Float32Array([3]) },
    ]);
    const { tensors } = await readSafetensors(file, { filter: (e) => e.name === 'y' });
    expect(tensors.map((t) => t.name)).toEqual(['y']);
    const h = await readSafetensorsHeader(file);
    expect(h.entries.map((e) => [e.name, e.dtype, e.dataOffsets])).toEqual([
      ['x', 'F32', [0, 8]],
      ['y', 'F32', [8, 12]],
    ]);
    expect(h.metadata).toBeUndefined();
  });

  it('writes big tensors in pipelined chunks: the bytes and sha256 of a plain concatenation', async () => {
    // 9 MiB + 1 element (a chunk boundary inside a tensor), a small one between, then 36 MiB:
    // several 4 MiB chunks and an early writeback after 32 MiB.
    const file = path.join(tmp, 'big.safetensors');
    const a = new Float32Array(9 * 262144 + 1).map((_, i) => i * 0.5);
    const b = new Int32Array([1, 2, 3]);
    const c = new Float32Array(36 * 262144).map((_, i) => -i);
    const tensors = [
      { name: 'a', shape: [a.length], data: a },
      { name: 'b', shape: [3], data: b },
      { name: 'c', shape: [c.length], data: c },
    ];
    const written = await writeSafetensors(file, tensors);
    const expected = Buffer.concat([encodeSafetensorsHeader(tensors), bytesOf(a), bytesOf(b), bytesOf(c)]);
    const onDisk = fs.readFileSync(file);
    expect(onDisk.equals(expected)).toBe(true);
    expect(written.sizeBytes).toBe(expected.byteLength);
    expect(written.sha256).toBe(createHash('sha256').update(expected).digest('hex'));
    expect(fs.readdirSync(tmp)).toEqual(['big.safetensors']);
  });

  it('replaces an existing file atomically and rejects bad input without leaving files', async () => {
    const file = path.join(tmp, 'c.safetensors');
    await writeSafetensors(file, [{ name: 'x', shape: [1], data: new Float32Array([1]) }]);
    await writeSafetensors(file, [{ name: 'x', shape: [1], data: new Float32Array([2]) }]);
    expect((await readSafetensors(file)).tensors[0]?.data).toEqual(new Float32Array([2]));
    await expect(
      writeSafetensors(path.join(tmp, 'd.safetensors'), [{ name: 'x', shape: [2], data: new Float32Array([1]) }]),
    ).rejects.toThrow(/shape/);
    await expect(
      writeSafetensors(path.join(tmp, 'd.safetensors'), [
        { name: 'x', shape: [1], data: new Float32Array([1]) },
        { name: 'x', shape: [1], data: new Float32Array([1]) },
      ]),
    ).rejects.toThrow(/duplicate/);
    expect(fs.readdirSync(tmp)).toEqual(['c.safetensors']);
  });

  it('converts F16, BF16 and F64 to F32 and I64/U8/BOOL to I32', async () => {
    const file = path.join(tmp, 'mixed.safetensors');
    // f16: 1.0 = 0x3c00, -2.0 = 0xc000, 0.5 = 0x3800, 65504 = 0x7bff, smallest subnormal = 0x0001
    const f16 = new Uint16Array([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001]);
    // bf16: top halves of fp32 1.0 (0x3f80), -3.0 (0xc040)
    const bf16 = new Uint16Array([0x3f80, 0xc040]);
    const f64 = new Float64Array([0.1, -1e10]);
    const i64 = new BigInt64Array([0n, -5n, 2147483647n]);
    const u8 = new Uint8Array([0, 255, 7, 0, 0, 0, 0, 0]);
    const parts = [bytesOf(f16), bytesOf(bf16), bytesOf(f64), bytesOf(i64), u8.subarray(0, 3)];
    const header: Record<string, unknown> = {};
    const names = ['h', 'b', 'd', 'l', 'u'];
    const dtypes = ['F16', 'BF16', 'F64', 'I64', 'U8'];
    const shapes = [[5], [2], [2], [3], [3]];
    let off = 0;
    parts.forEach((p, i) => {
      header[names[i] as string] = { dtype: dtypes[i], shape: shapes[i], data_offsets: [off, off + p.byteLength] };
      off += p.byteLength;
    });
    craft(file, header, Buffer.concat(parts.map((p) => Buffer.from(p))));
    const { tensors } = await readSafetensors(file);
    const m = new Map(tensors.map((t) => [t.name, t]));
    expect(Array.from(m.get('h')?.data ?? [])).toEqual([1, -2, 0.5, 65504, 2 ** -24]);
    expect(m.get('h')?.storedDtype).toBe('F16');
    expect(Array.from(m.get('b')?.data ?? [])).toEqual([1, -3]);
    expect(m.get('d')?.data).toEqual(new Float32Array([0.1, -1e10]));
    expect(m.get('l')?.data).toEqual(new Int32Array([0, -5, 2147483647]));
    expect(m.get('l')?.dtype).toBe('I32');
    expect(m.get('u')?.data).toEqual(new Int32Array([0, 255, 7]));
  });

  it('rejects I64 values that do not fit in int32', async () => {
    const file = path.join(tmp, 'big.safetensors');
    const i64 = new BigInt64Array([1n << 40n]);
    craft(file, { x: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, bytesOf(i64));
    await expect(readSafetensors(file)).rejects.toMatchObject({ code: 'ERR_CHECKPOINT_UNSUPPORTED' });
  });
});

describe('safetensors corruption detection', () => {
  async function good(): Promise<string> {
    const file = path.join(tmp, 'good.safetensors');
    await writeSafetensors(file, [
      { name: 'a', shape: [2, 3], data: new Float32Array(6).fill(1) },
      { name: 'b', shape: [4], data: new Float32Array(4).fill(2) },
    ]);
    return file;
  }

  it('detects a truncated file', async () => {
    const file = await good();
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 3));
    await expectCorrupt(readSafetensors(file), file, /outside|truncated|cover/);
  });

  it('detects a file cut inside the header', async () => {
    const file = await good();
    fs.writeFileSync(file, fs.readFileSync(file).subarray(0, 20));
    await expectCorrupt(readSafetensors(file), file, /header length .* runs past the end/);
  });

  it('detects a file shorter than the length prefix', async () => {
    const file = path.join(tmp, 'tiny.safetensors');
    fs.writeFileSync(file, Buffer.from([1, 2, 3]));
    await expectCorrupt(readSafetensors(file), file, /shorter than the 8-byte/);
  });

  it('detects a bad header length', async () => {
    const file = await good();
    const bytes = fs.readFileSync(file);
    bytes.writeBigUInt64LE(0xffffffffffn, 0);
    fs.writeFileSync(file, bytes);
    await expectCorrupt(readSafetensors(file), file, /header length/);
    bytes.writeBigUInt64LE(0n, 0);
    fs.writeFileSync(file, bytes);
    await expectCorrupt(readSafetensors(file), file, /header length is 0/);
  });

  it('detects garbage JSON', async () => {
    const file = path.join(tmp, 'garbage.safetensors');
    craft(file, null, new Uint8Array(0), { rawHeader: '{"a": {"dtype": "F32", ' });
    await expectCorrupt(readSafetensors(file), file, /not valid UTF-8 JSON/);
    craft(file, null, new Uint8Array(0), { rawHeader: '[1, 2, 3]' });
    await expectCorrupt(readSafetensors(file), file, /not an object/);
    fs.writeFileSync(
      file,
      Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([0xff, 0xfe, 0x7b, 0x7d])]),
    );
    await expectCorrupt(readSafetensors(file), file, /UTF-8 JSON/);
  });

  it('detects offsets out of range, gaps, overlaps and size mismatches', async () => {
    const file = path.join(tmp, 'offs.safetensors');
    const data = new Uint8Array(16);
    craft(file, { a: { dtype: 'F32', shape: [8], data_offsets: [0, 32] } }, data);
    await expectCorrupt(readSafetensors(file), file, /outside the 16-byte data region/);
    craft(file, { a: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, data);
    await expectCorrupt(readSafetensors(file), file, /contiguous/);
    craft(
      file,
      {
        a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] },
        b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
      },
      data,
    );
    await expectCorrupt(readSafetensors(file), file, /contiguous/);
    craft(file, { a: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, data);
    await expectCorrupt(readSafetensors(file), file, /needs 12 bytes/);
    craft(file, { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, data);
    await expectCorrupt(readSafetensors(file), file, /cover 8 bytes but the data region has 16/);
    craft(file, { a: { dtype: 'F32', shape: [4], data_offsets: [16, 0] } }, data);
    await expectCorrupt(readSafetensors(file), file, /invalid data_offsets/);
    craft(file, { a: { dtype: 'F32', shape: [-4], data_offsets: [0, 16] } }, data);
    await expectCorrupt(readSafetensors(file), file, /invalid shape/);
    craft(file, { a: { dtype: 'Q4', shape: [4], data_offsets: [0, 16] } }, data);
    await expectCorrupt(readSafetensors(file), file, /unknown dtype/);
    craft(file, { __metadata__: { x: 1 }, a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, data);
    await expectCorrupt(readSafetensors(file), file, /__metadata__/);
  });

  it('reports a missing file as not found', async () => {
    await expect(readSafetensors(path.join(tmp, 'nope.safetensors'))).rejects.toMatchObject({
      code: 'ERR_CHECKPOINT_NOT_FOUND',
    });
  });

  it('validates exotic-but-legal dtypes in the header and only fails when decoding them', async () => {
    const file = path.join(tmp, 'f8.safetensors');
    craft(
      file,
      {
        q: { dtype: 'F8_E4M3', shape: [4], data_offsets: [0, 4] },
        w: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
      },
      bytesOf(new Float32Array([0, 5])),
    );
    const { tensors } = await readSafetensors(file, { filter: (e) => e.name === 'w' });
    expect(tensors[0]?.data).toEqual(new Float32Array([5]));
    await expect(readSafetensors(file)).rejects.toMatchObject({ code: 'ERR_CHECKPOINT_UNSUPPORTED' });
  });

  it('header helper pads to 8 bytes', () => {
    const h = encodeSafetensorsHeader([{ name: 'x', shape: [1], data: new Float32Array(1) }]);
    expect(h.length % 8).toBe(0);
  });
});
