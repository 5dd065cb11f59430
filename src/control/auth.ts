// auth.ts — authentication of the job's sockets with ZeroMQ CURVE. Every process of a job holds
// the same per-job secret: the --auth-key-file shared by every node, or one the launcher of a
// single-node job makes for it. From it each process derives the coordinator's key pair and the one
// client key pair the job's agents and workers use, and a second pair of pairs for the data-plane
// rings. A peer without the secret cannot complete the CURVE handshake: it does not know the
// server's public key, and (on the control plane) the ZAP handler refuses any client key but the
// job's. Traffic is encrypted as a consequence. (PyTorch's TCPStore had no
// authentication and was used for remote code execution; we never execute what arrives either.)
import { createHash, createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as zmq from 'zeromq';

import { ControlError } from './errors';

/** CURVE keys in Z85 text, as ZeroMQ's socket options take them. */
export interface ControlKeys {
  serverPublic: string;
  serverSecret: string;
  clientPublic: string;
  clientSecret: string;
}

/** Fewer bytes than this is not a secret worth the name. */
const MIN_SECRET_BYTES = 16;

const Z85_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';

/** ZeroMQ's Z85 encoding (RFC 32) of a multiple of 4 bytes. */
export function z85Encode(bytes: Buffer): string {
  if (bytes.length % 4 !== 0) throw new Error(`Z85 encodes multiples of 4 bytes, got ${bytes.length}`);
  let out = '';
  for (let i = 0; i < bytes.length; i += 4) {
    let value = bytes.readUInt32BE(i);
    const chunk: string[] = [];
    for (let j = 0; j < 5; j++) {
      chunk.push(Z85_ALPHABET[value % 85]);
      value = Math.floor(value / 85);
    }
    out += chunk.reverse().join('');
  }
  return out;
}

// PKCS#8 DER header of a raw X25519 private key (RFC 8410); the 32 key bytes follow it.
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** A Curve25519 key pair (CURVE's) derived from the job's secret and a role label. */
function derivePair(secret: Buffer, role: string): { publicKey: string; secretKey: string } {
  const secretKey = createHash('sha256').update(`paratrain control ${role} key\0`).update(secret).digest();
  const key = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, secretKey]), format: 'der', type: 'pkcs8' });
  const publicKey = createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(-32);
  return { publicKey: z85Encode(publicKey), secretKey: z85Encode(secretKey) };
}

export function deriveControlKeys(secret: Buffer): ControlKeys {
  return deriveKeys(secret, 'coordinator', 'peer');
}

/**
 * The data-plane rings' keys: every ring socket a worker binds is a CURVE server with the first
 * pair, every socket it connects a client with the second. Other labels than the control plane's,
 * so a ring socket is not a way into the coordinator or the other way round.
 */
export function deriveDataPlaneKeys(secret: Buffer): ControlKeys {
  return deriveKeys(secret, 'data-plane ring', 'data-plane peer');
}

function deriveKeys(secret: Buffer, serverRole: string, clientRole: string): ControlKeys {
  const server = derivePair(secret, serverRole);
  const client = derivePair(secret, clientRole);
  return {
    serverPublic: server.publicKey,
    serverSecret: server.secretKey,
    clientPublic: client.publicKey,
    clientSecret: client.secretKey,
  };
}

/** A fresh per-job secret, as the launcher of a single-node job makes one. */
export function newJobSecret(): Buffer {
  return Buffer.from(randomBytes(32).toString('base64'), 'utf8');
}

/** Writes a secret where only this user can read it (the job's private ipc directory). */
export function writeJobSecret(file: string, secret: Buffer): void {
  fs.writeFileSync(file, secret, { mode: 0o600, flag: 'wx' });
}

export function loadControlKeys(file: string): ControlKeys {
  return deriveControlKeys(loadJobSecret(file));
}

/**
 * Reads the job's secret; refuses a missing or short file, and one that every user of the host can
 * read (group access is allowed: Kubernetes mounts secrets group-readable under fsGroup).
 */
export function loadJobSecret(file: string): Buffer {
  let stat: fs.Stats;
  let content: Buffer;
  try {
    stat = fs.statSync(file);
    content = fs.readFileSync(file);
  } catch (err) {
    throw new ControlError('ERR_AUTH_KEY', `cannot read the auth key file ${file}: ${(err as Error).message}`);
  }
  if (process.platform !== 'win32' && (stat.mode & 0o007) !== 0)
    throw new ControlError(
      'ERR_AUTH_KEY',
      `the auth key file ${file} is open to every user of this host (mode ${(stat.mode & 0o777).toString(8)}); ` +
        `run chmod 600 ${file}`,
    );
  const secret = Buffer.from(content.toString('utf8').trim(), 'utf8');
  if (secret.length < MIN_SECRET_BYTES)
    throw new ControlError(
      'ERR_AUTH_KEY',
      `the auth key file ${file} holds ${secret.length} bytes; make one with ` +
        `'head -c 32 /dev/urandom | base64 > ${file}; chmod 600 ${file}'`,
    );
  return secret;
}

/** Socket options of the coordinator's ROUTER (a CURVE server). */
export function serverCurveOptions(keys: ControlKeys) {
  return { curveServer: true, curvePublicKey: keys.serverPublic, curveSecretKey: keys.serverSecret };
}

/** Socket options of an agent's or worker's DEALER (a CURVE client of the coordinator). */
export function clientCurveOptions(keys: ControlKeys) {
  return { curveServerKey: keys.serverPublic, curvePublicKey: keys.clientPublic, curveSecretKey: keys.clientSecret };
}

/**
 * The ZAP handler (RFC 27): libzmq asks it about every CURVE handshake on this process's sockets.
 * Only the job's client key is let in. One per process (it binds a fixed inproc address).
 */
export class ZapHandler {
  private constructor(private readonly socket: zmq.Reply) {}

  static async start(keys: ControlKeys, onRefused: (address: string) => void): Promise<ZapHandler> {
    const socket = new zmq.Reply({ linger: 0 });
    await socket.bind('inproc://zeromq.zap.01');
    const handler = new ZapHandler(socket);
    void handler.serve(keys.clientPublic, onRefused);
    return handler;
  }

  private async serve(allowedClient: string, onRefused: (address: string) => void): Promise<void> {
    try {
      for await (const [version, requestId, , address, , mechanism, credentials] of this.socket) {
        const ok =
          mechanism?.toString() === 'CURVE' && credentials?.length === 32 && z85Encode(credentials) === allowedClient;
        if (!ok) onRefused(address?.toString() ?? '?');
        await this.socket.send([version, requestId, ok ? '200' : '400', ok ? 'OK' : 'not a key of this job', '', '']);
      }
    } catch {
      // closed
    }
  }

  close(): void {
    this.socket.close();
  }
}
