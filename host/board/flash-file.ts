/**
 * Persistent memory in a file, written like flash: the file keeps its size for good and every
 * write lands in place (pwrite at the block's offset) and is made durable (fsync) before `write`
 * returns. Never truncate-and-rewrite: a kill or power cut inside a write can at worst tear that
 * one block, which the firmware's A/B slots and CRCs survive (docs/abi.md, "Persisted layout").
 * One process at a time: `open` takes an exclusive lock on the file (host/board/file-lock.ts) that
 * `close` (or the process's end, a kill included) gives up; two devices on one image would reuse
 * (key, nonce) pairs on the wire.
 */
import fs from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { FileLockedError, lockFile, type FileLock } from './file-lock.ts';

/** A file that cannot serve as persistent memory; the message names the problem, not the flag. */
export class FlashFileError extends Error {
  /** Set when the file is locked by another live process. */
  holderPid?: number;
}

/** The two system calls a write makes (injectable so a test can see their order). */
export interface FlashIo {
  writeSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number;
  fsyncSync(fd: number): void;
}

export class FlashFile {
  private constructor(
    readonly path: string,
    private fd: number | null,
    /** The content when opened. */
    readonly initial: Uint8Array,
    /** True when this open created the file (erased). */
    readonly created: boolean,
    private readonly io: FlashIo,
    private readonly lock: FileLock,
  ) {}

  /**
   * Opens `path` for reading and writing; creates it erased (`sizeBytes` of `erasedByte`) when it
   * does not exist. Refuses, with FlashFileError, a missing folder, a directory, a file of another
   * size, one that cannot be read and written, or one that another live process holds open
   * (FlashFileError with `holderPid`).
   */
  static open(path: string, sizeBytes: number, erasedByte: number, io: FlashIo = fs): FlashFile {
    if (path === '') throw new FlashFileError('the file name is empty');
    const folder = dirname(path);
    const folderStat = statOrNull(folder);
    if (!folderStat) throw new FlashFileError(`its folder ${folder} does not exist`);
    if (!folderStat.isDirectory()) throw new FlashFileError(`${folder} is not a folder`);
    if (statOrNull(path)?.isDirectory()) throw new FlashFileError('is a directory, not a file');
    let lock: FileLock;
    try {
      lock = lockFile(path);
    } catch (e) {
      if (e instanceof FileLockedError) {
        throw Object.assign(new FlashFileError(`${e.message}; a flash image serves one device at a time (two would reuse nonces): stop that process or use another file`), { holderPid: e.holderPid });
      }
      throw new FlashFileError(`cannot be locked (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    try {
      return FlashFile.openLocked(path, sizeBytes, erasedByte, io, lock);
    } catch (e) {
      lock.release();
      throw e;
    }
  }

  private static openLocked(path: string, sizeBytes: number, erasedByte: number, io: FlashIo, lock: FileLock): FlashFile {
    let created = false;
    if (!statOrNull(path)) created = createErased(path, sizeBytes, erasedByte);
    const st = statOrNull(path)!;
    if (st.isDirectory()) throw new FlashFileError('is a directory, not a file');
    if (!st.isFile()) throw new FlashFileError('is not a regular file');
    if (st.size !== sizeBytes) {
      throw new FlashFileError(`is ${st.size} bytes; a flash image is exactly ${sizeBytes} bytes (not one this program wrote; move it away to start a new device)`);
    }
    let fd: number;
    try {
      fd = fs.openSync(path, 'r+');
    } catch (e) {
      throw new FlashFileError(`cannot be opened for reading and writing (${(e as NodeJS.ErrnoException).code})`);
    }
    const initial = new Uint8Array(sizeBytes);
    if (fs.readSync(fd, initial, 0, sizeBytes, 0) !== sizeBytes) {
      fs.closeSync(fd);
      throw new FlashFileError(`could not read ${sizeBytes} bytes`);
    }
    return new FlashFile(path, fd, initial, created, io, lock);
  }

  /** Writes `bytes` at `offset` in place and returns once they are durable. */
  write(offset: number, bytes: Uint8Array): void {
    if (this.fd === null) throw new Error(`flash file ${this.path} is closed`);
    for (let done = 0; done < bytes.length;) {
      done += this.io.writeSync(this.fd, bytes, done, bytes.length - done, offset + done);
    }
    this.io.fsyncSync(this.fd);
  }

  /** Closes the file and gives up its lock. */
  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
    this.lock.release();
  }
}

function statOrNull(path: string): fs.Stats | null {
  try {
    return fs.statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw new FlashFileError(`cannot be examined (${(e as NodeJS.ErrnoException).code})`);
  }
}

/**
 * Replaces `path` with `data` so that a crash leaves either the old or the new content: temp file,
 * fsync, rename, fsync of the folder (the rename itself durable).
 */
export function writeFileDurably(path: string, data: Uint8Array | string): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, path);
  fsyncFolder(dirname(path));
}

/** Creates the erased image durably; false when another process created `path` first. */
function createErased(path: string, sizeBytes: number, erasedByte: number): boolean {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeFileSync(fd, new Uint8Array(sizeBytes).fill(erasedByte));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    // link, not rename: never replaces a file that appeared meanwhile.
    try {
      fs.linkSync(tmp, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    fsyncFolder(dirname(path));
    return true;
  } catch (e) {
    if (e instanceof FlashFileError) throw e;
    throw new FlashFileError(`cannot be created (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

function fsyncFolder(folder: string): void {
  const fd = fs.openSync(folder, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
