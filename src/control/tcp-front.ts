// tcp-front.ts — the coordinator's TCP port. The ROUTER itself listens on an ipc socket in a private
// directory (0700); this front accepts the TCP connections and pipes each one to it, so that it can
// do what libzmq cannot: cap the connections, in all and per address, and close those beyond the
// cap on arrival. Without it a flood of idle connections took every file descriptor of the
// launcher (20,000 did, CURVE or not) and the next checkpoint commit failed with EMFILE. ZeroMQ's
// wire protocol and CURVE pass through unchanged; a connection the coordinator drops (a failed or
// missing handshake) is closed on the TCP side too.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import { ControlError } from './errors';

export interface ConnectionLimits {
  /** Connections held at once; the next is closed as it arrives. */
  total: number;
  /** Connections held at once from one remote address. */
  perAddress: number;
}

/**
 * What a job needs: one connection per agent and per worker, and room for reconnections and the
 * processes of a restarted round while the old ones close. In a single-node job every peer is on
 * loopback, so only the total applies.
 */
export function connectionLimits(nnodes: number, nprocPerNode: number): ConnectionLimits {
  const total = 2 * nnodes * (nprocPerNode + 1) + 32;
  return { total, perAddress: nnodes === 1 ? total : 2 * (nprocPerNode + 1) + 16 };
}

/** How long a peer's connection may take to drain after the coordinator's side closed. */
const CLIENT_END_MS = 1000;

export class TcpFront {
  private server: net.Server | undefined;
  private readonly perAddress = new Map<string, number>();
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly dir: string,
    /** The ipc socket file the ROUTER binds. */
    readonly upstreamPath: string,
    private readonly limits: ConnectionLimits,
    private readonly refused: (address: string, text: string) => void,
  ) {}

  /** Makes the private directory; bind the ROUTER to `upstreamEndpoint`, then call listen(). */
  static prepare(limits: ConnectionLimits, refused: (address: string, text: string) => void): TcpFront {
    // ipc:// paths must fit in ~107 bytes: a short temp directory.
    const tmp = os.tmpdir().length <= 32 ? os.tmpdir() : '/tmp';
    const dir = fs.mkdtempSync(path.join(tmp, 'pt-c-'));
    return new TcpFront(dir, path.join(dir, 'router'), limits, refused);
  }

  get upstreamEndpoint(): string {
    return `ipc://${this.upstreamPath}`;
  }

  /** Listens on address:port (an IPv4 literal, or '*' for every interface). */
  async listen(address: string, port: number): Promise<void> {
    const server = net.createServer({ noDelay: true }, (client) => this.accept(client));
    server.maxConnections = this.limits.total;
    server.on('drop', (d) =>
      this.refused(
        d?.remoteAddress ?? '?',
        `refused a control connection from ${d?.remoteAddress ?? '?'}: the coordinator holds ` +
          `${this.limits.total} connections, its most`,
      ),
    );
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: Error & { code?: string }) => {
        if (err.code === 'EADDRINUSE')
          reject(
            new ControlError(
              'ERR_PORT_IN_USE',
              `port ${port} is already in use on this host; pick another with --master-port (and give every ` +
                `node the same one)`,
            ),
          );
        else
          reject(new ControlError('ERR_COORDINATOR_BIND', `cannot listen on tcp://${address}:${port}: ${err.message}`));
      });
      server.listen({ host: address === '*' ? '0.0.0.0' : address, port }, () => resolve());
    });
    this.server = server;
  }

  private accept(client: net.Socket): void {
    const who = client.remoteAddress ?? '?';
    const held = this.perAddress.get(who) ?? 0;
    if (held >= this.limits.perAddress) {
      client.destroy();
      this.refused(
        who,
        `refused a control connection from ${who}: ${held} connections from that address are open, the most ` +
          `one address may hold`,
      );
      return;
    }
    this.perAddress.set(who, held + 1);
    this.sockets.add(client);
    const upstream = net.connect(this.upstreamPath);
    client.pipe(upstream);
    upstream.pipe(client);
    let clientGone = false;
    // Either side gone closes the other; an error is just a close here (ZeroMQ reconnects).
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => {
      // The coordinator keeps a peer's connection until the peer leaves, unless its handshake
      // failed or never came (or it broke the protocol): that is the refusal, named by address.
      if (!clientGone && !this.closing)
        this.refused(
          who,
          `refused a control connection from ${who}: no CURVE handshake with this job's key within 10 s, or a ` +
            `failed one: the peer does not hold this job's key`,
        );
      // end, not destroy: what the ROUTER wrote last (a Reject) may still be on its way to the peer.
      client.end();
      setTimeout(() => client.destroy(), CLIENT_END_MS).unref();
    });
    client.on('close', () => {
      clientGone = true;
      upstream.destroy();
      this.sockets.delete(client);
      const left = (this.perAddress.get(who) ?? 1) - 1;
      if (left > 0) this.perAddress.set(who, left);
      else this.perAddress.delete(who);
    });
  }

  /** Set before the ROUTER closes: its connections going then are no refusals. */
  closing = false;

  /**
   * Stops listening, gives open connections up to `drainMs` to pass on what the closing ROUTER
   * still flushes (its linger), then closes them and removes the directory.
   */
  async close(drainMs = 0): Promise<void> {
    this.closing = true;
    this.server?.close();
    const deadline = Date.now() + drainMs;
    while (this.sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const s of this.sockets) s.destroy();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
