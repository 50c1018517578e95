import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../shared/errors.ts';
import type { Config } from './config.ts';

export interface StoreSecrets {
  /** The store key: 32 bytes that every instance and the CLI share. */
  current: Buffer;
  /** The key being moved away from, only while the data keys are re-wrapped. */
  previous?: Buffer;
  /** Where the current key came from, for the start-up log (never the key itself). */
  source: 'env' | 'file' | 'generated';
}

function decodeKey(name: string, value: string): Buffer {
  const key = Buffer.from(value.trim(), 'base64url');
  if (key.length !== 32) throw new ConfigError(`${name}: must be 32 random bytes, base64url-encoded`);
  return key;
}

/**
 * The store key comes from STORE_KEY, else from keys/store.key; outside production a missing file is
 * generated once (created exclusively, so a server and a CLI starting together agree on one key).
 */
export function loadStoreSecrets(config: Config): StoreSecrets {
  const previous = config.storeKeyPrevious
    ? decodeKey('STORE_KEY_PREVIOUS', config.storeKeyPrevious)
    : undefined;
  if (config.storeKey) return { current: decodeKey('STORE_KEY', config.storeKey), previous, source: 'env' };

  const file = join(config.keysDir, 'store.key');
  const read = () => decodeKey(`STORE_KEY (from ${file})`, readFileSync(file, 'utf8'));
  try {
    return { current: read(), previous, source: 'file' };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (config.production) throw new ConfigError('STORE_KEY: required when NODE_ENV=production');
  mkdirSync(config.keysDir, { recursive: true, mode: 0o700 });
  try {
    writeFileSync(file, `${randomBytes(32).toString('base64url')}\n`, { flag: 'wx', mode: 0o600 });
    return { current: read(), previous, source: 'generated' };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return { current: read(), previous, source: 'file' };
  }
}
