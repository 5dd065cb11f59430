// The control-plane decoder under a property-based fuzzer: whatever bytes arrive, decodeMessage
// returns a valid message or throws a WireError (ERR_BAD_MESSAGE), never another exception; every
// valid message survives encode/decode unchanged; and the coordinator's ROUTER and a worker's DEALER
// pass on only valid single-frame messages, whatever multi-part messages a peer sends, and keep
// working afterwards.
import fc from 'fast-check';
import * as path from 'node:path';
import pino from 'pino';
import * as protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';

import { CoordinatorLink } from '../../src/control/link';
import type { ControlMessage } from '../../src/control/messages';
import { ControlRouter } from '../../src/control/router';
import { connectionLimits } from '../../src/control/tcp-front';
import { decodeMessage, encodeMessage, PROTOCOL_VERSION, WireError } from '../../src/control/wire';
import { freePort } from '../launch/launch-harness';
import { fuzzOptions, mutateAll, mutation } from './fuzz-options';

const schema = protobuf.loadSync(path.join(__dirname, '..', '..', 'proto', 'control.proto'));
schema.resolveAll();
const Envelope = schema.lookupType('paratrain.control.Envelope');

const text = fc.string({ unit: 'binary', maxLength: 12 });

const scalarOf: Record<string, fc.Arbitrary<unknown>> = {
  uint32: fc.integer({ min: 0, max: 0xffffffff }),
  int32: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  // decodeMessage turns 64-bit integers into numbers: only safe integers are messages we send.
  uint64: fc.maxSafeNat(),
  double: fc.double(),
  bool: fc.boolean(),
  string: text,
  bytes: fc.uint8Array({ maxLength: 16 }).map((b) => Buffer.from(b)),
};

const isOptional = (f: protobuf.Field) => f.options?.proto3_optional === true;

/** Plain objects of `type` as decodeMessage returns them: every field set, proto3 optionals maybe absent. */
function plainOf(type: protobuf.Type): fc.Arbitrary<Record<string, unknown>> {
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of type.fieldsArray) {
    let value: fc.Arbitrary<unknown>;
    if (f.resolvedType instanceof protobuf.Type) value = plainOf(f.resolvedType);
    // An empty NCCL id means "not this worker's group to lead": decodeMessage leaves it out.
    else if (f.name === 'ncclId') value = fc.uint8Array({ minLength: 1, maxLength: 16 }).map((b) => Buffer.from(b));
    else value = scalarOf[f.type] ?? fc.constant(undefined);
    if (scalarOf[f.type] === undefined && !(f.resolvedType instanceof protobuf.Type))
      throw new Error(`no arbitrary for ${type.name}.${f.name} (${f.type})`);
    model[f.name] = f.repeated ? fc.array(value, { maxLength: 3 }) : value;
  }
  const required = type.fieldsArray.filter((f) => !isOptional(f)).map((f) => f.name);
  return fc.record(model, { requiredKeys: required });
}

/** Every kind of control message with arbitrary contents. */
const controlMessage: fc.Arbitrary<ControlMessage> = fc.oneof(
  ...Envelope.oneofs.body.fieldsArray.map((f) =>
    plainOf(f.resolvedType as protobuf.Type).map((body) => ({ kind: f.name, body }) as ControlMessage),
  ),
);

/** What anything decodeMessage accepts must be: a message we could have sent, unchanged by a round trip. */
function expectValid(m: ControlMessage): void {
  expect(decodeMessage(encodeMessage(m))).toEqual(m);
}

/** decodeMessage's answer to a frame: a valid message, or a WireError (anything else fails the property). */
function decodeOrRefuse(frame: Buffer): ControlMessage | WireError {
  try {
    const m = decodeMessage(frame);
    expectValid(m);
    return m;
  } catch (err) {
    if (err instanceof WireError && err.code === 'ERR_BAD_MESSAGE') return err;
    throw err;
  }
}

// Protobuf-shaped noise: fields with real and unknown numbers, every wire type (the deprecated
// groups and the invalid 6 and 7 too), varints up to 10 bytes and beyond, lengths that lie.
function varint(v: bigint): Buffer {
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return Buffer.from(out);
}

const fieldNumber = fc.oneof(
  fc.constantFrom(1, 2, 3, 4, 9, 10, 13, 18, 29, 30),
  fc.integer({ min: 1, max: 2 ** 29 - 1 }),
);
const anyVarint = fc.bigInt({ min: 0n, max: (1n << 70n) - 1n });

const protobufNoise: fc.Arbitrary<Buffer> = fc.letrec<{ message: Buffer; field: Buffer }>((tie) => ({
  message: fc.array(tie('field'), { maxLength: 6 }).map((fields) => Buffer.concat(fields)),
  field: fc.oneof(
    { depthSize: 'small' },
    fc.tuple(fieldNumber, anyVarint).map(([n, v]) => Buffer.concat([varint(BigInt(n << 3)), varint(v)])),
    fc
      .tuple(fieldNumber, fc.constantFrom(1, 5), fc.uint8Array({ minLength: 8, maxLength: 8 }))
      .map(([n, wire, b]) => Buffer.concat([varint(BigInt((n << 3) | wire)), b.subarray(0, wire === 1 ? 8 : 4)])),
    fc
      .tuple(
        fieldNumber,
        fc.oneof(tie('message'), fc.uint8Array({ maxLength: 12 }).map(Buffer.from)),
        fc.integer({ min: -3, max: 3 }),
      )
      .map(([n, payload, lie]) =>
        Buffer.concat([varint(BigInt((n << 3) | 2)), varint(BigInt(Math.max(0, payload.length + lie))), payload]),
      ),
    fc.tuple(fieldNumber, fc.constantFrom(3, 4, 6, 7)).map(([n, wire]) => varint(BigInt((n << 3) | wire))),
  ),
})).message;

/** An envelope of the current protocol whose body field holds noise: gets past the version check. */
const noisyEnvelope = fc
  .tuple(fc.integer({ min: 10, max: 30 }), protobufNoise)
  .map(([body, noise]) =>
    Buffer.concat([
      varint(BigInt(1 << 3)),
      varint(BigInt(PROTOCOL_VERSION)),
      varint(BigInt((body << 3) | 2)),
      varint(BigInt(noise.length)),
      noise,
    ]),
  );

/** Frames a peer could send: raw bytes, protobuf noise, valid frames and mutations of them. */
const anyFrame: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
  protobufNoise,
  noisyEnvelope,
  controlMessage.map(encodeMessage),
  fc
    .tuple(controlMessage, fc.array(mutation, { minLength: 1, maxLength: 3 }))
    .map(([m, ms]) => mutateAll(encodeMessage(m), ms)),
);

describe('control frame decoder', () => {
  it('every valid message decodes to itself', () => {
    fc.assert(fc.property(controlMessage, expectValid), fuzzOptions(1000));
  });

  it('arbitrary bytes are refused with ERR_BAD_MESSAGE or decode to a valid message', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (b) => void decodeOrRefuse(Buffer.from(b))),
      fuzzOptions(1000),
    );
  });

  it('protobuf-shaped noise, in an envelope or not, is refused or decodes to a valid message', () => {
    fc.assert(
      fc.property(protobufNoise, (b) => void decodeOrRefuse(b)),
      fuzzOptions(1000),
    );
    fc.assert(
      fc.property(noisyEnvelope, (b) => void decodeOrRefuse(b)),
      fuzzOptions(1000),
    );
  });

  it('bit flips, cuts and extra bytes in a valid frame are refused or decode to a valid message', () => {
    fc.assert(
      fc.property(controlMessage, fc.array(mutation, { minLength: 1, maxLength: 4 }), (m, ms) => {
        void decodeOrRefuse(mutateAll(encodeMessage(m), ms));
      }),
      fuzzOptions(1000),
    );
  });
});

const silent = pino({ level: 'silent' });
const multipart = fc.array(anyFrame, { minLength: 1, maxLength: 4 });
/** A frame only a valid message of this test decodes to: marks the end of one case's frames. */
const sentinel = (n: number): ControlMessage => ({ kind: 'heartbeat', body: { phase: `fuzz-sentinel-${n}` } });
const isSentinel = (m: ControlMessage, n: number) => m.kind === 'heartbeat' && m.body.phase === `fuzz-sentinel-${n}`;

/** What a receiver must pass on from these messages: single frames that decode. */
function deliverable(messages: Buffer[][]): ControlMessage[] {
  return messages.flatMap((parts) => {
    if (parts.length !== 1) return [];
    const m = decodeOrRefuse(parts[0]);
    return m instanceof WireError ? [] : [m];
  });
}

/** Resolves once `received` holds a message `done` accepts, or rejects after waitMs. */
async function waitFor<T>(received: T[], done: (m: T) => boolean, waitMs = 5000): Promise<void> {
  const deadline = Date.now() + waitMs;
  while (!received.some(done)) {
    if (Date.now() > deadline) throw new Error('the sentinel never arrived: the receiver stopped delivering');
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('the coordinator’s ROUTER under arbitrary multi-part messages', () => {
  let router: ControlRouter;
  let peer: zmq.Dealer;
  const received: ControlMessage[] = [];
  const socketErrors: Error[] = [];

  beforeAll(async () => {
    const port = await freePort();
    router = await ControlRouter.bind('127.0.0.1', port, undefined, connectionLimits(1, 1), silent);
    router.listen({ onMessage: (_id, m) => received.push(m), onSocketError: (e) => socketErrors.push(e) });
    peer = new zmq.Dealer({ linger: 0, sendTimeout: 5000 });
    peer.connect(`tcp://127.0.0.1:${port}`);
  });
  afterAll(async () => {
    peer.close();
    await router.close();
  });

  it('passes on exactly the valid single-frame messages and keeps listening', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(multipart, { minLength: 1, maxLength: 4 }), async (messages) => {
        const id = n++;
        received.length = 0;
        for (const parts of messages) await peer.send(parts);
        await peer.send(encodeMessage(sentinel(id)));
        await waitFor(received, (m) => isSentinel(m, id));
        const expected = deliverable(messages);
        expect(received.slice(0, -1)).toEqual(expected);
        expect(socketErrors).toEqual([]);
      }),
      fuzzOptions(150),
    );
  });
});

describe('a worker’s DEALER (CoordinatorLink) under arbitrary multi-part messages', () => {
  let coordinator: zmq.Router;
  let link: CoordinatorLink;
  let linkId: Buffer;
  const received: ControlMessage[] = [];
  const warnings: string[] = [];

  beforeAll(async () => {
    const port = await freePort();
    coordinator = new zmq.Router({ linger: 0, sendTimeout: 5000 });
    await coordinator.bind(`tcp://127.0.0.1:${port}`);
    link = new CoordinatorLink({
      address: `tcp://127.0.0.1:${port}`,
      identity: 'worker/fuzz',
      phase: 'setup',
      heartbeatIntervalMs: 50,
      heartbeatTimeoutMs: 60_000,
      onMessage: (m) => received.push(m),
      onSilence: () => {},
      onWarning: (w) => warnings.push(w),
    });
    // The link's first heartbeat tells its routing id.
    [linkId] = await coordinator.receive();
  });
  afterAll(async () => {
    await link.close();
    coordinator.close();
  });

  it('passes on exactly the valid single-frame messages and keeps listening', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(multipart, { minLength: 1, maxLength: 4 }), async (messages) => {
        const id = n++;
        received.length = 0;
        for (const parts of messages) await coordinator.send([linkId, ...parts]);
        await coordinator.send([linkId, encodeMessage(sentinel(id))]);
        await waitFor(received, (m) => isSentinel(m, id));
        const expected = deliverable(messages);
        expect(received.slice(0, -1)).toEqual(expected);
        expect(warnings.filter((w) => w.startsWith('control socket failed'))).toEqual([]);
      }),
      fuzzOptions(150),
    );
  });
});
