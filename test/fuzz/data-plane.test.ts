// The data-plane message parser (cpp/comm/zmq_ring.cpp recv_msg) under a property-based fuzzer,
// through the real addon: the test is rank 1 of a data-parallel ring of two, the addon's DataPlane
// rank 0. Rank 0 expects a header frame {magic, op, call, seq, bytes} and one payload frame; the
// test sends whatever fast-check makes of the valid messages (fields changed, bytes flipped, cut or
// added, frames dropped or added, raw noise) and checks the outcome against a model of the parser:
// the handshake resolves or fails with ERR_COMM_CONNECT, a collective resolves or fails with
// ERR_COMM_PROTOCOL (a bad message) or ERR_COLLECTIVE_TIMEOUT (too few good ones). Never a crash
// (the forks pool would lose the file), never a hang.
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';

import { validateConfig } from '../../src/config/load';
import type { TrainBatch } from '../../src/data/batch';
import { engineOptions } from '../../src/engine/engine';
import { loadNative, type NativeDataPlane } from '../../src/engine/native';
import { fuzzOptions, mutateAll, mutation } from './fuzz-options';

const MAGIC = 0x5054524e; // "NRTP", kMagic in zmq_ring.cpp
const OP_HELLO = 1;
const OP_ALL_REDUCE_SUM_F64 = 3;
// Bounds every wait of the DataPlane: the cases that run out of messages cost this much each.
const TIMEOUT_MS = 200;
// Far longer than any wait the DataPlane may make: past this, it hangs.
const HANG_MS = 20 * TIMEOUT_MS;

interface Header {
  magic: number;
  op: number;
  call: bigint;
  seq: bigint;
  bytes: bigint;
}

function encodeHeader(h: Header): Buffer {
  const b = Buffer.alloc(32);
  b.writeUInt32LE(h.magic, 0);
  b.writeUInt32LE(h.op, 4);
  b.writeBigUInt64LE(h.call, 8);
  b.writeBigUInt64LE(h.seq, 16);
  b.writeBigUInt64LE(h.bytes, 24);
  return b;
}

function decodeHeader(b: Buffer): Header {
  return {
    magic: b.readUInt32LE(0),
    op: b.readUInt32LE(4),
    call: b.readBigUInt64LE(8),
    seq: b.readBigUInt64LE(16),
    bytes: b.readBigUInt64LE(24),
  };
}

/** What rank 0 expects next: a message of this op, call and seq; `bytes` of payload (undefined: any). */
interface Expected {
  op: number;
  call: bigint;
  seq: bigint;
  bytes?: number;
  /** The hello's payload must name the sender: rank 1 of 2 of the data-parallel group. */
  payloadOk?: (payload: Buffer) => boolean;
}

const HELLO_PAYLOAD = Buffer.concat([Buffer.from(new Int32Array([1, 2]).buffer), Buffer.from('data-parallel')]);
const helloOk = (p: Buffer) =>
  p.length >= 8 &&
  p.readInt32LE(0) === 1 &&
  p.readInt32LE(4) === 2 &&
  p.subarray(8).toString('latin1') === 'data-parallel';
const HANDSHAKE: Expected[] = [{ op: OP_HELLO, call: 0n, seq: 0n, payloadOk: helloOk }];

// evaluate() with DP 2 sums 7 doubles of metrics (a GPT: loss, lm loss, batches, tokens, lm count,
// save, stop) over the ring: rank 0 receives segment 0 (4 doubles) to reduce, then segment 1 (3
// doubles) finished. The sequence numbers continue from the hello (0).
const EVALUATE: Expected[] = [
  { op: OP_ALL_REDUCE_SUM_F64, call: 1n, seq: 1n, bytes: 32 },
  { op: OP_ALL_REDUCE_SUM_F64, call: 1n, seq: 2n, bytes: 24 },
];

function validMessage(e: Expected): Buffer[] {
  const payload = e.bytes === undefined ? HELLO_PAYLOAD : Buffer.alloc(e.bytes);
  return [encodeHeader({ magic: MAGIC, op: e.op, call: e.call, seq: e.seq, bytes: BigInt(payload.length) }), payload];
}

/** recv_msg's verdict on one message, as zmq_ring.cpp decides it. */
function accepts(parts: Buffer[], e: Expected): boolean {
  if (parts.length !== 2 || parts[0].length !== 32) return false;
  const h = decodeHeader(parts[0]);
  const payload = parts[1];
  if (h.magic !== MAGIC || h.op !== e.op || h.call !== e.call) return false;
  if (e.bytes !== undefined && (h.bytes !== BigInt(e.bytes) || payload.length !== e.bytes)) return false;
  if (h.seq !== e.seq) return false;
  return e.payloadOk?.(payload) ?? true;
}

type Outcome = 'ok' | 'refused' | 'timeout';

/** What rank 0 makes of these messages: all it needs were good, one was bad, or it ran out. */
function expectedOutcome(messages: Buffer[][], expected: Expected[]): Outcome {
  for (const [i, e] of expected.entries()) {
    if (i >= messages.length) return 'timeout';
    if (!accepts(messages[i], e)) return 'refused';
  }
  return 'ok';
}

/** One way to spoil (or not) the valid message of a step. */
const damage = fc.oneof(
  { arbitrary: fc.constant({ kind: 'none' as const }), weight: 4 },
  {
    arbitrary: fc.record({
      kind: fc.constant('field' as const),
      field: fc.constantFrom('magic', 'op', 'call', 'seq', 'bytes'),
      value: fc.oneof(fc.bigInt({ min: 0n, max: 8n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
    }),
    weight: 4,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('header' as const),
      ms: fc.array(mutation, { minLength: 1, maxLength: 2 }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('payload' as const),
      ms: fc.array(mutation, { minLength: 1, maxLength: 2 }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('frames' as const),
      how: fc.constantFrom('header only', 'payload only', 'swapped', 'extra frame', 'header twice'),
      extra: fc.uint8Array({ maxLength: 8 }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('raw' as const),
      parts: fc.array(fc.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 3 }),
    }),
    weight: 1,
  },
);
type Damage = typeof damage extends fc.Arbitrary<infer D> ? D : never;

function spoil([header, payload]: Buffer[], d: Damage): Buffer[] {
  switch (d.kind) {
    case 'none':
      return [header, payload];
    case 'field': {
      const h = decodeHeader(header);
      if (d.field === 'magic' || d.field === 'op') h[d.field] = Number(d.value & 0xffffffffn);
      else h[d.field] = d.value;
      return [encodeHeader(h), payload];
    }
    case 'header':
      return [mutateAll(header, d.ms), payload];
    case 'payload':
      return [header, mutateAll(payload, d.ms)];
    case 'frames':
      return {
        'header only': [header],
        'payload only': [payload],
        swapped: [payload, header],
        'extra frame': [header, payload, Buffer.from(d.extra)],
        'header twice': [header, header, payload],
      }[d.how];
    case 'raw':
      return d.parts.map((p) => Buffer.from(p));
  }
}

/** The messages of a case: the valid message of each step, each spoiled or not; a step may be left out. */
const messagesFor = (expected: Expected[]) =>
  fc
    .array(damage, { minLength: 0, maxLength: expected.length + 1 })
    .map((ds) => ds.map((d, i) => spoil(validMessage(expected[Math.min(i, expected.length - 1)]), d)));

const addon = loadNative('cpu');
let dirs: string;
beforeAll(() => {
  dirs = fs.mkdtempSync(path.join(os.tmpdir(), 'pt-fuzz-dp-'));
});
afterAll(() => fs.rmSync(dirs, { recursive: true, force: true }));

/** A DataPlane joining a DP ring of two as rank 0, the test's sockets as rank 1 (its next and its prev). */
async function ringOfTwo(id: number) {
  const dir = path.join(dirs, String(id));
  fs.mkdirSync(dir);
  const plane = new addon.DataPlane({ ipcDir: dir, hostAddr: '', timeoutMs: TIMEOUT_MS, localRank: 0 });
  const fromPlane = new zmq.Pull({ linger: 0 });
  await fromPlane.bind(`ipc://${dir}/peer`);
  const toPlane = new zmq.Push({ linger: 0, sendTimeout: 5000 });
  toPlane.connect(plane.endpoints().dp.ipc);
  const connecting = plane.connect({
    tp: { rank: 0, size: 1, next: '' },
    dp: { rank: 0, size: 2, next: `ipc://${dir}/peer` },
  });
  const close = () => {
    toPlane.close();
    fromPlane.close();
  };
  return { plane, fromPlane, toPlane, connecting, close };
}

/** The outcome of `work`, with the native error's code; a hang fails the case. */
async function outcomeOf(work: Promise<unknown>): Promise<{ outcome: 'ok' } | { outcome: 'failed'; code: string }> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${HANG_MS} ms: the data plane hangs`)), HANG_MS);
  });
  try {
    await Promise.race([work, hang]);
    return { outcome: 'ok' };
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code !== 'string') throw err;
    return { outcome: 'failed', code };
  } finally {
    clearTimeout(timer);
  }
}

const config = validateConfig({
  model: { arch: 'gpt', layers: 1, hidden: 8, heads: 2, ffn: 16, vocab_size: 16, seq_len: 4 },
  train: { steps: 1, micro_batch: 1, lr: 0.01 },
});
const batch: TrainBatch = {
  batchSize: 1,
  seqLen: 4,
  tokens: Int32Array.from([1, 2, 3, 4]),
  labels: Int32Array.from([2, 3, 4, 5]),
  segments: null,
  attentionMask: null,
  pairLabels: null,
};

/** Rank 0 of the DP ring, connected (the test answered its hello), as an engine. */
async function connectedEngine(id: number) {
  const ring = await ringOfTwo(id);
  const [helloHeader] = await ring.fromPlane.receive();
  expect(decodeHeader(helloHeader)).toMatchObject({ magic: MAGIC, op: OP_HELLO, call: 0n, seq: 0n });
  await ring.toPlane.send(validMessage(HANDSHAKE[0]));
  await ring.connecting;
  const engine = new addon.Engine(
    { ...engineOptions(config), threads: 1, dataParallelRank: 0, dataParallelSize: 2 },
    ring.plane as NativeDataPlane,
  );
  return { ...ring, engine };
}

describe('data-plane message parser', () => {
  let cases = 0;

  it('the model of the parser agrees with the addon on valid messages', async () => {
    const ring = await connectedEngine(cases++);
    try {
      for (const m of EVALUATE.map(validMessage)) await ring.toPlane.send(m);
      expect(await outcomeOf(ring.engine.evaluate([batch]))).toEqual({ outcome: 'ok' });
      // What rank 0 sent is what rank 1 would: the same op, call and sequence numbers.
      const [first] = await ring.fromPlane.receive();
      expect(decodeHeader(first)).toEqual({ magic: MAGIC, op: OP_ALL_REDUCE_SUM_F64, call: 1n, seq: 1n, bytes: 24n });
    } finally {
      ring.close();
    }
  });

  it('the handshake accepts exactly a valid hello and refuses anything else with ERR_COMM_CONNECT', async () => {
    await fc.assert(
      fc.asyncProperty(messagesFor(HANDSHAKE), async (messages) => {
        const ring = await ringOfTwo(cases++);
        try {
          for (const m of messages) await ring.toPlane.send(m);
          const got = await outcomeOf(ring.connecting);
          const want = expectedOutcome(messages, HANDSHAKE);
          expect(got).toEqual(want === 'ok' ? { outcome: 'ok' } : { outcome: 'failed', code: 'ERR_COMM_CONNECT' });
        } finally {
          ring.close();
        }
      }),
      fuzzOptions(80),
    );
  });

  it('a collective accepts exactly valid messages, refuses others with ERR_COMM_PROTOCOL, times out on too few', async () => {
    await fc.assert(
      fc.asyncProperty(messagesFor(EVALUATE), async (messages) => {
        const ring = await connectedEngine(cases++);
        try {
          for (const m of messages) await ring.toPlane.send(m);
          const got = await outcomeOf(ring.engine.evaluate([batch]));
          const want = expectedOutcome(messages, EVALUATE);
          const code = { refused: 'ERR_COMM_PROTOCOL', timeout: 'ERR_COLLECTIVE_TIMEOUT' } as const;
          expect(got).toEqual(want === 'ok' ? { outcome: 'ok' } : { outcome: 'failed', code: code[want] });
        } finally {
          ring.close();
        }
      }),
      fuzzOptions(80),
    );
  });
});
