/** Keys given on the command line: a secret key file (`--sign`), public keys inline or in files. */
import { readFile } from 'node:fs/promises';
import { LazyError } from '../errors.js';
import { parsePublicKey, parseSecretKey, type PublicKey, type SecretKey } from '../nix/signing.js';

/** Reads a secret key file as written by `nix-store --generate-binary-cache-key`. */
export async function loadSecretKey(file: string): Promise<SecretKey> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new LazyError('SUBST_KEY', `cannot read secret key file '${file}': ${(e as Error).message}`, { cause: e });
  }
  return parseSecretKey(text.trim());
}

/** `name:base64` as in Nix's trusted-public-keys, or the name of a file holding one or more. */
export async function loadPublicKeys(arg: string): Promise<PublicKey[]> {
  if (/^[^/:]+:[A-Za-z0-9+/]+={0,2}$/.test(arg.trim())) return [parsePublicKey(arg)];
  let text: string;
  try {
    text = await readFile(arg, 'utf8');
  } catch (e) {
    throw new LazyError('SUBST_KEY', `'${arg}' is neither a public key (name:base64) nor a readable key file`, { cause: e });
  }
  return text.split(/\s+/).filter((s) => s !== '').map((s) => parsePublicKey(s));
}
