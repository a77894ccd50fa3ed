/**
 * Derivations in Nix's ATerm form:
 *   Derive([outputs],[inputDrvs],[inputSrcs],"system","builder",[args],[env])
 * Parsed from bytes; every string comes back as a latin1 *byte string* (see ARCHITECTURE).
 *
 * The parser accepts only what Nix's own printer writes (escapes `\\ \" \n \r \t` only, no raw
 * CR/LF/TAB in strings, maps sorted and without duplicates, fixed-output hashes in hex), so
 * `serializeDerivation(parseDerivation(b))` is byte-identical to `b` and the hash of the
 * re-serialised form is the hash Nix computes. Anything else is rejected with a `DRV_*` code
 * and the byte offset (`details.offset`).
 */
import { LazyError } from '../errors.js';
import { HASH_SIZE, isHashAlgo } from './hash.js';
import { parseStorePath } from './store-path.js';

export interface DerivationOutput {
  /** The output's store path, `''` when deferred (content-addressed derivations). */
  path: string;
  /** `''` (input-addressed), `sha256`, `r:sha256`, `text:sha256`, … */
  hashAlgo: string;
  /** Hex digest of a fixed output, else `''`. */
  hash: string;
}

export interface Derivation {
  outputs: Map<string, DerivationOutput>;
  /** Input derivation path → the output names used, sorted. */
  inputDrvs: Map<string, string[]>;
  inputSrcs: string[];
  platform: string;
  builder: string;
  args: string[];
  env: Map<string, string>;
}

export interface SerializeOptions {
  /** Print these input derivations under another key (hashDerivationModulo uses hex hashes); re-sorted by the new key. */
  replaceInputDrvs?: Map<string, string>;
  /** Print every output path, and every env var named after an output, as `''`. */
  maskOutputs?: boolean;
}

/** `name` from the environment, which Nix uses as the derivation's name. */
export function derivationName(drv: Derivation): string {
  const name = drv.env.get('name');
  if (name === undefined) throw new LazyError('DRV_NO_NAME', 'derivation has no "name" environment variable');
  return name;
}

/** True when the derivation is fixed-output: exactly one output, `out`, with a hash. */
export function isFixedOutput(drv: Derivation): boolean {
  const out = drv.outputs.get('out');
  return drv.outputs.size === 1 && out !== undefined && out.hashAlgo !== '' && out.hash !== '';
}

// ---- parser -------------------------------------------------------------------------------

const Q = 0x22; // "
const BS = 0x5c; // \

class Reader {
  pos = 0;
  constructor(
    readonly buf: Buffer,
    readonly where: string | undefined,
  ) {}

  fail(code: string, msg: string, offset = this.pos): never {
    const prefix = this.where === undefined ? '' : `${this.where}: `;
    throw new LazyError(code, `${prefix}byte ${offset}: ${msg}`, { details: { offset, where: this.where } });
  }

  expect(lit: string): void {
    for (let i = 0; i < lit.length; i++) {
      if (this.buf[this.pos + i] !== lit.charCodeAt(i)) {
        const got = this.pos + i >= this.buf.length ? 'end of input' : `'${String.fromCharCode(this.buf[this.pos + i]!)}'`;
        this.fail('DRV_SYNTAX', `expected '${lit[i]}'${lit.length > 1 ? ` (of '${lit}')` : ''}, got ${got}`, this.pos + i);
      }
    }
    this.pos += lit.length;
  }

  peek(): number | undefined {
    return this.buf[this.pos];
  }

  string(): string {
    const start = this.pos;
    this.expect('"');
    const buf = this.buf;
    let i = this.pos;
    let runStart = i;
    let out = '';
    for (;;) {
      const c = buf[i];
      if (c === undefined) this.fail('DRV_SYNTAX', 'unterminated string', start);
      if (c === Q) break;
      if (c === BS) {
        const e = buf[i + 1];
        let ch: string;
        if (e === Q) ch = '"';
        else if (e === BS) ch = '\\';
        else if (e === 0x6e) ch = '\n';
        else if (e === 0x72) ch = '\r';
        else if (e === 0x74) ch = '\t';
        else if (e === undefined) this.fail('DRV_SYNTAX', 'unterminated string', start);
        else this.fail('DRV_BAD_ESCAPE', `escape '\\${String.fromCharCode(e)}' is not one Nix writes`, i);
        out += buf.toString('latin1', runStart, i) + ch;
        i += 2;
        runStart = i;
        continue;
      }
      if (c === 0x0a || c === 0x0d || c === 0x09) {
        this.fail('DRV_NOT_CANONICAL', `raw control character 0x${c.toString(16).padStart(2, '0')} in a string (Nix writes it escaped)`, i);
      }
      i++;
    }
    out += buf.toString('latin1', runStart, i);
    this.pos = i + 1;
    return out;
  }

  /** `[` item (`,` item)* `]`, calling `item` for each element. */
  list(item: () => void): void {
    this.expect('[');
    if (this.peek() === 0x5d) {
      this.pos++;
      return;
    }
    for (;;) {
      item();
      const c = this.peek();
      if (c === 0x2c) this.pos++;
      else if (c === 0x5d) {
        this.pos++;
        return;
      } else this.expect(']');
    }
  }

  storePath(what: string): string {
    const start = this.pos;
    const s = this.string();
    try {
      parseStorePath(s);
    } catch (e) {
      this.fail('DRV_BAD_PATH', `${what} '${s}' is not a valid store path: ${(e as Error).message}`, start);
    }
    return s;
  }
}

/** Checks that keys arrive strictly increasing (bytewise = latin1 code unit order). */
function sortedKey(r: Reader, prev: string | undefined, key: string, offset: number, what: string): void {
  if (prev === undefined) return;
  if (key === prev) r.fail('DRV_DUPLICATE', `${what} '${key}' appears twice`, offset);
  if (key < prev) r.fail('DRV_UNSORTED', `${what} '${key}' comes after '${prev}'`, offset);
}

function checkOutput(r: Reader, name: string, o: DerivationOutput, offset: number): void {
  if (o.path !== '') {
    try {
      parseStorePath(o.path);
    } catch (e) {
      r.fail('DRV_BAD_PATH', `output '${name}' path '${o.path}' is not a valid store path: ${(e as Error).message}`, offset);
    }
  }
  if (o.hashAlgo === '') {
    if (o.hash !== '') r.fail('DRV_BAD_OUTPUT', `output '${name}' has a hash but no hash algorithm`, offset);
    return;
  }
  const algo = o.hashAlgo.replace(/^(r:|text:)/, '');
  if (!isHashAlgo(algo)) r.fail('DRV_BAD_OUTPUT', `output '${name}' has unknown hash algorithm '${o.hashAlgo}'`, offset);
  if (o.hash !== '' && !(o.hash.length === HASH_SIZE[algo] * 2 && /^[0-9a-f]+$/.test(o.hash))) {
    r.fail('DRV_NOT_CANONICAL', `output '${name}' hash '${o.hash}' is not ${HASH_SIZE[algo] * 2} lowercase hex digits`, offset);
  }
}

/** Parses a `.drv` file's bytes. `where` (e.g. the file name) prefixes error messages. */
export function parseDerivation(bytes: Buffer, where?: string): Derivation {
  const r = new Reader(bytes, where);
  const drv: Derivation = {
    outputs: new Map(),
    inputDrvs: new Map(),
    inputSrcs: [],
    platform: '',
    builder: '',
    args: [],
    env: new Map(),
  };
  r.expect('Derive(');

  let prev: string | undefined;
  r.list(() => {
    const at = r.pos;
    r.expect('(');
    const name = r.string();
    sortedKey(r, prev, name, at, 'output');
    prev = name;
    if (name === '') r.fail('DRV_BAD_OUTPUT', 'output with an empty name', at);
    r.expect(',');
    const path = r.string();
    r.expect(',');
    const hashAlgo = r.string();
    r.expect(',');
    const hash = r.string();
    r.expect(')');
    const o = { path, hashAlgo, hash };
    checkOutput(r, name, o, at);
    drv.outputs.set(name, o);
  });
  if (drv.outputs.size === 0) r.fail('DRV_BAD_OUTPUT', 'derivation has no outputs');
  r.expect(',');

  prev = undefined;
  r.list(() => {
    const at = r.pos;
    r.expect('(');
    const path = r.storePath('input derivation');
    sortedKey(r, prev, path, at, 'input derivation');
    prev = path;
    r.expect(',');
    const outs: string[] = [];
    let prevOut: string | undefined;
    r.list(() => {
      const o = r.pos;
      const s = r.string();
      sortedKey(r, prevOut, s, o, `output of ${path}`);
      prevOut = s;
      outs.push(s);
    });
    r.expect(')');
    drv.inputDrvs.set(path, outs);
  });
  r.expect(',');

  prev = undefined;
  r.list(() => {
    const at = r.pos;
    const p = r.storePath('input source');
    sortedKey(r, prev, p, at, 'input source');
    prev = p;
    drv.inputSrcs.push(p);
  });
  r.expect(',');
  drv.platform = r.string();
  r.expect(',');
  drv.builder = r.string();
  r.expect(',');
  r.list(() => drv.args.push(r.string()));
  r.expect(',');

  prev = undefined;
  r.list(() => {
    const at = r.pos;
    r.expect('(');
    const k = r.string();
    sortedKey(r, prev, k, at, 'environment variable');
    prev = k;
    r.expect(',');
    drv.env.set(k, r.string());
    r.expect(')');
  });
  r.expect(')');
  if (r.pos !== bytes.length) r.fail('DRV_TRAILING', `${bytes.length - r.pos} bytes after the end of the derivation`);
  return drv;
}

// ---- printer ------------------------------------------------------------------------------

const NEEDS_ESCAPE = /["\\\n\r\t]/g;
const ESCAPES: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
// eslint-disable-next-line no-control-regex
const NOT_BYTES = /[^\u0000-\u00ff]/;

function str(s: string): string {
  if (NOT_BYTES.test(s)) {
    throw new LazyError('DRV_NOT_BYTE_STRING', `string '${s.slice(0, 40)}' has characters above U+00FF; pass byte strings (latin1)`);
  }
  return '"' + s.replace(NEEDS_ESCAPE, (c) => ESCAPES[c]!) + '"';
}

function byKey<T>(m: Map<string, T>): [string, T][] {
  return [...m].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** Prints the ATerm exactly as Nix does (maps sorted bytewise). */
export function serializeDerivation(drv: Derivation, opts: SerializeOptions = {}): Buffer {
  const mask = opts.maskOutputs === true;
  const parts: string[] = ['Derive(['];
  parts.push(
    byKey(drv.outputs)
      .map(([n, o]) => `(${str(n)},${str(mask ? '' : o.path)},${str(o.hashAlgo)},${str(o.hash)})`)
      .join(','),
  );
  parts.push('],[');
  const inputs = new Map<string, Set<string>>();
  for (const [p, outs] of drv.inputDrvs) {
    const key = opts.replaceInputDrvs?.get(p) ?? p;
    const set = inputs.get(key) ?? new Set<string>();
    for (const o of outs) set.add(o);
    inputs.set(key, set);
  }
  parts.push(
    byKey(inputs)
      .map(([k, outs]) => `(${str(k)},[${[...outs].sort().map(str).join(',')}])`)
      .join(','),
  );
  parts.push('],[', [...drv.inputSrcs].sort().map(str).join(','), '],');
  parts.push(str(drv.platform), ',', str(drv.builder), ',[', drv.args.map(str).join(','), '],[');
  parts.push(
    byKey(drv.env)
      .map(([k, v]) => `(${str(k)},${str(mask && drv.outputs.has(k) ? '' : v)})`)
      .join(','),
  );
  parts.push('])');
  return Buffer.from(parts.join(''), 'latin1');
}
