// router.ts — the coordinator's end of the control plane (link.ts is the other end): a ROUTER bound
// on tcp://address:port (the master address; see coordinator.ts listenAddress), CURVE-authenticated when the job has keys. Every frame that arrives is decoded
// and verified; a bad one is logged (with the peer's routing id) and dropped, never passed on, and a
// handler that throws is logged, so nothing received can take the control plane down. Sends go
// through a queue (one ZeroMQ send in flight).
import type pino from 'pino';
import * as zmq from 'zeromq';

import { serverCurveOptions, ZapHandler, type ControlKeys } from './auth';
import { ControlError } from './errors';
import type { ControlMessage } from './messages';
import { decodeMessage, describeFrame, encodeMessage, MAX_CONTROL_MESSAGE_BYTES, printableId, SendQueue } from './wire';

/** Bad frames logged individually before the log switches to a count every BAD_FRAME_LOG_EVERY. */
const BAD_FRAMES_LOGGED = 20;
const BAD_FRAME_LOG_EVERY = 1000;

export interface RouterHandlers {
  /** A verified message from a peer. */
  onMessage: (routingId: Buffer, m: ControlMessage) => void;
  /** The socket itself failed (not a bad frame): the control plane is gone. */
  onSocketError: (err: Error) => void;
}

/** Refused handshakes logged one by one, then one line per REFUSED_LOG_EVERY with the count. */
const REFUSED_LOGGED = 5;
const REFUSED_LOG_EVERY = 1000;

function refusalLog(log: pino.Logger): (address: string, text: string) => void {
  let count = 0;
  return (address, text) => {
    count++;
    if (count <= REFUSED_LOGGED) log.warn({ address, refused: count }, text);
    else if (count % REFUSED_LOG_EVERY === 0 || count === REFUSED_LOGGED + 1)
      log.warn(
        { address, refused: count },
        `${text} (${count} refused so far; logging one line per ${REFUSED_LOG_EVERY})`,
      );
  };
}

async function watchHandshakes(socket: zmq.Router, refused: (address: string, text: string) => void): Promise<void> {
  try {
    for await (const e of socket.events) {
      if (!e.type.startsWith('handshake:error') || !('address' in e)) continue;
      const why = 'error' in e && e.error ? e.error.message : e.type;
      refused(
        e.address,
        `refused a control connection on ${e.address}: its CURVE handshake failed (${why}); the peer does not ` +
          `hold this job's key (--auth-key-file)`,
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
    private readonly log: pino.Logger,
  ) {
    this.queue = new SendQueue(socket, (err) => log.warn({ err: err.message }, 'control send failed'));
  }

  /**
   * Binds tcp://address:port (`address` an IPv4 literal, or '*' for every interface);
   * ERR_PORT_IN_USE names the flag to change.
   */
  static async bind(
    address: string,
    port: number,
    keys: ControlKeys | undefined,
    log: pino.Logger,
  ): Promise<ControlRouter> {
    // Every refused handshake goes through one rate-limited log: a peer retries, and a flood is cheap.
    const refused = refusalLog(log);
    // The ZAP handler must be listening before the first handshake.
    const zap = keys
      ? await ZapHandler.start(keys, (address) =>
          refused(address, `refused a control connection from ${address}: it does not hold this job's key`),
        )
      : undefined;
    const socket = new zmq.Router({
      maxMessageSize: MAX_CONTROL_MESSAGE_BYTES,
      linger: 500,
      // A peer that reconnects with its routing id takes over its old connection.
      handover: true,
      ...(keys ? serverCurveOptions(keys) : {}),
    });
    try {
      await socket.bind(`tcp://${address}:${port}`);
    } catch (err) {
      socket.close();
      zap?.close();
      const e = err as Error & { code?: string };
      if (e.code === 'EADDRINUSE')
        throw new ControlError(
          'ERR_PORT_IN_USE',
          `port ${port} is already in use on this host; pick another with --master-port (and give every node ` +
            `the same one)`,
        );
      throw new ControlError('ERR_COORDINATOR_BIND', `cannot listen on tcp://${address}:${port}: ${e.message}`);
    }
    // A peer without the job's key fails the CURVE handshake before ZAP is asked (no CURVE, or not
    // the coordinator's public key): only the socket's events see it, with the listener's address.
    if (keys) void watchHandshakes(socket, refused);
    return new ControlRouter(socket, zap, log);
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
    this.socket.close();
    this.zap?.close();
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
