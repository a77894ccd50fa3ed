/**
 * A binary cache on 127.0.0.1 (node:http) serving Nix 2.8's signed fixture cache, with one
 * fault per store path on demand. Every narinfo it serves is re-signed with the fixture key,
 * so each fault is the only thing wrong: a corrupt NAR with a valid signature, a signed lie
 * about NarHash/NarSize, a bad or missing signature, a reset or stalled body, a NAR whose
 * hash and size are right but which holds a `..` entry.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatHash, hashOf } from '../../src/nix/hash.js';
import { formatNarInfo, narInfoFingerprint, parseNarInfo, type NarInfo } from '../../src/nix/narinfo.js';
import { parseSecretKey, signFingerprint } from '../../src/nix/signing.js';
import { FIXTURES } from '../helpers/fixtures.js';

export type Fault = 'ok' | 'flip' | 'truncate' | 'wrong-narhash' | 'wrong-narsize' | 'bad-sig' | 'no-sig' | 'reset' | 'traversal' | 'stall' | 'http-500';

const CACHE = join(FIXTURES, 'cache-none-signed');
const key = parseSecretKey(readFileSync(join(FIXTURES, 'keys/secret.key'), 'utf8').trim());
export const PUBLIC_KEY = key.publicKey;

/** A NAR of a directory with an entry named `..` (hand-encoded: the writer refuses it). */
function traversalNar(): Buffer {
  const str = (s: string): Buffer => {
    const b = Buffer.from(s);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(b.length));
    return Buffer.concat([len, b, Buffer.alloc((8 - (b.length % 8)) % 8)]);
  };
  const toks = ['nix-archive-1', '(', 'type', 'directory', 'entry', '(', 'name', '..', 'node', '(', 'type', 'regular', 'contents', 'pwned', ')', ')', ')'];
  return Buffer.concat(toks.map(str));
}

export interface HostileCache {
  url: string;
  faults: Map<string /* hash part */, Fault>;
  /** NAR requests seen, by hash part. */
  narRequests: Map<string, number>;
  /** Resolves when a stalled NAR body has sent its first half. */
  stalled(hashPart: string): Promise<void>;
  close(): Promise<void>;
}

export async function startHostileCache(): Promise<HostileCache> {
  const faults = new Map<string, Fault>();
  const narRequests = new Map<string, number>();
  const stallWaiters = new Map<string, () => void>();
  const open = new Set<ServerResponse>();

  function narinfoFor(hash: string): { info: NarInfo; nar: Buffer } | undefined {
    let text: string;
    try {
      text = readFileSync(join(CACHE, `${hash}.narinfo`), 'utf8');
    } catch {
      return undefined;
    }
    const info = parseNarInfo(text);
    let nar: Buffer = readFileSync(join(CACHE, info.url));
    const fault = faults.get(hash) ?? 'ok';
    if (fault === 'traversal') nar = traversalNar();
    info.url = `nar/${hash}.nar`;
    info.fileHash = undefined;
    info.fileSize = undefined;
    if (fault === 'traversal') {
      info.narHash = hashOf('sha256', nar);
      info.narSize = nar.length;
    }
    if (fault === 'wrong-narhash') info.narHash = hashOf('sha256', 'something else');
    if (fault === 'wrong-narsize') info.narSize += 8;
    info.sigs = fault === 'no-sig' ? [] : [signFingerprint(key, narInfoFingerprint(info))];
    if (fault === 'bad-sig') {
      // flip a bit well inside the signature (the last base64 digit before '==' is partly padding)
      const [name, b64] = info.sigs[0]!.split(':') as [string, string];
      const raw = Buffer.from(b64, 'base64');
      raw[10]! ^= 1;
      info.sigs = [`${name}:${raw.toString('base64')}`];
    }
    return { info, nar };
  }

  const server: Server = createServer((req, res) => {
    open.add(res);
    res.on('close', () => open.delete(res));
    const url = req.url ?? '/';
    if (url === '/nix-cache-info') return void res.end('StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n');
    const m = /^\/(?:nar\/)?([0-9a-z]{32})\.(narinfo|nar)$/.exec(url);
    const found = m ? narinfoFor(m[1]!) : undefined;
    if (!m || !found) return void res.writeHead(404).end();
    const hash = m[1]!;
    const fault = faults.get(hash) ?? 'ok';
    if (m[2] === 'narinfo') return void res.writeHead(200, { 'content-type': 'text/x-nix-narinfo' }).end(formatNarInfo(found.info));
    narRequests.set(hash, (narRequests.get(hash) ?? 0) + 1);
    const nar = found.nar;
    switch (fault) {
      case 'reset':
        res.writeHead(200, { 'content-length': nar.length });
        return void res.write(nar.subarray(0, 40), () => req.socket.destroy());
      case 'http-500':
        return void res.writeHead(500).end('boom');
      case 'stall':
        res.writeHead(200, { 'content-length': nar.length });
        return void res.write(nar.subarray(0, nar.length >> 1), () => stallWaiters.get(hash)?.());
      case 'flip': {
        const c = Buffer.from(nar);
        c[c.length - 20]! ^= 1;
        return void res.writeHead(200).end(c);
      }
      case 'truncate':
        return void res.writeHead(200).end(nar.subarray(0, nar.length - 16));
      default:
        return void res.writeHead(200).end(nar);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    faults,
    narRequests,
    stalled: (hash) => new Promise<void>((resolve) => stallWaiters.set(hash, resolve)),
    async close() {
      for (const r of open) r.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** The narinfo hash form the fixture cache uses, for messages. */
export function narHashOf(nar: Buffer): string {
  return formatHash(hashOf('sha256', nar));
}
