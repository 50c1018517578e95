import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import type { StoreSecrets } from '../../config/secrets.ts';
import { DecryptionError } from '../../shared/errors.ts';

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

function derive(master: Buffer, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), `insurance-idp ${purpose}`, 32));
}

interface KeySet {
  id: string;
  encryption: Buffer;
}

/**
 * Encryption at rest for everything the store holds (AES-256-GCM), and keyed hashes that turn
 * secret identifiers (token, code, session ids) into key names. Each ciphertext is bound to the
 * Redis key it lives under (associated data), so values cannot be swapped between keys.
 */
export class SealedBox {
  readonly #write: KeySet;
  readonly #read: Map<string, KeySet>;
  readonly #idKey: Buffer;
  readonly #cookieKey: Buffer;

  constructor(secrets: StoreSecrets) {
    const keySet = (master: Buffer): KeySet => ({
      id: derive(master, 'key id').subarray(0, 4).toString('base64url'),
      encryption: derive(master, 'encryption'),
    });
    this.#write = keySet(secrets.current);
    this.#read = new Map([[this.#write.id, this.#write]]);
    if (secrets.previous) {
      const old = keySet(secrets.previous);
      this.#read.set(old.id, old);
    }
    // Id hashes and cookies stay with the current key: moving the store key re-keys them.
    this.#idKey = derive(secrets.current, 'id hash');
    this.#cookieKey = derive(secrets.current, 'cookie signing');
  }

  seal(plaintext: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#write.encryption, iv);
    cipher.setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `${VERSION}.${this.#write.id}.${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')}`;
  }

  open(sealed: string, context: string): string {
    const [version, keyId, data] = sealed.split('.');
    const keys = keyId ? this.#read.get(keyId) : undefined;
    if (version !== VERSION || !keys || !data) throw new DecryptionError();
    const raw = Buffer.from(data, 'base64url');
    try {
      const decipher = createDecipheriv('aes-256-gcm', keys.encryption, raw.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString(
        'utf8',
      );
    } catch {
      throw new DecryptionError();
    }
  }

  /** True when this value was sealed under an older store key and should be written again. */
  isStale(sealed: string): boolean {
    return sealed.split('.')[1] !== this.#write.id;
  }

  sealJson(value: unknown, context: string): string {
    return this.seal(JSON.stringify(value), context);
  }

  openJson<T>(sealed: string, context: string): T {
    return JSON.parse(this.open(sealed, context)) as T;
  }

  /** A keyed hash of a secret identifier, safe to use in key names. */
  hashId(namespace: string, id: string): string {
    return createHmac('sha256', this.#idKey).update(`${namespace}\0${id}`).digest('base64url');
  }

  /** Cookie signing keys for oidc-provider, the same on every instance sharing the store key. */
  cookieKeys(): string[] {
    return [this.#cookieKey.toString('base64url')];
  }
}
