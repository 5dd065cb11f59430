// link.ts — the agents' and workers' end of the control plane: a DEALER connected to the
// coordinator's ROUTER, a send queue, heartbeats carrying the sender's phase, and a watchdog that
// calls onSilence when the coordinator has said nothing for longer than the heartbeat timeout.
import { randomBytes } from 'node:crypto';
import * as zmq from 'zeromq';

import { clientCurveOptions, type ControlKeys } from './auth';
import type { ControlMessage } from './messages';
import { decodeMessage, describeFrame, encodeMessage, MAX_CONTROL_MESSAGE_BYTES, SendQueue } from './wire';

export interface LinkTiming {
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
}

export interface CoordinatorLinkOptions extends LinkTiming {
  /** tcp://host:port of the coordinator. */
  address: string;
  /** Readable prefix of this socket's routing id ("agent/n1", "worker/r3"); a random suffix keeps it unique. */
  identity: string;
  phase: string;
  onMessage: (m: ControlMessage) => void;
  /** The coordinator went silent (only after it was first heard from). */
  onSilence: (silentMs: number) => void;
  /** A frame from the coordinator that did not decode, or a failed send. */
  onWarning?: (what: string) => void;
  /** The job's CURVE keys, when the control plane is authenticated. */
  keys?: ControlKeys;
}

/** Time given to queued messages (a final exit report, a finish) to leave before the socket closes. */
const CLOSE_DRAIN_MS = 1000;

export class CoordinatorLink {
  readonly address: string;
  phase: string;
  private readonly socket: zmq.Dealer;
  private readonly queue: SendQueue;
  private timing: LinkTiming;
  private timer: NodeJS.Timeout | undefined;
  private lastTickMs = Date.now();
  private lastHeardMs = 0;
  private silenceWatched = true;
  private closed = false;

  constructor(private readonly opts: CoordinatorLinkOptions) {
    this.address = opts.address;
    this.phase = opts.phase;
    this.timing = { heartbeatIntervalMs: opts.heartbeatIntervalMs, heartbeatTimeoutMs: opts.heartbeatTimeoutMs };
    this.socket = new zmq.Dealer({
      routingId: `${opts.identity}/${process.pid}/${randomBytes(4).toString('hex')}`,
      maxMessageSize: MAX_CONTROL_MESSAGE_BYTES,
      // Bounded, so a process whose coordinator is gone can still exit.
      linger: CLOSE_DRAIN_MS,
      reconnectInterval: 100,
      reconnectMaxInterval: 1000,
      ...(opts.keys ? clientCurveOptions(opts.keys) : {}),
    });
    this.socket.connect(opts.address);
    this.queue = new SendQueue(this.socket, (err) => {
      if (!this.closed) opts.onWarning?.(`send to ${opts.address} failed: ${err.message}`);
    });
    void this.receiveLoop();
    this.schedule();
  }

  /** True once anything arrived from the coordinator. */
  get heardFromCoordinator(): boolean {
    return this.lastHeardMs > 0;
  }

  /** Adopts the coordinator's timing (agents learn it from the welcome). */
  setTiming(t: LinkTiming): void {
    this.timing = { ...t };
    this.schedule();
  }

  /** Turns the silence watchdog off while winding down (a finished coordinator may close first). */
  stopWatchingSilence(): void {
    this.silenceWatched = false;
  }

  send(m: ControlMessage): Promise<void> {
    if (this.closed) return Promise.resolve();
    return this.queue.send(encodeMessage(m), { droppable: m.kind === 'heartbeat' });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.timer);
    await Promise.race([this.queue.drained(), new Promise((r) => setTimeout(r, CLOSE_DRAIN_MS))]);
    this.closed = true;
    this.socket.close();
  }

  private schedule(): void {
    clearInterval(this.timer);
    this.lastTickMs = Date.now();
    this.timer = setInterval(() => this.tick(), this.timing.heartbeatIntervalMs);
  }

  private tick(): void {
    const now = Date.now();
    // A tick far behind schedule means this process's event loop was blocked (a long synchronous
    // task): the coordinator's heartbeats are waiting unread in the socket, so it is not silent.
    if (now - this.lastTickMs > 2 * this.timing.heartbeatIntervalMs && this.lastHeardMs > 0) this.lastHeardMs = now;
    this.lastTickMs = now;
    void this.send({ kind: 'heartbeat', body: { phase: this.phase } });
    if (this.silenceWatched && this.lastHeardMs > 0) {
      const silentMs = now - this.lastHeardMs;
      if (silentMs > this.timing.heartbeatTimeoutMs) {
        this.silenceWatched = false;
        this.opts.onSilence(silentMs);
      }
    }
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const frames of this.socket) {
        this.lastHeardMs = Date.now();
        if (frames.length !== 1) {
          this.opts.onWarning?.(`dropped a ${frames.length}-part message from the coordinator`);
          continue;
        }
        let m: ControlMessage;
        try {
          m = decodeMessage(frames[0]);
        } catch (err) {
          this.opts.onWarning?.(`dropped ${describeFrame(frames[0])} from the coordinator: ${(err as Error).message}`);
          continue;
        }
        try {
          this.opts.onMessage(m);
        } catch (err) {
          this.opts.onWarning?.(`handling ${m.kind} failed: ${(err as Error).stack ?? String(err)}`);
        }
      }
    } catch (err) {
      if (!this.closed) this.opts.onWarning?.(`control socket failed: ${(err as Error).message}`);
    }
  }
}
