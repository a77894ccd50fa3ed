/**
 * Derivation shapes the fixtures lack, instantiated by real Nix into a throwaway chroot store:
 * inputs that are fixed-output (flat sha1, recursive sha512 and sha256), a multi-output input
 * used for two of its outputs, escapes, UTF-8 and raw non-UTF-8 bytes, control characters.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDerivation, serializeDerivation } from '../../src/nix/derivation.js';
import { DerivationHasher, drvStorePath } from '../../src/nix/derivation-hash.js';
import { derivationToJson, formatShowDerivation } from '../../src/nix/derivation-json.js';
import { makeDrvLoader } from '../../src/store/drv-loader.js';

const work = mkdtempSync(join(tmpdir(), 'lazystore-drv-nix-'));
const store = join(work, 'store');
const storeDir = join(store, 'nix', 'store');
let drvPaths: string[] = [];

const EXPR = Buffer.concat([
  Buffer.from(`let
  mk = attrs: derivation ({ system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo" ]; } // attrs);
  fodFlat = mk { name = "fod-sha1"; outputHashMode = "flat"; outputHashAlgo = "sha1"; outputHash = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"; };
  fodMd5 = mk { name = "fod-md5"; outputHashMode = "flat"; outputHashAlgo = "md5"; outputHash = "5d41402abc4b2a76b9719d911017c592"; };
  fodRec = mk { name = "fod-rec-sha512"; outputHashMode = "recursive"; outputHashAlgo = "sha512"; outputHash = "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="; };
  fodRec256 = mk { name = "fod-rec"; outputHashMode = "recursive"; outputHashAlgo = "sha256"; outputHash = "0wlpn0v7q15yni7gzf6h2brqadk9vzv99a2hw29l160ai09vrjbk"; };
  fodSame = mk { name = "fod-rec"; outputHashMode = "recursive"; outputHashAlgo = "sha256"; outputHash = "0wlpn0v7q15yni7gzf6h2brqadk9vzv99a2hw29l160ai09vrjbk"; args = [ "other" "builder" ]; };
  multi = mk { name = "multi"; outputs = [ "out" "dev" "doc" ]; };
  src = builtins.toFile "src.txt" "some source";
  weird = mk { name = "weird+name-1.0_beta?x=y"; s = "tab\\there\\r\\nquote\\" back\\\\slash \\\${x} é ü 日本"; ctl = "`),
  Buffer.from([0x01, 0x08, 0x0c, 0x1b, 0x7f]),
  Buffer.from(`"; bytes = "raw`),
  Buffer.from([0xff, 0xfe, 0x80]),
  Buffer.from(`end"; e = ""; args = [ ]; inherit src; };
  uses = mk { name = "uses"; a = fodFlat; b = "\${multi.dev}"; c = fodRec; d = weird; f = fodRec256; g = "\${multi.doc}"; h = fodMd5; };
  usesSame = mk { name = "uses-same"; a = fodRec256; b = fodSame; };
  top = mk { name = "top"; inherit uses usesSame; m = multi; };
in [ fodFlat fodMd5 fodRec fodRec256 fodSame multi weird uses usesSame top ]
`),
]);

beforeAll(() => {
  writeFileSync(join(work, 'exprs.nix'), EXPR);
  drvPaths = execFileSync('nix-instantiate', ['--store', store, join(work, 'exprs.nix')], { encoding: 'latin1', stdio: ['ignore', 'pipe', 'ignore'] })
    .trim()
    .split('\n');
});
afterAll(() => {
  execFileSync('chmod', ['-R', 'u+w', work]);
  rmSync(work, { recursive: true, force: true });
});

describe('derivations instantiated by real Nix', () => {
  it('round-trip, drv paths and output paths', async () => {
    expect(drvPaths).toHaveLength(10);
    const loader = makeDrvLoader([storeDir]);
    const hasher = new DerivationHasher(loader);
    for (const p of drvPaths) {
      const bytes = readFileSync(join(storeDir, p.slice('/nix/store/'.length)));
      const drv = parseDerivation(bytes, p);
      expect(serializeDerivation(drv).equals(bytes), p).toBe(true);
      expect(drvStorePath(drv)).toBe(p);
      const outs = await hasher.outputPaths(drv);
      expect(outs.size).toBe(drv.outputs.size);
      for (const [name, o] of drv.outputs) expect(outs.get(name), `${p}!${name}`).toBe(o.path);
    }
  });

  it('two fixed-output inputs with the same output path collapse to one key in hashModulo', async () => {
    const loader = makeDrvLoader([storeDir]);
    const usesSame = await loader(drvPaths.find((p) => p.includes('uses-same'))!);
    const inputs = await Promise.all([...usesSame.inputDrvs.keys()].map((p) => loader(p)));
    expect(inputs).toHaveLength(2);
    expect(inputs[0]!.outputs.get('out')!.path).toBe(inputs[1]!.outputs.get('out')!.path);
    const hasher = new DerivationHasher(loader);
    const keys = await Promise.all([...usesSame.inputDrvs.keys()].map(async (p) => [p, (await hasher.hashModulo(p)).toString('hex')] as const));
    expect(keys[0]![1]).toBe(keys[1]![1]);
    const text = serializeDerivation(usesSame, { replaceInputDrvs: new Map(keys) }).toString('latin1');
    expect(text).toContain(`[("${keys[0]![1]}",["out"])]`);
  });

  it('keeps raw bytes: the non-UTF-8 string comes back byte for byte', async () => {
    const weird = drvPaths.find((p) => p.includes('weird'))!;
    const drv = await makeDrvLoader([storeDir])(weird);
    expect(Buffer.from(drv.env.get('bytes')!, 'latin1')).toEqual(Buffer.from([0x72, 0x61, 0x77, 0xff, 0xfe, 0x80, 0x65, 0x6e, 0x64]));
    expect(Buffer.from(drv.env.get('s')!, 'latin1').toString('utf8')).toBe('tab\there\r\nquote" back\\slash ${x} é ü 日本');
  });

  it('formatShowDerivation prints exactly the bytes nix show-derivation prints', async () => {
    const loader = makeDrvLoader([storeDir]);
    for (const p of drvPaths) {
      const nixOut = execFileSync('nix', ['show-derivation', '--store', store, p]);
      const ours = formatShowDerivation([{ drvPath: p, drv: await loader(p) }]);
      expect(ours.toString('latin1'), p).toBe(nixOut.toString('latin1'));
      if (!p.includes('weird')) expect(derivationToJson(p, await loader(p))).toEqual(JSON.parse(nixOut.toString('utf8')));
    }
    const all = execFileSync('nix', ['show-derivation', '--store', store, ...drvPaths]);
    const items = await Promise.all(drvPaths.map(async (p) => ({ drvPath: p, drv: await loader(p) })));
    expect(formatShowDerivation(items).equals(all)).toBe(true);
  });
});
