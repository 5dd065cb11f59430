// CURVE authentication of the control plane (--auth-key-file): the job runs with it; peers without
// the job's secret get nothing, not even a refusal they could read, and cannot break the job.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';

import { clientCurveOptions, deriveControlKeys, loadControlKeys, z85Encode } from '../../src/control/auth';
import { encodeMessage } from '../../src/control/wire';
import { freePort, jobArgs, startLauncher, tmp, waitFor, workerRecords } from '../launch/launch-harness';

function keyFile(secret: string, mode = 0o600): string {
  const file = path.join(tmp(), 'job.key');
  fs.writeFileSync(file, secret + '\n', { mode });
  fs.chmodSync(file, mode);
  return file;
}

/** True when a DEALER with these options gets any answer to a stale registration within waitMs. */
async function getsAnAnswer(port: number, options: object, waitMs = 1500): Promise<boolean> {
  // sendTimeout too: while a refused CURVE handshake is torn down and retried the socket may have no
  // pipe to queue on, and a send without a bound would wait for one forever.
  const d = new zmq.Dealer({ linger: 0, receiveTimeout: waitMs, sendTimeout: waitMs, ...options });
  d.connect(`tcp://127.0.0.1:${port}`);
  const register = encodeMessage({
    kind: 'register',
    body: {
      jobId: 'x',
      round: 0,
      rank: 0,
      host: 'intruder',
      nodeRank: 0,
      localRank: 0,
      pid: 1,
      device: 'cpu',
      endpoints: { tp: { ipc: '', tcp: '' }, dp: { ipc: '', tcp: '' } },
      configHash: '',
      buildHash: '',
    },
  });
  try {
    await d.send(register);
    await d.receive();
    return true;
  } catch {
    return false;
  } finally {
    d.close();
  }
}

describe('control-plane keys', () => {
  it('Z85 matches the RFC 32 test vector', () => {
    expect(z85Encode(Buffer.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]))).toBe('HelloWorld');
  });

  it('derives the same keys from the same secret on every node, different ones otherwise', () => {
    const a = deriveControlKeys(Buffer.from('a secret of the job, 32 bytes ok'));
    expect(deriveControlKeys(Buffer.from('a secret of the job, 32 bytes ok'))).toEqual(a);
    expect(deriveControlKeys(Buffer.from('another secret of the job, 32 b.')).serverPublic).not.toBe(a.serverPublic);
    expect(new Set(Object.values(a)).size).toBe(4);
    for (const k of Object.values(a)) expect(k).toHaveLength(40);
  });

  it('refuses a key file that is short, readable by everyone, or missing', () => {
    expect(() => loadControlKeys(keyFile('short'))).toThrow(/holds 5 bytes; make one with/);
    expect(() => loadControlKeys(keyFile('x'.repeat(40), 0o644))).toThrow(
      /open to every user of this host \(mode 644\).*chmod 600/,
    );
    expect(() => loadControlKeys('/no/such/key')).toThrow(expect.objectContaining({ code: 'ERR_AUTH_KEY' }));
  });
});

describe('an authenticated job', () => {
  it('runs, and answers nobody without the key', async () => {
    const secret = 'Zm9yIHRoZSB0ZXN0cyBvbmx5LCBub3QgYSByZWFsIGtleQ==';
    const file = keyFile(secret);
    const dir = tmp(),
      out = tmp();
    const port = await freePort();
    const l = startLauncher(jobArgs(dir, port, ['--nproc-per-node', '2', '--auth-key-file', file]), {
      FIXTURE_OUT_DIR: out,
      // Long enough that every probe below is answered (or not) while the job still runs, even on
      // a loaded machine.
      FIXTURE_STEPS: '400',
      FIXTURE_STEP_MS: '25',
    });
    await waitFor('the workers', () => workerRecords(out).size === 2);
    expect(workerRecords(out).get(1)!.env.PARATRAIN_AUTH_KEY_FILE).toBe(file);

    // No CURVE at all; CURVE with the coordinator's public key but another client key (ZAP says
    // no); CURVE with the job's client key but a wrong server key.
    const job = deriveControlKeys(Buffer.from(secret));
    const stranger = deriveControlKeys(Buffer.from('a stranger who guessed the protocol'));
    const answered = await Promise.all([
      getsAnAnswer(port, {}),
      getsAnAnswer(port, { ...clientCurveOptions(stranger), curveServerKey: job.serverPublic }),
      getsAnAnswer(port, { ...clientCurveOptions(job), curveServerKey: stranger.serverPublic }),
      // With the job's keys the same message is answered (and refused: it is not a worker of this job).
      getsAnAnswer(port, clientCurveOptions(job), 8000),
    ]);
    expect(answered).toEqual([false, false, false, true]);

    const r = await l.exited;
    expect(r.code, r.stderr).toBe(0);
    // Every refused peer (no CURVE, a wrong server key, a client key ZAP says no to) is logged,
    // once per address (the front's TCP peer, or the ROUTER's failed handshakes), although they
    // keep retrying; the rest only counted.
    expect(r.stdout).toMatch(/refused a control connection(: its CURVE handshake failed| from 127\.0\.0\.1)/);
    expect(r.stdout).toMatch(/does not hold this job's key/);
    expect(r.stdout).toMatch(/refused so far; each address is named once, then one line per 1000/);
    const lines = r.stdout.split('\n').filter((l) => l.includes('refused a control connection'));
    expect(lines.length).toBeLessThanOrEqual(5);
  });

  it('a node with another key never joins; its launcher says what to check', async () => {
    const port = await freePort();
    const dir = tmp();
    const args = (node: number, file: string) =>
      jobArgs(dir, port, [
        '--nnodes',
        '2',
        '--node-rank',
        String(node),
        '--auth-key-file',
        file,
        '--rendezvous-timeout',
        '2',
      ]);
    const n0 = startLauncher(args(0, keyFile('x'.repeat(32))));
    const n1 = startLauncher(args(1, keyFile('y'.repeat(32))));
    const [r0, r1] = await Promise.all([n0.exited, n1.exited]);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(/\[ERR_MASTER_UNREACHABLE\].*same --auth-key-file/);
    expect(r0.code).toBe(1);
    expect(r0.stderr).toMatch(/\[ERR_RENDEZVOUS_TIMEOUT\].*node\(s\) 1 never joined/);
  });
});
