/**
 * A derivation as `nix show-derivation` (Nix 2.8) prints it: `{ "<drv path>": { outputs,
 * inputSrcs, inputDrvs, system, builder, args, env } }`, keys in that order. Byte strings are
 * decoded as UTF-8 for the objects (invalid sequences become U+FFFD); `formatShowDerivation`
 * prints the exact bytes Nix 2.8 prints, raw non-UTF-8 bytes included.
 */
import type { Derivation } from './derivation.js';

export interface DerivationJsonOutput {
  path?: string;
  hashAlgo?: string;
  hash?: string;
}

export interface DerivationJson {
  outputs: Record<string, DerivationJsonOutput>;
  inputSrcs: string[];
  inputDrvs: Record<string, string[]>;
  system: string;
  builder: string;
  args: string[];
  env: Record<string, string>;
}

function text(s: string): string {
  // Byte strings: ASCII needs no decoding; anything else is UTF-8 as Nix's JSON writer sees it.
  // eslint-disable-next-line no-control-regex
  return /^[\u0000-\u007f]*$/.test(s) ? s : Buffer.from(s, 'latin1').toString('utf8');
}

function sortedEntries<T>(m: Map<string, T>): [string, T][] {
  return [...m].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** One entry of `nix show-derivation`'s output (the value under the drv path). */
export function derivationJsonEntry(drv: Derivation, outputPaths?: Map<string, string>): DerivationJson {
  // Object.fromEntries defines own properties, so a key like "__proto__" stays a key.
  const outputs: Record<string, DerivationJsonOutput> = Object.fromEntries(
    sortedEntries(drv.outputs).map(([name, o]) => {
      const entry: DerivationJsonOutput = {};
      const path = outputPaths?.get(name) ?? o.path;
      if (path !== '') entry.path = path;
      if (o.hashAlgo !== '') entry.hashAlgo = o.hashAlgo;
      if (o.hash !== '') entry.hash = o.hash;
      return [text(name), entry];
    }),
  );
  const inputDrvs: Record<string, string[]> = Object.fromEntries(
    sortedEntries(drv.inputDrvs).map(([p, outs]) => [p, [...outs].sort().map(text)]),
  );
  const env: Record<string, string> = Object.fromEntries(sortedEntries(drv.env).map(([k, v]) => [text(k), text(v)]));
  return {
    outputs,
    inputSrcs: [...drv.inputSrcs].sort(),
    inputDrvs,
    system: text(drv.platform),
    builder: text(drv.builder),
    args: drv.args.map(text),
    env,
  };
}

/**
 * `nix show-derivation`'s object for one derivation, keyed by `drvPath`. `outputPaths`, when
 * given, replaces the output paths stored in the ATerm (e.g. with computed ones).
 */
export function derivationToJson(drvPath: string, drv: Derivation, outputPaths?: Map<string, string>): Record<string, DerivationJson> {
  return Object.fromEntries([[drvPath, derivationJsonEntry(drv, outputPaths)]]) as Record<string, DerivationJson>;
}

/** Nix 2.8's JSON string escaping: `\" \\ \n \r \t`, other bytes < 0x20 as `\u00xx`, the rest raw. */
// eslint-disable-next-line no-control-regex
const JSON_ESCAPE = /["\\\u0000-\u001f]/;
// eslint-disable-next-line no-control-regex
const JSON_ESCAPE_ALL = /["\\\u0000-\u001f]/g;

function nixJsonString(byteString: string): string {
  if (!JSON_ESCAPE.test(byteString)) return '"' + byteString + '"';
  return '"' + byteString.replace(JSON_ESCAPE_ALL, (c) => {
    switch (c) {
      case '"':
        return '\\"';
      case '\\':
        return '\\\\';
      case '\n':
        return '\\n';
      case '\r':
        return '\\r';
      case '\t':
        return '\\t';
      default:
        return '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0');
    }
  }) + '"';
}

/** Objects as entry lists: keeps byte order for keys like `"1"` and `"__proto__"` that JS objects reorder or eat. */
type JsonValue = string | string[] | { entries: [string, JsonValue][] };

/** Pretty-prints like nlohmann::json::dump(2) as Nix uses it, over byte strings. */
function printJson(v: JsonValue, indent: string): string {
  if (typeof v === 'string') return nixJsonString(v);
  const inner = indent + '  ';
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return '[\n' + v.map((x) => inner + nixJsonString(x)).join(',\n') + '\n' + indent + ']';
  }
  if (v.entries.length === 0) return '{}';
  return '{\n' + v.entries.map(([k, x]) => `${inner}${nixJsonString(k)}: ${printJson(x, inner)}`).join(',\n') + '\n' + indent + '}';
}

/**
 * The bytes `nix show-derivation` (Nix 2.8) prints for these derivations: one object keyed by
 * drv path (sorted), 2-space indented, strings as raw bytes. `outputPaths` as in derivationToJson.
 */
export function formatShowDerivation(
  items: Iterable<{ drvPath: string; drv: Derivation; outputPaths?: Map<string, string> }>,
): Buffer {
  const sorted = [...items].sort((a, b) => (a.drvPath < b.drvPath ? -1 : a.drvPath > b.drvPath ? 1 : 0));
  const top: JsonValue = { entries: sorted.map(({ drvPath, drv, outputPaths }) => [drvPath, rawEntry(drv, outputPaths)]) };
  return Buffer.from(printJson(top, '') + '\n', 'latin1');
}

/** Like derivationJsonEntry but leaves byte strings undecoded. */
function rawEntry(drv: Derivation, outputPaths?: Map<string, string>): JsonValue {
  const outputs = sortedEntries(drv.outputs).map(([name, o]): [string, JsonValue] => {
    const entry: [string, JsonValue][] = [];
    const path = outputPaths?.get(name) ?? o.path;
    if (path !== '') entry.push(['path', path]);
    if (o.hashAlgo !== '') entry.push(['hashAlgo', o.hashAlgo]);
    if (o.hash !== '') entry.push(['hash', o.hash]);
    return [name, { entries: entry }];
  });
  const inputDrvs = sortedEntries(drv.inputDrvs).map(([p, outs]): [string, JsonValue] => [p, [...outs].sort()]);
  return {
    entries: [
      ['outputs', { entries: outputs }],
      ['inputSrcs', [...drv.inputSrcs].sort()],
      ['inputDrvs', { entries: inputDrvs }],
      ['system', drv.platform],
      ['builder', drv.builder],
      ['args', drv.args],
      ['env', { entries: sortedEntries(drv.env) }],
    ],
  };
}
