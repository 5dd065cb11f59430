// router.ts — the coordinator's end of the control plane (link.ts is the other end): a ROUTER
// reached through tcp://address:port (the master address, see coordinator.ts listenAddress; a
// TcpFront caps the connections and pipes them to the ROUTER's private ipc socket),
// CURVE-authenticated when the job has keys. Every frame that arrives is decoded and verified; a bad one is logged (with the peer's routing id) and dropped, never passed on, and a
// handler that throws is logged, so nothing received can take the control plane down. Sends go
// through a queue (one ZeroMQ send in flight).
import type pino from 'pino';
import * as zmq from 'zeromq';

import { serverCurveOptions, ZapHandler, type ControlKeys } from './auth';
import { ControlError } from './errors';
import { refusalLog } from './refusal-log';
import type { ControlMessage } from './messages';
import { TcpFront, type ConnectionLimits } from './tcp-front';
import { decodeMessage, describeFrame, encodeMessage, MAX_CONTROL_MESSAGE_BYTES, printableId, SendQueue } from './wire';

/** Bad frames logged individually before the log switches to a count every BAD_FRAME_LOG_EVERY. */
const BAD_FRAMES_LOGGED = 20;
const BAD_FRAME_LOG_EVERY = 1000;
/** How long the ROUTER flushes after close (a last Reject or Shutdown), and the front passes it on. */
const ROUTER_LINGER_MS = 500;

export interface RouterHandlers {
  /** A verified message from a peer. */
  onMessage: (routingId: Buffer, m: ControlMessage) => void;
  /** The socket itself failed (not a bad frame): the control plane is gone. */
  onSocketError: (err: Error) => void;
}

/**
 * Handshakes that fail (no CURVE, another server key, a ZAP refusal) as the ROUTER's socket events
 * see them. They happen on the ipc side, so they name no peer; the front names it when it sees the
 * ROUTER drop the connection first (both ends often close at once, so not always).
 */
async function watchHandshakes(socket: zmq.Router, refused: (address: string, text: string) => void): Promise<void> {
  try {
    for await (const e of socket.events) {
      if (!e.type.startsWith('handshake:error')) continue;
      const why = 'error' in e && e.error ? e.error.message : e.type;
      refused(
        'handshake',
        `refused a control connection: its CURVE handshake failed (${why}); the peer does not hold this job's key`,
      );
    }
  } catch {
    // the socket closed
  }
}

export class ControlRouter {
  private readonly queue: SendQueue;
  private badFrames = 0;
  private closed = false;

  private constructor(
    private readonly socket: zmq.Router,
    private readonly zap: ZapHandler | undefined,
    private readonly front: TcpFront,
    private readonly log: pino.Logger,
  ) {
    this.queue = new SendQueue(socket, (err) => log.warn({ err: err.message }, 'control send failed'));
  }

  /**
   * Listens on tcp://address:port (`address` an IPv4 literal, or '*' for every interface), holding
   * at most `limits` connections; ERR_PORT_IN_USE names the flag to change.
   */
  static async bind(
    address: string,
    port: number,
    keys: ControlKeys | undefined,
    limits: ConnectionLimits,
    log: pino.Logger,
  ): Promise<ControlRouter> {
    // Every refused handshake goes through one rate-limited log: a peer retries, and a flood is cheap.
    const refused = refusalLog(log);
    // The ZAP handler must be listening before the first handshake. What it refuses shows up in the
    // socket's handshake events (below) and at the front.
    const zap = keys ? await ZapHandler.start(keys, () => undefined) : undefined;
    const socket = new zmq.Router({
      maxMessageSize: MAX_CONTROL_MESSAGE_BYTES,
      // A peer sends a few messages at a time; beyond this many queued, libzmq stops reading from
      // it (TCP pushes back) rather than holding up to 1 MiB per message for it.
      receiveHighWaterMark: 100,
      linger: ROUTER_LINGER_MS,
      // A peer that reconnects with its routing id takes over its old connection.
      handover: true,
      // A connection that has not authenticated within 10 s is dropped, and its slot with it.
      handshakeInterval: 10_000,
      ...(keys ? serverCurveOptions(keys) : {}),
    });
    const front = TcpFront.prepare(limits, refused);
    try {
      await socket.bind(front.upstreamEndpoint);
      await front.listen(address, port);
    } catch (err) {
      socket.close();
      zap?.close();
      void front.close();
      if (err instanceof ControlError) throw err;
      throw new ControlError(
        'ERR_COORDINATOR_BIND',
        `cannot listen on tcp://${address}:${port}: ${(err as Error).message}`,
      );
    }
    if (keys) void watchHandshakes(socket, refused);
    return new ControlRouter(socket, zap, front, log);
  }

  /** Starts delivering what arrives. */
  listen(h: RouterHandlers): void {
    void (async () => {
      try {
        for await (const frames of this.socket) this.onFrames(frames, h);
      } catch (err) {
        if (!this.closed) h.onSocketError(err as Error);
      }
    })();
  }

  send(routingId: Buffer, m: ControlMessage): void {
    if (this.closed) return;
    void this.queue.send([routingId, encodeMessage(m)], { droppable: m.kind === 'heartbeat' });
  }

  /** Gives what is queued half a second to leave, then closes. */
  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.race([this.queue.drained(), new Promise((r) => setTimeout(r, 500))]);
    this.closed = true;
    this.front.closing = true;
    this.socket.close();
    this.zap?.close();
    // libzmq flushes for the socket's linger after close; the front passes that on before it goes.
    await this.front.close(ROUTER_LINGER_MS);
  }

  private onFrames(frames: Buffer[], h: RouterHandlers): void {
    const [routingId, ...body] = frames;
    if (!routingId || body.length !== 1) return this.drop(routingId, `${body.length}-part message`);
    let m: ControlMessage;
    try {
      m = decodeMessage(body[0]);
    } catch (err) {
      return this.drop(routingId, `${describeFrame(body[0])}: ${(err as Error).message}`);
    }
    try {
      h.onMessage(routingId, m);
    } catch (err) {
      // A handler bug must not take the job's control plane down with it.
      this.log.error({ err: (err as Error).stack, kind: m.kind }, 'control message handler failed');
    }
  }

  private drop(routingId: Buffer | undefined, what: string): void {
    this.badFrames++;
    if (this.badFrames <= BAD_FRAMES_LOGGED || this.badFrames % BAD_FRAME_LOG_EVERY === 0)
      this.log.warn(
        { peer: routingId ? printableId(routingId) : '?', badFrames: this.badFrames },
        `dropped a bad control frame: ${what}`,
      );
  }
}
