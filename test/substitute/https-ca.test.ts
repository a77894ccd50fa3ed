/**
 * An https binary cache whose certificate only a private CA vouches for, through bin/lazystore
 * as users run it: with NODE_EXTRA_CA_CERTS naming the CA the copy works (the launcher hands the
 * file over as LAZYSTORE_EXTRA_CA_CERTS, and Node itself no longer sees the variable); without
 * it the certificate is refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize, resolve } from 'node:path';
import { execa } from 'execa';
import { FIXTURES, fixtureDrv } from '../helpers/fixtures.js';

const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/lazystore');
let tmp: string;
let server: Server;
let url: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'lazystore-https-'));
  const sh = (script: string) => execa('sh', ['-ec', script], { cwd: tmp });
  await sh(`
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=lazystore-test-ca -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout srv.key -out srv.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\\n' > ext.cnf
    openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out srv.pem 2>/dev/null
  `);
  const cache = join(FIXTURES, 'cache');
  server = createServer({ key: await readFile(join(tmp, 'srv.key')), cert: await readFile(join(tmp, 'srv.pem')) }, (req, res) => {
    const file = normalize(join(cache, decodeURIComponent(new URL(req.url ?? '/', 'https://x').pathname)));
    if (!file.startsWith(cache + '/')) return void res.writeHead(403).end();
    readFile(file).then(
      (body) => res.writeHead(200, { 'content-length': body.length }).end(body),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 60_000);

afterAll(async () => {
  server?.close();
  await rm(tmp, { recursive: true, force: true });
});

describe('https caches and extra CA certificates', () => {
  const path = () => fixtureDrv('single').outputs.out!.path;
  const copy = (state: string, env: Record<string, string | undefined>) =>
    execa(BIN, ['copy', '--state', join(tmp, state), '--from', url, '--no-check-sigs', path()], {
      env: { NODE_EXTRA_CA_CERTS: undefined, LAZYSTORE_EXTRA_CA_CERTS: undefined, ...env },
      reject: false,
    });

  it('trusts the CA named by NODE_EXTRA_CA_CERTS, which Node itself is not given', async () => {
    // A stand-in for node that records the environment it was started with.
    const seen = join(tmp, 'env.txt');
    const node = join(tmp, 'node-env');
    await writeFile(node, `#!/bin/sh\nenv > '${seen}'\nexec '${process.execPath}' "$@"\n`);
    await chmod(node, 0o755);
    const r = await copy('ok', { NODE_EXTRA_CA_CERTS: join(tmp, 'ca.pem'), LAZYSTORE_NODE: node });
    expect(r.stderr).toMatch(/copied 1 paths/);
    expect(r.exitCode).toBe(0);
    const env = await readFile(seen, 'utf8');
    expect(env).not.toMatch(/^NODE_EXTRA_CA_CERTS=/m);
    expect(env).toMatch(new RegExp(`^LAZYSTORE_EXTRA_CA_CERTS=${join(tmp, 'ca.pem')}$`, 'm'));
  });

  it('refuses the certificate without the CA', async () => {
    const r = await copy('refused', {});
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/certificate/i);
    // Refused at once: a certificate failure is not retried like a reset connection.
    expect(r.stderr).not.toMatch(/gave up after/);
  });
});
