/**
 * An exclusive lock on a file for as long as this process holds it, without native code (Node has
 * no flock): two `device --flash FILE` processes on one FILE would both send under the session
 * keys it holds and reuse (key, nonce) pairs on the wire.
 *
 * The lock is a file beside the target, `FILE.lock.N`, created complete in one step (written to a
 * temporary file, then hard-linked to its name: link fails when the name exists, like O_EXCL) and
 * holding `pid starttime` of its owner. The owner is the file with the highest N:
 *  - acquiring: list the `FILE.lock.*` files; none → create N = 1; the highest one's owner alive →
 *    refused (FileLockedError names the pid); dead (kill -9, power cut), a pid reused by another
 *    process (its start time differs) or released ("free") → create N + 1. A creator then lists
 *    again: a higher N than its own means another process won the same race, and it retries.
 *    Only files below the winner's own N are ever deleted (by the winner), so the highest N only
 *    grows: two processes cannot both see themselves on top with the other alive, and a stale lock
 *    is taken over without ever removing a file someone may have just created.
 *  - releasing: the owner's file is atomically replaced by one saying "free" (kept as the top N).
 * A process killed at any point leaves at most a lock file naming a dead pid and a temporary file;
 * neither blocks the next start.
 */
import fs from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** The target is locked by another live process. */
export class FileLockedError extends Error {
  constructor(readonly lockPath: string, readonly holderPid: number) {
    super(`is in use by process ${holderPid} (lock ${lockPath})`);
  }
}

export interface FileLock {
  /** The lock file this process owns. */
  readonly path: string;
  /** Marks the lock free (idempotent). */
  release(): void;
}

/** Lock files this process owns, released at exit if nobody did before. */
const heldHere = new Set<string>();
process.once('exit', () => {
  for (const p of heldHere) releaseFile(p);
});

const FREE = 'free\n';

/**
 * Locks `target` (which need not exist; its folder must). The lock sits beside the file the path
 * resolves to, so two paths to one file (a symlink, `./`) share it. Throws FileLockedError when
 * another live process holds it.
 */
export function lockFile(target: string): FileLock {
  const real = fs.existsSync(target) ? fs.realpathSync(target) : join(fs.realpathSync(dirname(target)), basename(target));
  const folder = dirname(real);
  const base = basename(real);
  const me = `${process.pid} ${startTime(process.pid) ?? '-'}\n`;
  const tmp = join(folder, `.${base}.lock.${process.pid}.tmp`);
  fs.writeFileSync(tmp, me);
  try {
    for (let attempt = 0; attempt < 100; attempt++) {
      const top = topLock(folder, base);
      if (top) {
        const holder = ownerOf(top.path);
        if (holder !== null) throw new FileLockedError(top.path, holder);
      }
      const n = (top?.n ?? 0) + 1;
      const mine = join(folder, `${base}.lock.${n}`);
      try {
        fs.linkSync(tmp, mine);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue; // another process took n first
        throw e;
      }
      const after = topLock(folder, base);
      if (after && after.n > n) {
        fs.rmSync(mine, { force: true }); // lost the race to a higher N: judge its owner next round
        continue;
      }
      for (const old of lockFiles(folder, base)) if (old.n < n) fs.rmSync(old.path, { force: true });
      heldHere.add(mine);
      return { path: mine, release: () => { if (heldHere.delete(mine)) releaseFile(mine); } };
    }
    throw new Error(`could not take the lock on ${target} (100 attempts raced with other processes)`);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

function releaseFile(path: string): void {
  const tmp = `${path}.${process.pid}.free.tmp`;
  try {
    fs.writeFileSync(tmp, FREE);
    fs.renameSync(tmp, path);
  } catch {
    fs.rmSync(tmp, { force: true }); // the folder went away: nothing left to release
  }
}

function lockFiles(folder: string, base: string): { n: number; path: string }[] {
  const prefix = `${base}.lock.`;
  return fs.readdirSync(folder)
    .filter((f) => f.startsWith(prefix) && /^[1-9]\d{0,15}$/.test(f.slice(prefix.length)))
    .map((f) => ({ n: Number(f.slice(prefix.length)), path: join(folder, f) }));
}

function topLock(folder: string, base: string): { n: number; path: string } | null {
  return lockFiles(folder, base).reduce<{ n: number; path: string } | null>((a, b) => (a && a.n > b.n ? a : b), null);
}

/** The live process that owns this lock file, or null (free, dead, reused pid, unreadable content). */
function ownerOf(path: string): number | null {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null; // superseded meanwhile: the next round sees the new top
    throw e;
  }
  const m = /^(\d+) (\d+|-)\n$/.exec(text);
  if (!m) return null;
  const pid = Number(m[1]);
  if (pid === process.pid) return heldHere.has(path) ? pid : null;
  return alive(pid, m[2] === '-' ? null : m[2]) ? pid : null;
}

/** Whether `pid` runs, and is the process that started at `start` (Linux /proc; elsewhere the pid alone). */
function alive(pid: number, start: string | null): boolean {
  const stat = procStat(pid);
  if (stat === undefined) {
    try {
      process.kill(pid, 0);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
  if (stat === null) return false;
  if (stat.state === 'Z' || stat.state === 'X') return false; // killed, not yet reaped
  return start === null || stat.start === start;
}

/** Fields of /proc/PID/stat: null when no such process, undefined without /proc. */
function procStat(pid: number): { state: string; start: string } | null | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return undefined;
    return fs.existsSync('/proc/self/stat') ? null : undefined;
  }
  // "pid (comm) state ppid …": comm may hold spaces and parentheses; fields after the last ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: f[0], start: f[19] };
}

function startTime(pid: number): string | null {
  return procStat(pid)?.start ?? null;
}
