import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatNarInfo, narInfoFingerprint, parseNarInfo } from '../../src/nix/narinfo.js';
import { parsePublicKey, parseSecretKey, parseSignature, signFingerprint, verifyFingerprint } from '../../src/nix/signing.js';
import { FIXTURES } from '../helpers/fixtures.js';
import { thrownCode } from '../helpers/rejection.js';

const work = mkdtempSync(join(tmpdir(), 'lazystore-signing-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const secretText = readFileSync(join(FIXTURES, 'keys', 'secret.key'), 'utf8');
const publicText = readFileSync(join(FIXTURES, 'keys', 'public.key'), 'utf8');

const codeOf = thrownCode;

describe('signing', () => {
  it('reproduces every signature real Nix wrote (ed25519 is deterministic)', () => {
    const sk = parseSecretKey(secretText);
    expect(sk.publicKey).toBe(publicText.trim());
    const dir = join(FIXTURES, 'cache-none-signed');
    const files = readdirSync(dir).filter((f) => f.endsWith('.narinfo'));
    expect(files.length).toBeGreaterThan(1000);
    for (const f of files) {
      const info = parseNarInfo(readFileSync(join(dir, f), 'utf8'), f);
      expect(signFingerprint(sk, narInfoFingerprint(info))).toBe(info.sigs[0]);
    }
  });

  it('real Nix accepts our signature with a key it generated, and refuses a tampered narinfo', () => {
    execFileSync('nix-store', ['--generate-binary-cache-key', 'lazystore-test-1', join(work, 'sk'), join(work, 'pk')]);
    const sk = parseSecretKey(readFileSync(join(work, 'sk'), 'utf8'));
    const pkText = readFileSync(join(work, 'pk'), 'utf8');
    expect(sk.publicKey).toBe(pkText.trim());
    const pk = parsePublicKey(pkText);

    const src = join(FIXTURES, 'cache-none-signed');
    const name = readdirSync(src).find((f) => f.endsWith('.narinfo'))!;
    const info = parseNarInfo(readFileSync(join(src, name), 'utf8'));
    const fp = narInfoFingerprint(info);
    const sig = signFingerprint(sk, fp);
    expect(verifyFingerprint([pk], fp, sig)).toBe(true);

    const verify = (text: string): number => {
      const cache = join(work, `cache-${Math.random().toString(36).slice(2)}`);
      mkdirSync(cache);
      copyFileSync(join(src, 'nix-cache-info'), join(cache, 'nix-cache-info'));
      writeFileSync(join(cache, name), text);
      const r = spawnSync('nix', ['store', 'verify', '--store', `file://${cache}`, '--no-contents', '--trusted-public-keys', pkText.trim(), info.storePath], {
        encoding: 'utf8',
      });
      return r.status ?? -1;
    };
    expect(verify(formatNarInfo({ ...info, sigs: [sig] }))).toBe(0);
    expect(verify(formatNarInfo({ ...info, narSize: info.narSize + 8, sigs: [sig] }))).not.toBe(0);
  });

  it('rejects malformed keys with SIG_BAD_KEY', () => {
    const sk = parseSecretKey(secretText);
    const seedAndPub = Buffer.from(secretText.trim().split(':')[1]!, 'base64');
    const cases = [
      'no-colon-here',
      ':AAAA',
      'k:not base64!',
      'k:AAA',
      `k:${Buffer.alloc(31).toString('base64')}`,
      `k:${Buffer.alloc(33).toString('base64')}`,
    ];
    for (const c of cases) expect(codeOf(() => parsePublicKey(c)), c).toBe('SIG_BAD_KEY');
    expect(codeOf(() => parseSecretKey(`k:${Buffer.alloc(32).toString('base64')}`))).toBe('SIG_BAD_KEY');
    const wrongPub = Buffer.concat([seedAndPub.subarray(0, 32), Buffer.alloc(32)]);
    expect(codeOf(() => parseSecretKey(`k:${wrongPub.toString('base64')}`))).toBe('SIG_BAD_KEY');
    expect(codeOf(() => parseSecretKey(publicText))).toBe('SIG_BAD_KEY');
    expect(sk.name).toBe('nixref-fixtures-1');
  });

  it('a malformed or foreign signature never verifies; parseSignature says why', () => {
    const sk = parseSecretKey(secretText);
    const pk = parsePublicKey(publicText);
    const sig = signFingerprint(sk, 'hello');
    expect(verifyFingerprint([pk], 'hello', sig)).toBe(true);
    expect(verifyFingerprint([pk], 'hello!', sig)).toBe(false);
    expect(verifyFingerprint([pk], 'hello', sig.replace(/^[^:]*/, 'other-key'))).toBe(false);
    for (const bad of ['', 'nocolon', `${pk.name}:`, `${pk.name}:AAAA`, `${pk.name}:%%%%`]) {
      expect(verifyFingerprint([pk], 'hello', bad)).toBe(false);
      expect(codeOf(() => parseSignature(bad))).toBe('SIG_BAD_SIGNATURE');
    }
  });
});
