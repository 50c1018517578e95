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

/** Where one key-encryption key comes from: its variable, its file, and whether it may be generated. */
export interface KeySource {
  /** The environment variable (STORE_KEY, RS_STORE_KEY); `${variable}_PREVIOUS` is the old one. */
  variable: string;
  value: string | undefined;
  previousValue: string | undefined;
  /** The file read when the variable is unset, generated once outside production. */
  file: string;
  production: boolean;
}

function decodeKey(name: string, value: string): Buffer {
  const key = Buffer.from(value.trim(), 'base64url');
  if (key.length !== 32) throw new ConfigError(`${name}: must be 32 random bytes, base64url-encoded`);
  return key;
}

/**
 * A key-encryption key comes from its variable, else from its file; outside production a missing file
 * is generated once (created exclusively, so a server and a CLI starting together agree on one key).
 */
export function loadKeyEncryptionKey(source: KeySource): StoreSecrets {
  const { variable, file } = source;
  const previous = source.previousValue ? decodeKey(`${variable}_PREVIOUS`, source.previousValue) : undefined;
  if (source.value) return { current: decodeKey(variable, source.value), previous, source: 'env' };

  const read = () => decodeKey(`${variable} (from ${file})`, readFileSync(file, 'utf8'));
  try {
    return { current: read(), previous, source: 'file' };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (source.production) throw new ConfigError(`${variable}: required when NODE_ENV=production`);
  mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
  try {
    writeFileSync(file, `${randomBytes(32).toString('base64url')}\n`, { flag: 'wx', mode: 0o600 });
    return { current: read(), previous, source: 'generated' };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return { current: read(), previous, source: 'file' };
  }
}

/** The authorization server's store key: STORE_KEY, else keys/store.key. */
export function loadStoreSecrets(config: Config): StoreSecrets {
  return loadKeyEncryptionKey({
    variable: 'STORE_KEY',
    value: config.storeKey,
    previousValue: config.storeKeyPrevious,
    file: join(config.keysDir, 'store.key'),
    production: config.production,
  });
}
