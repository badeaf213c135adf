/**
 * Device registry: device id → PSK identity and key and/or P-256 public key (ECDHE-ECDSA with raw
 * public keys), loaded from the `--devices` JSON file (format in docs/protocol.md) or registered
 * programmatically (`addPublicKeyDevice`, for the simulator). PSKs are held in `Secret` wrappers
 * that print as "[redacted]" in logs, JSON and util.inspect, and no error message ever contains
 * one. Public keys are not secret: a device registered by public key leaves no secret here.
 */
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { publicKeyOfPem, publicKeyOfPoint, type P256PublicKey } from './p256.ts';

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
  /** PSK identity (null for a device registered by public key only). */
  identity: string | null;
  /** Null for a device registered by public key only. */
  psk: Secret | null;
  /** The device's P-256 public key (raw public key, RFC 7250); null for a PSK-only device. */
  publicKey: P256PublicKey | null;
  /** 4-byte public handle: the client CID a device offers so that its sessions can be reset statelessly. */
  handle: Buffer;
}

/** What the registry is built from: a PSK (with its identity, default the id), a public key (65-byte uncompressed point), or both. */
export interface DeviceEntry {
  id: string;
  identity?: string;
  psk?: Buffer | Secret;
  publicKey?: Buffer | P256PublicKey;
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
  /** Hex of the 65-byte point → device. */
  readonly #byPublicKey = new Map<string, Device>();

  constructor(devices: Iterable<DeviceEntry>) {
    for (const d of devices) this.add(d);
  }

  /** Registers one device; throws DevicesError on a duplicate id, identity or key, or an invalid key. */
  add(d: DeviceEntry): Device {
    if (d.psk === undefined && d.publicKey === undefined) throw new DevicesError(`device '${d.id}' has neither a psk nor a publicKey`);
    const psk = d.psk === undefined ? null : d.psk instanceof Secret ? d.psk : new Secret(d.psk);
    let publicKey: P256PublicKey | null = null;
    if (d.publicKey !== undefined) {
      publicKey = Buffer.isBuffer(d.publicKey) ? publicKeyOfPoint(d.publicKey) : d.publicKey;
      if (!publicKey) throw new DevicesError(`device '${d.id}': publicKey is not a P-256 point (65 bytes, 04 || X || Y, on the curve)`);
    }
    const identity = psk ? (d.identity ?? d.id) : null;
    const dev: Device = { id: d.id, identity, psk, publicKey, handle: deviceHandle(d.id) };
    const keyHex = publicKey?.point.toString('hex');
    if (this.#byId.has(d.id)) throw new DevicesError(`duplicate device id '${d.id}'`);
    if (identity !== null && this.#byIdentity.has(identity)) throw new DevicesError(`duplicate PSK identity '${identity}' (device '${d.id}')`);
    if (keyHex !== undefined && this.#byPublicKey.has(keyHex)) throw new DevicesError(`duplicate publicKey (device '${d.id}' and '${this.#byPublicKey.get(keyHex)!.id}')`);
    this.#byId.set(d.id, dev);
    if (identity !== null) this.#byIdentity.set(identity, dev);
    if (keyHex !== undefined) this.#byPublicKey.set(keyHex, dev);
    const h = dev.handle.toString('hex');
    const list = this.#byHandle.get(h);
    if (list) list.push(dev);
    else this.#byHandle.set(h, [dev]);
    return dev;
  }

  /** Registers a device by its P-256 public key (65-byte uncompressed point); it has no PSK. */
  addPublicKeyDevice(id: string, publicKey: Buffer | Uint8Array): Device {
    return this.add({ id, publicKey: Buffer.from(publicKey) });
  }

  get size(): number {
    return this.#byId.size;
  }

  /** Devices registered by public key (the ECDHE-ECDSA suite is offered only when there is one). */
  get publicKeyDevices(): number {
    return this.#byPublicKey.size;
  }

  byIdentity(identity: Buffer | string): Device | undefined {
    return this.#byIdentity.get(typeof identity === 'string' ? identity : identity.toString('utf8'));
  }

  /** The device registered with this 65-byte point. */
  byPublicKey(point: Buffer): Device | undefined {
    return this.#byPublicKey.get(point.toString('hex'));
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

/** A public key: hex of the 65-byte uncompressed point, or a PEM SubjectPublicKeyInfo ("-----BEGIN PUBLIC KEY-----"). */
function publicKeyField(value: unknown, what: string): P256PublicKey {
  const allowed = 'hex of the 65-byte uncompressed P-256 point (04 || X || Y, 130 hex digits) or a PEM "-----BEGIN PUBLIC KEY-----" block';
  if (typeof value !== 'string') throw new DevicesError(`${what} must be ${allowed}`);
  const key = value.includes('-----BEGIN') ? publicKeyOfPem(value) : HEX_PATTERN.test(value) ? publicKeyOfPoint(Buffer.from(value, 'hex')) : null;
  if (!key) throw new DevicesError(`${what} is not a valid P-256 public key (on the curve); expected ${allowed}`);
  return key;
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
    const { id, identity, psk, publicKey } = e as Record<string, unknown>;
    if (typeof id !== 'string' || !ID_PATTERN.test(id)) throw new DevicesError(`${where}.id must be 1–64 characters of A-Z a-z 0-9 . _ : -`);
    if (psk === undefined && publicKey === undefined) throw new DevicesError(`${where} needs a psk (hex) or a publicKey (hex of the 65-byte point, or PEM), or both`);
    const entry: DeviceEntry = { id };
    if (psk !== undefined) {
      const ident = identity ?? id;
      if (typeof ident !== 'string' || ident.length === 0 || Buffer.byteLength(ident) > 128) {
        throw new DevicesError(`${where}.identity must be a non-empty string of at most 128 bytes`);
      }
      entry.identity = ident;
      entry.psk = new Secret(hexField(psk, `${where}.psk`, MIN_PSK_BYTES, MAX_PSK_BYTES));
    } else if (identity !== undefined) {
      throw new DevicesError(`${where}.identity is the PSK identity: it needs a psk`);
    }
    if (publicKey !== undefined) entry.publicKey = publicKeyField(publicKey, `${where}.publicKey`);
    return entry;
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
