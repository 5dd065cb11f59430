// fs-conditions.ts — real filesystem conditions for the upkeep tests: a directory whose entries
// cannot be removed, and a small tmpfs that fills up. Each returns an undo, or the reason it cannot
// be made here (the test then skips, saying why).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export type Condition = { undo(): void } | { skip: string };

const isRoot = () => process.getuid?.() === 0;

function run(cmd: string, args: string[]): { ok: boolean; err: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { ok: r.status === 0, err: (r.stderr || r.error?.message || '').trim() };
}

/** True when nothing can be created in `dir` (the same condition that stops removing its entries). */
function refusesWrites(dir: string): boolean {
  const probe = path.join(dir, '.probe');
  try {
    fs.writeFileSync(probe, '');
  } catch {
    return true;
  }
  fs.rmSync(probe, { force: true });
  return false;
}

/**
 * Makes the entries of `dir` unremovable. Root ignores permissions, so as root the directory is
 * made immutable (chattr +i: ext4, xfs, btrfs); otherwise its write bit is cleared.
 */
export function makeUnremovable(dir: string): Condition {
  if (isRoot()) {
    const on = run('chattr', ['+i', dir]);
    if (!on.ok) return { skip: `chattr +i ${dir} failed (${on.err}); the filesystem has no immutable attribute` };
    if (!refusesWrites(dir)) {
      run('chattr', ['-i', dir]);
      return { skip: `chattr +i did not make ${dir} immutable here` };
    }
    return { undo: () => void run('chattr', ['-i', dir]) };
  }
  fs.chmodSync(dir, 0o555);
  if (!refusesWrites(dir)) {
    fs.chmodSync(dir, 0o755);
    return { skip: `a read-only ${dir} is still writable for this user` };
  }
  return { undo: () => fs.chmodSync(dir, 0o755) };
}

/** Mounts a tmpfs of `kib` KiB on `dir` (created): a real disk that fills up. Needs root. */
export function mountSmallDisk(dir: string, kib: number): Condition {
  if (!isRoot()) return { skip: 'mounting a small tmpfs needs root' };
  fs.mkdirSync(dir, { recursive: true });
  const m = run('mount', ['-t', 'tmpfs', '-o', `size=${kib}k`, 'tmpfs', dir]);
  if (!m.ok) return { skip: `mount -t tmpfs failed (${m.err})` };
  return { undo: () => void run('umount', ['-l', dir]) };
}
