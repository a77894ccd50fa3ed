/**
 * Generator of the malformed-NAR corpus in test/corpus/nar/: each case is built token by token,
 * with the byte offset where the parser must stop and the NAR_* code it must give.
 * `REGEN_NAR_CORPUS=1 npx vitest run test/nix/nar-corpus.test.ts` rewrites the files.
 */
import { NarWriter } from '../../src/nix/nar-writer.js';

export interface CorpusCase {
  name: string;
  code: string;
  offset: number;
  bytes: Buffer;
}

/** Builds a NAR piece by piece and remembers offsets. */
class B {
  private parts: Buffer[] = [];
  len = 0;
  raw(b: Buffer): this {
    this.parts.push(b);
    this.len += b.length;
    return this;
  }
  s(...ss: (string | Buffer)[]): this {
    for (const x of ss) this.raw(NarWriter.str(x));
    return this;
  }
  u64(hi: number, lo: number): this {
    const b = Buffer.alloc(8);
    b.writeUInt32LE(lo, 0);
    b.writeUInt32LE(hi, 4);
    return this.raw(b);
  }
  file(contents: string, executable = false): this {
    this.raw(NarWriter.regular(executable, contents.length)).raw(Buffer.from(contents, 'latin1'));
    return this.raw(NarWriter.regularEnd(contents.length));
  }
  /** `entry ( name <n> node` — returns the offset of the name string via `at`. */
  entry(name: string | Buffer, at?: (o: number) => void): this {
    this.s('entry', '(', 'name');
    at?.(this.len);
    return this.s(typeof name === 'string' ? Buffer.from(name, 'latin1') : name, 'node');
  }
  get bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

const nar = (): B => new B().s('nix-archive-1');

export function narCorpusCases(): CorpusCase[] {
  const cases: CorpusCase[] = [];
  const add = (code: string, name: string, b: B, offset: number): void => void cases.push({ code, name, offset, bytes: b.bytes });

  add('NAR_TRUNCATED', 'empty', new B(), 0);
  add('NAR_BAD_MAGIC', 'wrong-version', new B().s('nix-archive-2', '(', 'type', 'regular', 'contents', ''), 0);
  add('NAR_BAD_MAGIC', 'tar-header', new B().raw(Buffer.from('ustar\0' + 'x'.repeat(200) + '\0'.repeat(306), 'latin1')), 0);

  let b = nar().s('(', 'type', 'regular', 'contents').u64(0, 100).raw(Buffer.from('short'));
  add('NAR_TRUNCATED', 'inside-contents', b, b.len);
  b = nar().s('(', 'type', 'directory').entry('a').file('x').s(')');
  add('NAR_TRUNCATED', 'unclosed-directory', b, b.len);
  b = nar().s('(', 'type', 'symlink', 'target').raw(Buffer.from([20, 0, 0, 0, 0, 0, 0, 0, 0x61]));
  add('NAR_TRUNCATED', 'inside-length-prefixed-string', b, b.len);

  b = nar().file('hello');
  const end = b.len;
  add('NAR_TRAILING', 'bytes-after-root', b.s('('), end);
  b = nar().s('(', 'type', 'directory', ')');
  const end2 = b.len;
  add('NAR_TRAILING', 'second-root-node', b.file('x'), end2);

  let at = 0;
  b = nar().s('(', 'type', 'directory').entry('b').file('1').s(')').entry('a', (o) => (at = o)).file('2').s(')', ')');
  add('NAR_UNSORTED', 'descending', b, at);
  // JS (UTF-16) order puts U+10000 before U+FFFF; bytewise (UTF-8 F0… vs EF…) it is after.
  b = nar()
    .s('(', 'type', 'directory')
    .entry(Buffer.from('\u{10000}'))
    .file('1')
    .s(')')
    .entry(Buffer.from('\uffff'), (o) => (at = o))
    .file('2')
    .s(')', ')');
  add('NAR_UNSORTED', 'utf16-order-not-bytewise', b, at);
  b = nar().s('(', 'type', 'directory').entry('B').file('').s(')').entry('a').file('').s(')').entry('A', (o) => (at = o)).file('').s(')', ')');
  add('NAR_UNSORTED', 'case-order', b, at);
  b = nar().s('(', 'type', 'directory').entry('same').file('1').s(')').entry('same', (o) => (at = o)).file('2').s(')', ')');
  add('NAR_DUPLICATE', 'same-name-twice', b, at);

  for (const [label, name] of [
    ['empty', ''],
    ['dot', '.'],
    ['dotdot', '..'],
    ['slash', 'a/b'],
    ['traversal', '../../etc/passwd'],
    ['nul', 'a\0b'],
  ] as const) {
    b = nar().s('(', 'type', 'directory').entry(name, (o) => (at = o)).file('pwned').s(')', ')');
    add('NAR_BAD_NAME', `name-${label}`, b, at);
  }

  b = nar().s('(', 'type', 'directory', 'entry', '(', 'name');
  at = b.len + 8 + 1;
  b.u64(0, 1).raw(Buffer.from([0x61, 1, 0, 0, 0, 0, 0, 0])).s('node').file('x').s(')', ')');
  add('NAR_BAD_PADDING', 'after-name', b, at);
  b = nar().s('(', 'type', 'regular', 'contents').u64(0, 3).raw(Buffer.from('abc'));
  at = b.len + 4;
  b.raw(Buffer.from([0, 0, 0, 0, 0xff])).s(')');
  add('NAR_BAD_PADDING', 'after-contents', b, at);

  b = nar().s('(', 'type');
  at = b.len;
  add('NAR_UNEXPECTED_TOKEN', 'unknown-type-fifo', b.s('fifo', ')'), at);
  b = nar().s('(', 'type', 'regular', 'executable');
  at = b.len;
  add('NAR_UNEXPECTED_TOKEN', 'executable-with-value', b.s('yes', 'contents').u64(0, 0).s(')'), at);
  b = nar().s('(', 'type', 'regular');
  at = b.len;
  add('NAR_UNEXPECTED_TOKEN', 'content-misspelt', b.s('content').u64(0, 0).s(')'), at);
  b = nar().s('(', 'type', 'symlink', 'target', 'x');
  at = b.len;
  add('NAR_UNEXPECTED_TOKEN', 'extra-token-in-symlink', b.s('mode', ')'), at);
  b = nar().s('(', 'type', 'directory');
  at = b.len;
  add('NAR_UNEXPECTED_TOKEN', 'entri', b.s('entri', '(', 'name', 'a', 'node').file('x').s(')', ')'), at);
  b = nar().s('(', 'type', 'directory').entry('a').file('x');
  at = b.len;
  add('NAR_UNEXPECTED_TOKEN', 'entry-not-closed', b.s('entry', ')'), at);
  b = nar();
  at = b.len;
  add('NAR_UNEXPECTED_TOKEN', 'no-open-paren', b.s('type', 'regular', 'contents', '', ')'), at);

  b = nar().s('(', 'type', 'directory', 'entry', '(', 'name');
  at = b.len;
  add('NAR_TOO_LONG', 'name-2^40-bytes', b.u64(0x100, 0).raw(Buffer.alloc(64)), at);
  b = nar().s('(', 'type', 'directory').entry('n'.repeat(256), (o) => (at = o)).file('x').s(')', ')');
  add('NAR_TOO_LONG', 'name-256-bytes', b, at);
  b = nar().s('(', 'type', 'regular', 'contents');
  at = b.len;
  add('NAR_TOO_LONG', 'contents-2^60-bytes', b.u64(0x10000000, 0).raw(Buffer.alloc(64)), at);
  b = nar().s('(');
  at = b.len;
  add('NAR_TOO_LONG', 'token-1000-bytes', b.s('t'.repeat(1000)), at);
  b = nar().s('(', 'type', 'symlink', 'target');
  at = b.len;
  add('NAR_TOO_LONG', 'target-5000-bytes', b.s('x'.repeat(5000), ')'), at);

  b = nar().s('(', 'type', 'symlink', 'target');
  at = b.len;
  add('NAR_BAD_TARGET', 'empty-target', b.s('', ')'), at);
  return cases;
}

export function corpusFileName(c: CorpusCase): string {
  return `${c.code}.${c.name}.nar`;
}
