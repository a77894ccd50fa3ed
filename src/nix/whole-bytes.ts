/**
 * A byte stream already whole in memory (a small file read at once, a small decompressed NAR).
 * It iterates as one chunk like any source, and says what it is, so that a consumer can take
 * a synchronous path instead of pulling chunks through async generators — for the few-hundred-
 * byte NARs of most store paths, that machinery cost more than the work.
 */
export class WholeBytes implements AsyncIterable<Buffer> {
  constructor(readonly bytes: Buffer) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    yield this.bytes;
  }
}
