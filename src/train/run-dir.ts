// run-dir.ts — the check a run directory (config run.dir) passes before anything is created in it:
// it must be, or be creatable as, a writable directory on a filesystem that holds files. Without
// it a file in the way gives a bare EEXIST, and a path under /proc makes Node's recursive mkdir spin
// forever (deaf to SIGTERM, the loop never yields).
import * as fs from 'node:fs';
import * as path from 'node:path';

export class RunDirError extends Error {
  readonly code = 'ERR_RUN_DIR';
}

/** Kernel pseudo-filesystems (statfs f_type): they hold no files of ours. */
const PSEUDO_FILESYSTEMS = new Map<number, string>([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x1cd1, 'devpts'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0xcafe4a11, 'bpf'],
  [0x6e736673, 'nsfs'],
]);

function errnoOf(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? 'error';
}

/**
 * Throws RunDirError (ERR_RUN_DIR, naming `dir` and what is wrong) unless `dir` is a writable
 * directory, or could be created as one: its nearest existing ancestor must be a directory, on a
 * real filesystem, writable by this process. Creates nothing.
 */
export function checkRunDir(dir: string): void {
  const abs = path.resolve(dir);
  const fail = (what: string) =>
    new RunDirError(`run.dir ${dir}: ${what}; set run.dir (--set run.dir=PATH) to a directory you can write`);
  let existing = abs;
  for (;;) {
    let st: fs.Stats;
    try {
      st = fs.statSync(existing);
    } catch (e) {
      const code = errnoOf(e);
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw fail(`cannot examine ${existing} (${code})`);
      const parent = path.dirname(existing);
      if (parent === existing) throw fail('no part of the path exists');
      existing = parent;
      continue;
    }
    if (!st.isDirectory())
      throw fail(existing === abs ? 'it is a file, not a directory' : `${existing} is a file, not a directory`);
    break;
  }
  let type: number | undefined;
  try {
    type = fs.statfsSync(existing).type;
  } catch {
    // statfs is not available everywhere; the write check below still applies
  }
  const pseudo = type !== undefined ? PSEUDO_FILESYSTEMS.get(type) : undefined;
  if (pseudo) throw fail(`${existing} is on ${pseudo}, a kernel pseudo-filesystem that cannot hold a run`);
  try {
    fs.accessSync(existing, fs.constants.W_OK);
  } catch (e) {
    const code = errnoOf(e);
    throw fail(`${existing} is not writable (${code === 'EROFS' ? 'a read-only filesystem' : code})`);
  }
}
