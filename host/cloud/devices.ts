/**
 * Device registry: device id → PSK identity and key, loaded from the `--devices` JSON file
 * (format in docs/protocol.md). Keys are held in `Secret` wrappers that print as "[redacted]" in
 * logs, JSON and util.inspect, and no error message ever contains one.
 */
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';

/** Key material that never prints. */
export class Secret {
  readonly #bytes: Buffer;
  constructor(bytes: Buffer) {
    this.#bytes = Buffer.from(bytes);
  }
  /** The key bytes; the only way out. */
  reveal(): Buffer {
    return this.#bytes;
  }
  get length(): number {
    return this.#bytes.length;
  }
  toString(): string {
    return '[redacted]';
  }
  toJSON(): string {
    return '[redacted]';
  }
  [inspect.custom](): string {
    return 'Secret([redacted])';
  }
}

export interface Device {
  id: string;
  identity: string;
  psk: Secret;
  /** 4-byte public handle: the client CID a device offers so that its sessions can be reset statelessly. */
  handle: Buffer;
}

export const HANDLE_BYTES = 4;
const ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;
const HEX_PATTERN = /^(?:[0-9a-fA-F]{2})+$/;
export const MIN_PSK_BYTES = 16;
export const MAX_PSK_BYTES = 64;
export const CLOUD_SECRET_BYTES = 32;

/** handle = SHA-256("sleepy-session handle" || device id)[:4]; the device computes it the same way. */
export function deviceHandle(deviceId: string): Buffer {
  return crypto.createHash('sha256').update('sleepy-session handle').update(deviceId, 'utf8').digest().subarray(0, HANDLE_BYTES);
}

export class DevicesError extends Error {}

export class DeviceRegistry {
  readonly #byIdentity = new Map<string, Device>();
  readonly #byId = new Map<string, Device>();
  readonly #byHandle = new Map<string, Device[]>();

  constructor(devices: Iterable<{ id: string; identity: string; psk: Buffer | Secret }>) {
    for (const d of devices) {
      const psk = d.psk instanceof Secret ? d.psk : new Secret(d.psk);
      const dev: Device = { id: d.id, identity: d.identity, psk, handle: deviceHandle(d.id) };
      if (this.#byId.has(d.id)) throw new DevicesError(`duplicate device id '${d.id}'`);
      if (this.#byIdentity.has(d.identity)) throw new DevicesError(`duplicate PSK identity '${d.identity}' (device '${d.id}')`);
      this.#byId.set(d.id, dev);
      this.#byIdentity.set(d.identity, dev);
      const h = dev.handle.toString('hex');
      const list = this.#byHandle.get(h);
      if (list) list.push(dev);
      else this.#byHandle.set(h, [dev]);
    }
  }

  get size(): number {
    return this.#byId.size;
  }

  byIdentity(identity: Buffer | string): Device | undefined {
    return this.#byIdentity.get(typeof identity === 'string' ? identity : identity.toString('utf8'));
  }

  byId(id: string): Device | undefined {
    return this.#byId.get(id);
  }

  /** Devices sharing a handle (usually one; collisions are possible and all are answered). */
  byHandle(handle: Buffer): Device[] {
    return this.#byHandle.get(handle.toString('hex')) ?? [];
  }

  [Symbol.iterator](): IterableIterator<Device> {
    return this.#byId.values();
  }

  toJSON(): unknown {
    return { devices: this.size };
  }
  [inspect.custom](): string {
    return `DeviceRegistry(${this.size} devices)`;
  }
}

export interface DevicesFile {
  registry: DeviceRegistry;
  /** The cloud secret from the file, if it has one. */
  cloudSecret?: Secret;
}

function hexField(value: unknown, what: string, min: number, max: number): Buffer {
  if (typeof value !== 'string' || !HEX_PATTERN.test(value)) throw new DevicesError(`${what} must be a hex string`);
  const b = Buffer.from(value, 'hex');
  if (b.length < min || b.length > max) throw new DevicesError(`${what} must be ${min}–${max} bytes (got ${b.length})`);
  return b;
}

/** Parses the devices JSON. Errors name the field and entry, never a key's value. */
export function parseDevicesJson(text: string, source = 'devices file'): DevicesFile {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new DevicesError(`${source}: not valid JSON (${(e as Error).message.replace(/ in JSON at.*$/, '')})`);
  }
  const root = Array.isArray(doc) ? { devices: doc } : doc;
  if (typeof root !== 'object' || root === null || !Array.isArray((root as { devices?: unknown }).devices)) {
    throw new DevicesError(`${source}: expected {"devices": [...]} or an array of devices`);
  }
  const r = root as { devices: unknown[]; cloudSecret?: unknown };
  const entries = r.devices.map((e, i) => {
    const where = `${source}: devices[${i}]`;
    if (typeof e !== 'object' || e === null) throw new DevicesError(`${where} must be an object`);
    const { id, identity, psk } = e as Record<string, unknown>;
    if (typeof id !== 'string' || !ID_PATTERN.test(id)) throw new DevicesError(`${where}.id must be 1–64 characters of A-Z a-z 0-9 . _ : -`);
    const ident = identity ?? id;
    if (typeof ident !== 'string' || ident.length === 0 || Buffer.byteLength(ident) > 128) {
      throw new DevicesError(`${where}.identity must be a non-empty string of at most 128 bytes`);
    }
    return { id, identity: ident, psk: new Secret(hexField(psk, `${where}.psk`, MIN_PSK_BYTES, MAX_PSK_BYTES)) };
  });
  let registry: DeviceRegistry;
  try {
    registry = new DeviceRegistry(entries);
  } catch (e) {
    throw new DevicesError(`${source}: ${(e as Error).message}`);
  }
  const out: DevicesFile = { registry };
  if (r.cloudSecret !== undefined) {
    out.cloudSecret = new Secret(hexField(r.cloudSecret, `${source}: cloudSecret`, CLOUD_SECRET_BYTES, 64));
  }
  return out;
}

export function loadDevicesFile(path: string): DevicesFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new DevicesError(`cannot read devices file '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseDevicesJson(text, path);
}
