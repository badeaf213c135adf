/**
 * The real parts of the live replay: redis-server processes and `sleepy-session cloud` front ends
 * as child processes, on loopback ports, and a webhook receiver in this process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const CLOUD_CLI = fileURLToPath(new URL('../../cloud/cli.ts', import.meta.url));
/** Output kept per child for error messages (the cloud logs a line per handshake). */
const KEEP_OUTPUT_CHARS = 4000;

/**
 * Children still running. If this process ends without stopping them (Ctrl-C during a live run,
 * an uncaught error) they would outlive it holding ports: they get SIGKILL on the way out.
 */
const running = new Set<ChildProcess>();
const killRunning = (): void => {
  for (const c of running) c.kill('SIGKILL');
};
const onSignal = (signal: NodeJS.Signals): void => {
  killRunning();
  unhook();
  // No one else handles it: the default action (terminate), as if we had not been here.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
};
function hook(): void {
  if (running.size !== 1) return;
  process.on('exit', killRunning);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
function unhook(): void {
  process.off('exit', killRunning);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
}
function track(child: ChildProcess): void {
  running.add(child);
  hook();
  const forget = () => {
    if (running.delete(child) && running.size === 0) unhook();
  };
  child.once('exit', forget);
  child.once('error', forget);
}

/** A child process whose output is kept (the tail) and watched for a line. */
class Child {
  out = '';
  /** Set when the process could not be started (e.g. ENOENT: the program is not installed). */
  spawnError: NodeJS.ErrnoException | null = null;
  readonly exited: Promise<void>;
  constructor(
    readonly what: string,
    readonly child: ChildProcess,
  ) {
    const keep = (d: Buffer) => {
      this.out = (this.out + d.toString()).slice(-KEEP_OUTPUT_CHARS);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    track(child);
    this.exited = new Promise((resolve) => {
      child.once('exit', () => resolve());
      // A process that never started emits 'error' and maybe no 'exit'.
      child.once('error', (e: NodeJS.ErrnoException) => {
        this.spawnError = e;
        resolve();
      });
    });
  }
  get alive(): boolean {
    return this.spawnError === null && this.child.exitCode === null && this.child.signalCode === null;
  }
  /** Resolves with the first match of `re` in the output; fails if the process exits or `timeoutMs` passes. */
  async waitFor(re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(this.out);
      if (m) return m;
      if (this.spawnError) throw new Error(`${this.what}: cannot run it (${this.spawnError.code ?? this.spawnError.message})${this.spawnError.code === 'ENOENT' ? '; install it (Debian: apt-get install redis-server)' : ''}`);
      if (!this.alive) throw new Error(`${this.what} exited (${this.child.exitCode ?? this.child.signalCode}): ${this.out.slice(-1000)}`);
      if (Date.now() > end) throw new Error(`${this.what} did not start within ${timeoutMs} ms: ${this.out.slice(-1000)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  async stop(signal: NodeJS.Signals): Promise<void> {
    if (this.alive) this.child.kill(signal);
    await this.exited;
  }
}

/** A redis-server without persistence on a fixed loopback port: `crash()` is kill -9 and an empty restart. */
export class RedisServer {
  #proc: Child | null = null;
  constructor(
    readonly port: number,
    readonly command = 'redis-server',
  ) {}
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }
  get pid(): number | undefined {
    return this.#proc?.child.pid;
  }
  async start(): Promise<void> {
    const child = spawn(this.command, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#proc = new Child(`redis-server on port ${this.port}`, child);
    await this.#proc.waitFor(/Ready to accept connections/, 10_000);
  }
  /** SIGKILL, then a new process on the same port with nothing in it (no persistence). */
  async crash(): Promise<void> {
    await this.#proc?.stop('SIGKILL');
    await this.start();
  }
  async stop(): Promise<void> {
    await this.#proc?.stop('SIGKILL');
    this.#proc = null;
  }
}

/** `sleepy-session cloud` as a child process (node --import tsx host/cloud/cli.ts). */
export class CloudProcess {
  #proc: Child | null = null;
  constructor(
    readonly name: string,
    readonly args: string[],
  ) {}
  async start(extraArgs: string[] = []): Promise<void> {
    const child = spawn(process.execPath, ['--import', 'tsx', CLOUD_CLI, ...this.args, ...extraArgs], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    this.#proc = new Child(`cloud ${this.name}`, child);
    await this.#proc.waitFor(/cloud listening udp=\S+/, 30_000);
  }
  /** SIGTERM: the process closes its socket and leaves undelivered events in the log for the next one. */
  async stop(): Promise<void> {
    await this.#proc?.stop('SIGTERM');
    this.#proc = null;
  }
  get alive(): boolean {
    return this.#proc?.alive ?? false;
  }
  get output(): string {
    return this.#proc?.out ?? '';
  }
}

export interface WebhookDeliveryIn {
  key: string;
  deviceId: string;
  seq: number;
}

/** The customer's webhook receiver: answers 200 to every POST and hands each delivery to `onDelivery`. */
export async function startWebhookReceiver(onDelivery: (d: WebhookDeliveryIn) => void): Promise<{ url: string; rejected(): number; close(): Promise<void> }> {
  let rejected = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      let body: { id?: unknown; device?: unknown; seq?: unknown };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
      } catch {
        rejected++;
        res.writeHead(400).end('bad json');
        return;
      }
      const key = req.headers['idempotency-key'];
      if (typeof key !== 'string' || typeof body.device !== 'string' || typeof body.seq !== 'number' || body.id !== key) {
        rejected++;
        res.writeHead(400).end('missing idempotency-key, device or seq');
        return;
      }
      onDelivery({ key, deviceId: body.device, seq: body.seq });
      res.writeHead(200).end('ok');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    rejected: () => rejected,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
