// wire.ts — control-plane frames: ControlMessage <-> protobuf bytes (proto/control.proto), with a
// size cap and verify() on everything that arrives, and a send queue that keeps one ZeroMQ send in
// flight per socket (zeromq.js refuses a second concurrent send with EBUSY).
import type * as zmq from 'zeromq';

import { paratrain } from '../proto';
import type { ControlMessage, GroupEndpoints, MessageKind } from './messages';

/** Bumped whenever a message changes incompatibly; a peer with another version is refused. */
export const PROTOCOL_VERSION = 3;

/**
 * The largest control frame anyone accepts. Control messages are small: the largest are an
 * Assignment (at most a group of peers) and a ShardSaved (one rank's checkpoint files and tensor
 * pieces, some hundred bytes each). ZeroMQ drops a peer that sends more (maxMessageSize), and
 * decodeMessage refuses it too.
 */
export const MAX_CONTROL_MESSAGE_BYTES = 1 << 20;

/** A frame that is not a valid control message; the receiver logs it and drops it. */
export class WireError extends Error {
  readonly code = 'ERR_BAD_MESSAGE';
}

const Envelope = paratrain.control.Envelope;

export function encodeMessage(m: ControlMessage): Buffer {
  const plain = { protocol: PROTOCOL_VERSION, [m.kind]: m.body };
  const problem = Envelope.verify(plain);
  // Our own message failing verification is a programming error, not bad input.
  if (problem !== null) throw new Error(`cannot encode control message ${m.kind}: ${problem}`);
  const bytes = Envelope.encode(Envelope.fromObject(plain)).finish();
  if (bytes.length > MAX_CONTROL_MESSAGE_BYTES)
    throw new Error(`control message ${m.kind} is ${bytes.length} bytes, over the ${MAX_CONTROL_MESSAGE_BYTES} cap`);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

type RawEndpoints = paratrain.control.GroupEndpoints.$Properties | null;

// protobuf leaves an absent sub-message null; the rest of the code may rely on the full shape.
function fullEndpoints(e: RawEndpoints | undefined): GroupEndpoints {
  const ring = (r: paratrain.control.IDataEndpoints | null | undefined) => ({
    ipc: r?.ipc ?? '',
    tcp: r?.tcp ?? '',
    ...(r?.ncclId && r.ncclId.length > 0 ? { ncclId: r.ncclId } : {}),
  });
  return { tp: ring(e?.tp), dp: ring(e?.dp) };
}

/** Decodes one frame; throws WireError for anything that is not a current, valid control message. */
export function decodeMessage(frame: Buffer): ControlMessage {
  if (frame.length > MAX_CONTROL_MESSAGE_BYTES)
    throw new WireError(`frame of ${frame.length} bytes is over the ${MAX_CONTROL_MESSAGE_BYTES}-byte cap`);
  let decoded: paratrain.control.Envelope;
  try {
    decoded = Envelope.decode(frame);
  } catch (err) {
    throw new WireError(`not a control message (${(err as Error).message})`);
  }
  const problem = Envelope.verify(decoded);
  if (problem !== null) throw new WireError(`control message failed verification: ${problem}`);
  const o = Envelope.toObject(decoded, { defaults: true, longs: Number, arrays: true, oneofs: true }) as Record<
    string,
    unknown
  > & { protocol: number; body?: MessageKind };
  if (o.protocol !== PROTOCOL_VERSION)
    throw new WireError(`protocol version ${o.protocol}, expected ${PROTOCOL_VERSION} (a peer from another release?)`);
  const kind = o.body;
  // An unset body, or one this build does not know (its field is skipped as unknown), leaves `body` unset.
  if (kind === undefined) throw new WireError('empty or unknown control message');
  const body = o[kind] as Record<string, unknown>;
  if (kind === 'register') body.endpoints = fullEndpoints(body.endpoints as RawEndpoints);
  if (kind === 'assignment')
    for (const list of [body.tpPeers, body.dpPeers] as Array<Array<{ endpoints: RawEndpoints }>>)
      for (const peer of list) peer.endpoints = fullEndpoints(peer.endpoints);
  return { kind, body } as ControlMessage;
}

/** A routing id for logs: ours are readable ("worker/r3/…"); ZeroMQ's own are binary. */
export function printableId(id: Buffer): string {
  const s = id.toString('utf8');
  return /^[\x20-\x7e]+$/.test(s) ? s : `0x${id.toString('hex')}`;
}

/** A one-line description of a frame that failed to decode, for logs. */
export function describeFrame(frame: Buffer): string {
  const head = frame.subarray(0, 16).toString('hex');
  return `${frame.length} bytes (${head}${frame.length > 16 ? '…' : ''})`;
}

/**
 * Sends on one socket in order, one at a time. A send that fails (the socket was closed) is
 * reported to onError and does not stop the queue. Heartbeats are dropped instead of queued when
 * the backlog is long: a peer that cannot take them learns nothing from a pile of old ones.
 */
export class SendQueue {
  private tail: Promise<void> = Promise.resolve();
  private pending = 0;
  static readonly MAX_BACKLOG = 256;

  constructor(
    private readonly socket: zmq.Writable,
    private readonly onError: (err: Error) => void = () => {},
  ) {}

  /** Queues frames; resolves when they were handed to ZeroMQ (never rejects). */
  send(frames: Buffer | Buffer[], opts: { droppable?: boolean } = {}): Promise<void> {
    if (opts.droppable && this.pending >= SendQueue.MAX_BACKLOG) return Promise.resolve();
    this.pending++;
    const sent = this.tail.then(async () => {
      try {
        await this.socket.send(frames);
      } catch (err) {
        this.onError(err as Error);
      } finally {
        this.pending--;
      }
    });
    this.tail = sent;
    return sent;
  }

  /** Resolves when everything queued so far was handed to ZeroMQ. */
  drained(): Promise<void> {
    return this.tail;
  }
}
