/** What every `lazystore <command>` module exports. */
export interface Command {
  /** One line for `lazystore --help`. */
  summary: string;
  /** The full `lazystore <command> --help` text. */
  usage: string;
  /** Runs the command; resolves to the exit code. Throw LazyError for bad input. */
  run(argv: string[]): Promise<number>;
}
