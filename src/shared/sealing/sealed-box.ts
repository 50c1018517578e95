import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createSecretKey,
  hkdfSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { DecryptionError } from '../errors.ts';

/** `v1`: the plaintext as is. `z1`: the plaintext deflated with Z1_DICTIONARY, then sealed. */
const VERSION = 'v1';
const COMPRESSED = 'z1';
/**
 * The preset dictionary of `z1` values: the names and common values of oidc-provider's records, so
 * that even a short record compresses (a refresh token's 360 bytes of JSON become about 170). Never
 * change it: stored `z1` values need it to open; another dictionary would be another version.
 */
const Z1_DICTIONARY = Buffer.from(
  '{"iat":1,"exp":1,"accountId":"usr_","authTime":1,"expiresWithSession":true,"grantId":"","gty":"authorization_code refresh_token","rotations":0,"scope":"openid offline_access profile email","sessionUid":"","clientId":"","iiat":1,"kind":"RefreshToken","jti":"","acr":"urn:","amr":["pwd","otp"],"resource":"https://","nonce":"","sid":"","claims":{},"consumed":1,"loginTs":1,"accounts":{},"authorizations":{},"exp":1}',
);
/**
 * What each ciphertext is bound to: the key name it lives under and, from `z1` on, its version, so
 * a value cannot be passed off as another format (`v1` values keep the key name alone, as written).
 */
function associatedData(version: string, context: string): Buffer {
  return Buffer.from(version === VERSION ? context : `${version}\0${context}`);
}

/** A `z1` value is authenticated before it is inflated; this bounds it all the same. */
const MAX_INFLATED_BYTES = 1 << 20;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** The keys that protect data at rest (envelope encryption: they are wrapped by the store key). */
export interface DataKeys {
  /** The newest encryption key: it seals from `activeFrom` on. */
  encryption: Buffer;
  idHash: Buffer;
  cookie: Buffer;
  /**
   * Encryption keys rotated out, newest first: they still open what they sealed (every sealed value
   * names its key), and the first one keeps sealing until `activeFrom`.
   */
  previous?: Buffer[];
  /** Epoch ms from which `encryption` seals; until then every instance has had time to learn it. */
  activeFrom?: number;
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
 * lives under (associated data), so values cannot be swapped between keys, and names the data key
 * that sealed it, so the encryption key can rotate (random 96-bit nonces stay far from their
 * collision bound) while older values still open and are re-sealed as they are rewritten.
 */
export class SealedBox {
  #keys!: DataKeys;
  /**
   * The keys as KeyObjects, made once: node:crypto takes a Buffer key too, but then checks it on
   * every call by a path that throws and catches internally, which costs several times the HMAC
   * itself (measured on Node 24: 11 µs against 1.7 µs per keyed hash).
   */
  #idHash: KeyObject | undefined;
  /** Every encryption key this box can open with, by id. */
  #openers = new Map<string, KeyObject>();
  #newest!: { key: KeyObject; id: string };
  #before: { key: KeyObject; id: string } | undefined;

  constructor(keys: Pick<DataKeys, 'encryption'> & Partial<DataKeys>) {
    this.update(keys as DataKeys);
  }

  /** Takes newly loaded data keys (after a rotation); the id-hash and cookie keys never change. */
  update(keys: DataKeys): void {
    const openers = new Map<string, KeyObject>();
    for (const key of [keys.encryption, ...(keys.previous ?? [])])
      openers.set(keyId(key), createSecretKey(key));
    const before = keys.previous?.[0];
    this.#keys = keys;
    this.#idHash = keys.idHash ? createSecretKey(keys.idHash) : undefined;
    this.#openers = openers;
    this.#newest = { key: createSecretKey(keys.encryption), id: keyId(keys.encryption) };
    this.#before = before ? { key: createSecretKey(before), id: keyId(before) } : undefined;
  }

  /** The id of the key that seals now. */
  get id(): string {
    return this.#sealing().id;
  }

  /** The ids of every key that opens, the sealing key first. */
  get keyIds(): string[] {
    return [this.id, ...[...this.#openers.keys()].filter((id) => id !== this.id)];
  }

  #sealing(): { key: KeyObject; id: string } {
    const { activeFrom } = this.#keys;
    return this.#before !== undefined && activeFrom !== undefined && Date.now() < activeFrom
      ? this.#before
      : this.#newest;
  }

  /** True when `sealed` was sealed by another key than the one sealing now: rewrite it when convenient. */
  isStale(sealed: string): boolean {
    return SealedBox.sealedBy(sealed) !== this.id;
  }

  /** The same plaintext sealed again under the current key (compressed again if it was). */
  reseal(sealed: string, context: string): string {
    const plaintext = this.#openBytes(sealed, context);
    return this.#sealBytes(plaintext, context, sealed.startsWith(`${COMPRESSED}.`) ? COMPRESSED : VERSION);
  }

  seal(plaintext: string, context: string): string {
    return this.#sealBytes(Buffer.from(plaintext, 'utf8'), context, VERSION);
  }

  open(sealed: string, context: string): string {
    const bytes = this.#openBytes(sealed, context);
    if (!sealed.startsWith(`${COMPRESSED}.`)) return bytes.toString('utf8');
    try {
      return inflateRawSync(bytes, {
        dictionary: Z1_DICTIONARY,
        maxOutputLength: MAX_INFLATED_BYTES,
      }).toString('utf8');
    } catch {
      throw new DecryptionError();
    }
  }

  /**
   * `compress` deflates the JSON before sealing it (`z1`): for records kept long in great numbers
   * (sessions, refresh tokens), where memory counts more than the microseconds it costs. Only
   * records whose values an attacker cannot choose freely alongside a secret belong here: the
   * length of a compressed value says something about its content.
   */
  sealJson(value: unknown, context: string, { compress = false } = {}): string {
    const json = Buffer.from(JSON.stringify(value), 'utf8');
    return compress
      ? this.#sealBytes(deflateRawSync(json, { dictionary: Z1_DICTIONARY }), context, COMPRESSED)
      : this.#sealBytes(json, context, VERSION);
  }

  openJson<T>(sealed: string, context: string): T {
    return JSON.parse(this.open(sealed, context)) as T;
  }

  #sealBytes(plaintext: Buffer, context: string, version: string): string {
    const { key, id } = this.#sealing();
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(associatedData(version, context));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return `${version}.${id}.${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')}`;
  }

  #openBytes(sealed: string, context: string): Buffer {
    const [version, sealedBy, data] = sealed.split('.');
    const key = sealedBy === undefined ? undefined : this.#openers.get(sealedBy);
    if ((version !== VERSION && version !== COMPRESSED) || key === undefined || !data) {
      throw new DecryptionError();
    }
    const raw = Buffer.from(data, 'base64url');
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES));
      decipher.setAAD(associatedData(version, context));
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
    } catch {
      throw new DecryptionError();
    }
  }

  /** Which key sealed a value (the id part of the ciphertext). */
  static sealedBy(sealed: string): string | undefined {
    return sealed.split('.')[1];
  }

  /** A keyed hash of a secret identifier, safe to use in key names. */
  hashId(namespace: string, id: string): string {
    const idHash = this.#idHash;
    if (!idHash) throw new Error('this box has no id-hash key');
    return createHmac('sha256', idHash).update(`${namespace}\0${id}`).digest('base64url');
  }

  /** Cookie signing keys for oidc-provider, the same on every instance sharing the store. */
  cookieKeys(): string[] {
    const { cookie } = this.#keys;
    if (!cookie) throw new Error('this box has no cookie key');
    return [cookie.toString('base64url')];
  }
}
