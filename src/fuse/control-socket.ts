/**
 * The daemon's control socket: `<state>/run/<pid>.sock`, mode 0600 in a 0700 directory, one
 * JSON request line in, one JSON reply line out. `lazystore status` asks every live socket, so
 * several mounts of one state directory (a daemon and a `lazystore shell`) each answer.
 */
import { promises as fsp } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { LazyError } from '../errors.js';

export interface ControlRequest {
  op: 'status';
}

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

export function controlDir(stateDir: string): string {
  return join(stateDir, 'run');
}

export async function serveControl(
  stateDir: string,
  handle: (req: ControlRequest) => unknown,
  opts: { signal?: AbortSignal } = {},
): Promise<ControlServer> {
  opts.signal?.throwIfAborted();
  const dir = controlDir(stateDir);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  await fsp.chmod(dir, 0o700);
  const path = join(dir, `${process.pid}.sock`);
  await fsp.rm(path, { force: true });
  const server: Server = createServer((conn) => {
    let buf = '';
    conn.setEncoding('utf8');
    conn.on('error', () => conn.destroy());
    conn.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) {
        if (buf.length > 4096) conn.destroy();
        return;
      }
      let reply: unknown;
      try {
        reply = { ok: true, result: handle(JSON.parse(buf.slice(0, nl)) as ControlRequest) };
      } catch (e) {
        reply = { ok: false, error: e instanceof Error ? e.message : String(e) };
      }
      conn.end(JSON.stringify(reply) + '\n');
    });
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(path, () => res());
  });
  await fsp.chmod(path, 0o600);
  let closed: Promise<void> | undefined;
  return {
    path,
    close: () =>
      (closed ??= new Promise<void>((res) => server.close(() => res())).then(() => fsp.rm(path, { force: true }))),
  };
}

/** Sends `req` to one socket; rejects with MOUNT_CONTROL_DEAD when nobody listens. */
export function queryControl(path: string, req: ControlRequest, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const conn = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => conn.destroy(new Error('no answer')), opts.timeoutMs ?? 5000);
    const onAbort = () => conn.destroy(new Error('cancelled'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    conn.setEncoding('utf8');
    conn.on('connect', () => conn.write(JSON.stringify(req) + '\n'));
    conn.on('data', (c: string) => (buf += c));
    conn.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      const dead = e.code === 'ECONNREFUSED' || e.code === 'ENOENT';
      reject(new LazyError(dead ? 'MOUNT_CONTROL_DEAD' : 'MOUNT_CONTROL_FAILED', `${path}: ${e.message}`, { cause: e }));
    });
    conn.on('end', () => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      try {
        const reply = JSON.parse(buf) as { ok: boolean; result?: unknown; error?: string };
        if (reply.ok) resolve(reply.result);
        else reject(new LazyError('MOUNT_CONTROL_FAILED', `${path}: ${reply.error ?? 'failed'}`));
      } catch (e) {
        reject(new LazyError('MOUNT_CONTROL_FAILED', `${path}: bad reply`, { cause: e }));
      }
    });
  });
}

/** Status of every live daemon on `stateDir`; sockets of dead daemons are removed. */
export async function queryAllControls(stateDir: string, req: ControlRequest, opts: { signal?: AbortSignal } = {}): Promise<{ pid: number; result: unknown }[]> {
  const dir = controlDir(stateDir);
  let names: string[];
  try {
    names = (await fsp.readdir(dir)).filter((n) => n.endsWith('.sock'));
  } catch {
    return [];
  }
  const out: { pid: number; result: unknown }[] = [];
  for (const n of names.sort()) {
    const path = join(dir, n);
    try {
      out.push({ pid: Number(n.slice(0, -5)), result: await queryControl(path, req, opts) });
    } catch (e) {
      if (e instanceof LazyError && e.code === 'MOUNT_CONTROL_DEAD') await fsp.rm(path, { force: true });
      else throw e;
    }
  }
  return out;
}
