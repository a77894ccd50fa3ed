/** Where the embedded store keeps its state when no `--state DIR` is given. */
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * `$LAZYSTORE_STATE`, else `/var/lib/lazystore` as root, else `$XDG_DATA_HOME/lazystore`
 * (`~/.local/share/lazystore` when XDG_DATA_HOME is unset or not absolute, as the XDG spec says).
 */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env, uid: number | undefined = process.getuid?.()): string {
  const explicit = env.LAZYSTORE_STATE;
  if (explicit !== undefined && explicit !== '') return explicit;
  if (uid === 0) return '/var/lib/lazystore';
  const xdg = env.XDG_DATA_HOME;
  const dataHome = xdg !== undefined && xdg.startsWith('/') ? xdg : join(env.HOME ?? homedir(), '.local', 'share');
  return join(dataHome, 'lazystore');
}
