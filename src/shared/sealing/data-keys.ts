import { randomBytes } from 'node:crypto';
import { ConfigError } from '../errors.ts';
import { type DataKeys, generateDataKeys, keyId, SealedBox } from './sealed-box.ts';

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
  /** Encryption keys rotated out, newest first (absent before the first rotation). */
  previous?: string[];
  /** When `encryption` starts sealing (ISO time). */
  active_from?: string;
}

const decode = (w: WrappedDataKeys): DataKeys => ({
  encryption: Buffer.from(w.encryption, 'base64url'),
  idHash: Buffer.from(w.idHash, 'base64url'),
  cookie: Buffer.from(w.cookie, 'base64url'),
  ...(w.previous ? { previous: w.previous.map((k) => Buffer.from(k, 'base64url')) } : {}),
  ...(w.active_from ? { activeFrom: Date.parse(w.active_from) } : {}),
});

const encode = (keys: DataKeys): WrappedDataKeys => ({
  encryption: keys.encryption.toString('base64url'),
  idHash: keys.idHash.toString('base64url'),
  cookie: keys.cookie.toString('base64url'),
  created_at: new Date().toISOString(),
  ...(keys.previous?.length ? { previous: keys.previous.map((k) => k.toString('base64url')) } : {}),
  ...(keys.activeFrom !== undefined ? { active_from: new Date(keys.activeFrom).toISOString() } : {}),
});

/**
 * A rotated data key seals only after this long, so that every running instance (each re-reads the
 * data keys at least every 5 s) can open what it seals before anyone writes with it.
 */
export const DATA_KEY_ACTIVATION_DELAY_MS = 15_000;

export interface DataKeyRotation {
  /** The id of the new encryption key (the middle part of every value it seals). */
  kid: string;
  /** When it starts sealing, ISO time. */
  active_from: string;
  /** Ids of the keys that still open older values, newest first. */
  previous: string[];
}

/**
 * Makes a new encryption data key: it seals new writes from `activeFrom` on; older values stay
 * readable (their key is kept, named in each value) and are re-sealed as they are rewritten. The
 * id-hash and cookie keys are unchanged, so key names and sessions survive.
 */
export async function rotateDataKey(
  store: DataKeyStore,
  name: string,
  secrets: KeyEncryptionKeys,
  { activateAfterMs = DATA_KEY_ACTIVATION_DELAY_MS, variable = 'STORE_KEY' } = {},
): Promise<DataKeyRotation> {
  const current = new SealedBox({ encryption: secrets.current });
  for (let attempt = 0; attempt < 5; attempt++) {
    const wrapped = await store.get(name);
    if (!wrapped || SealedBox.sealedBy(wrapped) !== current.id) {
      // Load (or create, or re-wrap) first, through the one path that knows how.
      await loadDataKeys(store, name, secrets, variable);
      continue;
    }
    const keys = decode(current.openJson<WrappedDataKeys>(wrapped, name));
    const rotated: DataKeys = {
      ...keys,
      encryption: randomBytes(32),
      previous: [keys.encryption, ...(keys.previous ?? [])],
      activeFrom: Date.now() + activateAfterMs,
    };
    if (await store.compareAndSet(name, wrapped, current.sealJson(encode(rotated), name))) {
      return {
        kid: keyId(rotated.encryption),
        active_from: new Date(rotated.activeFrom as number).toISOString(),
        previous: (rotated.previous ?? []).map(keyId),
      };
    }
  }
  throw new Error('the data keys are changing too often to rotate them; try again');
}

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
