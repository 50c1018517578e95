import { ConfigError } from '../errors.ts';
import { type DataKeys, generateDataKeys, SealedBox } from './sealed-box.ts';

/** The two operations loading data keys needs; the AS's Kv and the RS's Redis both provide them. */
export interface DataKeyStore {
  get(key: string): Promise<string | undefined>;
  /** Sets the value only when the key holds `expected` (undefined: absent); true when it did. */
  compareAndSet(key: string, expected: string | undefined, value: string): Promise<boolean>;
}

/** The key-encryption key (e.g. STORE_KEY) and, while moving away from it, the previous one. */
export interface KeyEncryptionKeys {
  current: Buffer;
  previous?: Buffer;
}

interface WrappedDataKeys {
  encryption: string;
  idHash: string;
  cookie: string;
  created_at: string;
}

const decode = (w: WrappedDataKeys): DataKeys => ({
  encryption: Buffer.from(w.encryption, 'base64url'),
  idHash: Buffer.from(w.idHash, 'base64url'),
  cookie: Buffer.from(w.cookie, 'base64url'),
});

const encode = (keys: DataKeys): WrappedDataKeys => ({
  encryption: keys.encryption.toString('base64url'),
  idHash: keys.idHash.toString('base64url'),
  cookie: keys.cookie.toString('base64url'),
  created_at: new Date().toISOString(),
});

/**
 * Envelope encryption: data is sealed with random data keys that live in the store, wrapped by the
 * key-encryption key (STORE_KEY for the AS, RS_STORE_KEY for the resource server). The first process
 * to start creates them; moving the key-encryption key re-wraps them (`previous`), so no record has
 * to be rewritten and key names, sessions and tokens survive the move. `variable` names the setting
 * in errors.
 */
export async function loadDataKeys(
  store: DataKeyStore,
  name: string,
  secrets: KeyEncryptionKeys,
  variable = 'STORE_KEY',
): Promise<DataKeys> {
  const current = new SealedBox({ encryption: secrets.current });
  const previous = secrets.previous ? new SealedBox({ encryption: secrets.previous }) : undefined;
  for (let attempt = 0; attempt < 5; attempt++) {
    const wrapped = await store.get(name);
    if (!wrapped) {
      const fresh = generateDataKeys();
      if (await store.compareAndSet(name, undefined, current.sealJson(encode(fresh), name))) return fresh;
      continue;
    }
    const wrappedBy = SealedBox.sealedBy(wrapped);
    if (wrappedBy === current.id) return decode(current.openJson<WrappedDataKeys>(wrapped, name));
    if (previous && wrappedBy === previous.id) {
      const keys = decode(previous.openJson<WrappedDataKeys>(wrapped, name));
      if (await store.compareAndSet(name, wrapped, current.sealJson(encode(keys), name))) return keys;
      continue;
    }
    throw new ConfigError(
      `${variable}: it is not the key that protects this store (REDIS_PREFIX); while moving to a new key, set ${variable}_PREVIOUS to the old one`,
    );
  }
  throw new Error('the data keys are changing too often to load them; try again');
}
