// Which TCP ports a running job opens, read from the kernel (/proc): a single-node job listens on
// loopback for its coordinator only — its workers' rings use ipc, with no TCP listener that
// nothing would connect to. Real launcher, real workers, real engine.
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';

import { runningWorkers, startLongJob, tmp } from './train-harness';

/** The TCP sockets process `pid` has in LISTEN state, as "address:port" (IPv4, hex from /proc/net/tcp). */
function listeningTcp(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const out: string[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!fs.existsSync(table)) continue;
    for (const line of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address rem_address st … inode: state 0A is LISTEN.
      if (f.length > 9 && f[3] === '0A' && inodes.has(f[9]!)) out.push(f[1]!);
    }
  }
  return out;
}

describe('listeners of a single-node job', () => {
  it.skipIf(process.platform !== 'linux')(
    'the workers listen on no TCP port; the launcher on loopback only',
    async () => {
      const dir = tmp();
      const job = await startLongJob(dir, []);
      try {
        const workers = await runningWorkers(job.proc.pid!, dir, 2);
        for (const pid of workers) expect(listeningTcp(pid), `worker ${pid}`).toEqual([]);
        const launcher = listeningTcp(job.proc.pid!);
        expect(launcher).toHaveLength(1);
        // 0100007F is 127.0.0.1 in /proc/net/tcp's byte order.
        expect(launcher[0]).toMatch(/^0100007F:/);
      } finally {
        job.proc.kill('SIGTERM');
      }
      const r = await job.exited;
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr + r.stdout).toMatch(/stopped at step \d+ on SIGTERM/);
    },
  );
});
