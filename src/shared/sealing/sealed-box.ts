import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { DecryptionError } from '../errors.ts';

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** The keys that protect data at rest (envelope encryption: they are wrapped by the store key). */
export interface DataKeys {
  encryption: Buffer;
  idHash: Buffer;
  cookie: Buffer;
}

export function generateDataKeys(): DataKeys {
  return { encryption: randomBytes(32), idHash: randomBytes(32), cookie: randomBytes(32) };
}

/** A short, stable, non-secret name for a key, so a ciphertext says which key sealed it. */
export function keyId(key: Buffer): string {
  return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), 'insurance-idp key id', 4)).toString(
    'base64url',
  );
}

/**
 * AES-256-GCM sealing for everything the store holds, and keyed hashes that turn secret identifiers
 * (token, code, session ids, emails) into key names. Each ciphertext is bound to the Redis key it
 * lives under (associated data), so values cannot be swapped between keys.
 */
export class SealedBox {
  readonly id: string;
  readonly #encryption: Buffer;
  readonly #idHash: Buffer | undefined;
  readonly #cookie: Buffer | undefined;

  constructor(keys: Pick<DataKeys, 'encryption'> & Partial<DataKeys>) {
    this.id = keyId(keys.encryption);
    this.#encryption = keys.encryption;
    this.#idHash = keys.idHash;
    this.#cookie = keys.cookie;
  }

  seal(plaintext: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#encryption, iv);
    cipher.setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `${VERSION}.${this.id}.${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')}`;
  }

  open(sealed: string, context: string): string {
    const [version, sealedBy, data] = sealed.split('.');
    if (version !== VERSION || sealedBy !== this.id || !data) throw new DecryptionError();
    const raw = Buffer.from(data, 'base64url');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#encryption, raw.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString(
        'utf8',
      );
    } catch {
      throw new DecryptionError();
    }
  }

  sealJson(value: unknown, context: string): string {
    return this.seal(JSON.stringify(value), context);
  }

  openJson<T>(sealed: string, context: string): T {
    return JSON.parse(this.open(sealed, context)) as T;
  }

  /** Which key sealed a value (the id part of the ciphertext). */
  static sealedBy(sealed: string): string | undefined {
    return sealed.split('.')[1];
  }

  /** A keyed hash of a secret identifier, safe to use in key names. */
  hashId(namespace: string, id: string): string {
    if (!this.#idHash) throw new Error('this box has no id-hash key');
    return createHmac('sha256', this.#idHash).update(`${namespace}\0${id}`).digest('base64url');
  }

  /** Cookie signing keys for oidc-provider, the same on every instance sharing the store. */
  cookieKeys(): string[] {
    if (!this.#cookie) throw new Error('this box has no cookie key');
    return [this.#cookie.toString('base64url')];
  }
}
