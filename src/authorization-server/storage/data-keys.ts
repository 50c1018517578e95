import type { StoreSecrets } from '../../config/secrets.ts';
import { ConfigError } from '../../shared/errors.ts';
import type { Kv } from './kv.ts';
import { type DataKeys, generateDataKeys, SealedBox } from './sealed-box.ts';

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
 * store key (STORE_KEY, the key-encryption key). The first process to start creates them; moving
 * the store key re-wraps them (STORE_KEY_PREVIOUS), so no record has to be rewritten and key names,
 * sessions and tokens survive the move.
 */
export async function loadDataKeys(kv: Kv, name: string, secrets: StoreSecrets): Promise<DataKeys> {
  const current = new SealedBox({ encryption: secrets.current });
  const previous = secrets.previous ? new SealedBox({ encryption: secrets.previous }) : undefined;
  for (let attempt = 0; attempt < 5; attempt++) {
    const wrapped = await kv.get(name);
    if (!wrapped) {
      const fresh = generateDataKeys();
      if (await kv.compareAndSet(name, undefined, current.sealJson(encode(fresh), name))) return fresh;
      continue;
    }
    const wrappedBy = SealedBox.sealedBy(wrapped);
    if (wrappedBy === current.id) return decode(current.openJson<WrappedDataKeys>(wrapped, name));
    if (previous && wrappedBy === previous.id) {
      const keys = decode(previous.openJson<WrappedDataKeys>(wrapped, name));
      if (await kv.compareAndSet(name, wrapped, current.sealJson(encode(keys), name))) return keys;
      continue;
    }
    throw new ConfigError(
      'STORE_KEY: it is not the key that protects this store (REDIS_PREFIX); while moving to a new key, set STORE_KEY_PREVIOUS to the old one',
    );
  }
  throw new Error('the data keys are changing too often to load them; try again');
}
