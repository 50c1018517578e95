import type { Adapter, AdapterPayload } from 'oidc-provider';
import { errors } from 'oidc-provider';
import { StoreUnavailableError } from '../../shared/errors.ts';
import type { SealedBox } from '../../shared/sealing/index.ts';
import type { Kv, KvWrite, StoredRecord } from './kv.ts';
import type { KeyNames } from './redis-keys.ts';

/** Models whose records are single-use; a second consume is a replay (RFC 6749 §4.1.2, §10.4). */
const CONSUMABLE = new Set([
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

/**
 * Records kept long and in great numbers (a refresh token lives for weeks, with its grant and its
 * access tokens): sealed compressed, which costs microseconds per write and halves the length of
 * a refresh token's stored value. Client-credentials records (the machine-to-machine hot path, minutes long)
 * stay plain.
 */
const COMPRESSED_MODELS = new Set(['RefreshToken', 'Grant', 'AccessToken', 'AuthorizationCode']);

/**
 * How long a revoked grant's index stays closed: far longer than any request that could still be
 * saving a token of that grant.
 */
const CLOSED_GRANT_SECONDS = 3600;

export interface AdapterDeps {
  kv: Kv;
  keys: KeyNames;
  box: SealedBox;
  /** Clients are read through the client store, which keeps them cached (record-cache.ts). */
  findClient?: (id: string) => Promise<AdapterPayload | undefined>;
}

async function guarded<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof errors.OIDCProviderError || error instanceof StoreUnavailableError) throw error;
    throw new StoreUnavailableError(error);
  }
}

/**
 * oidc-provider's storage interface over the Kv store. Keys are keyed hashes of the ids, values
 * are AES-256-GCM sealed and bound to their key name.
 */
export function createAdapterClass({ kv, keys, box, findClient }: AdapterDeps) {
  return class KvAdapter implements Adapter {
    readonly name: string;

    constructor(name: string) {
      this.name = name;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const key = keys.model(this.name, id);
      const ttl = expiresIn || undefined;
      const grantIndex =
        payload.grantId && this.name !== 'Interaction' ? keys.grant(payload.grantId) : undefined;
      await guarded(async () => {
        // Revoking a grant closes its index first, so a token saved while (or after) its grant is
        // revoked is refused here, or deleted by the check after the write: the revocation always
        // wins, whatever the interleaving of two instances (a code replayed while the first
        // redemption is still saving its tokens, RFC 9700 §4.14).
        const sealed = this.#seal(id, payload, key);
        if (grantIndex) {
          if (!(await kv.putRecordInOpenSet(grantIndex, key, sealed, ttl, ttl))) throw grantRevoked();
        } else {
          await kv.putRecord(key, sealed, ttl);
        }
        const side: Promise<void>[] = [];
        if (payload.userCode) side.push(kv.set(keys.userCode(payload.userCode), key, ttl));
        if (payload.uid) side.push(kv.set(keys.sessionUid(payload.uid), key, ttl));
        await Promise.all(side);
      });
    }

    /**
     * `upsert`, and other writes made with it: a record that needs no grant index (a client-
     * credentials token's) goes in one script call with them; any other takes upsert's steps.
     * False when a `takeBelow` among them refused: then nothing was written.
     */
    async upsertTogether(
      id: string,
      payload: AdapterPayload,
      expiresIn: number,
      also: KvWrite[],
    ): Promise<boolean> {
      if ((payload.grantId && this.name !== 'Interaction') || payload.uid || payload.userCode) {
        // The record's own steps cannot join a take: take first, then write.
        if (also.length && !(await guarded(() => kv.writeTogether(also)))) return false;
        await this.upsert(id, payload, expiresIn);
        return true;
      }
      const key = keys.model(this.name, id);
      const record: KvWrite = {
        op: 'putRecord',
        key,
        sealed: this.#seal(id, payload, key),
        ttlSeconds: expiresIn || undefined,
      };
      return guarded(() => kv.writeTogether([record, ...also]));
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.name === 'Client' && findClient) return guarded(() => findClient(id));
      return this.#read(keys.model(this.name, id), id);
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      const key = await guarded(() => kv.get(keys.sessionUid(uid)));
      if (!key) return undefined;
      const payload = await this.#read(key);
      return payload?.uid === uid ? payload : undefined;
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      const key = await guarded(() => kv.get(keys.userCode(userCode)));
      if (!key) return undefined;
      const payload = await this.#read(key);
      return payload?.userCode === userCode ? payload : undefined;
    }

    /**
     * Marks the record consumed inside its sealed value (a marker beside it could be deleted to
     * make a spent token work again), swapped in atomically: of two concurrent redemptions exactly
     * one wins; the other is the replay it is and revokes the whole grant.
     */
    async consume(id: string): Promise<void> {
      const key = keys.model(this.name, id);
      await guarded(async () => {
        const record = await kv.getRecord(key);
        if (!record) return;
        const payload = this.#open(record, key, id);
        let replayed = payload.consumed !== undefined;
        if (!replayed) {
          const spent = this.#seal(id, { ...payload, consumed: Math.floor(Date.now() / 1000) }, key);
          replayed = (await kv.replaceRecord(key, record.sealed, spent)) === 'changed';
        }
        if (replayed && CONSUMABLE.has(this.name)) {
          if (payload.grantId) await this.revokeByGrantId(payload.grantId);
          throw new errors.InvalidGrant('grant request is invalid');
        }
      });
    }

    async destroy(id: string): Promise<void> {
      await guarded(() => kv.del(keys.model(this.name, id)));
    }

    /** Everything the grant issued, and the grant itself; its index stays closed for a while. */
    async revokeByGrantId(grantId: string): Promise<void> {
      await guarded(async () => {
        const members = await kv.closeSet(keys.grant(grantId), CLOSED_GRANT_SECONDS);
        // One command per key: members hash to different Cluster slots.
        await Promise.all([...members, keys.model('Grant', grantId)].map((member) => kv.del(member)));
      });
    }

    async #read(key: string, id?: string): Promise<AdapterPayload | undefined> {
      const record = await guarded(() => kv.getRecord(key));
      return record && this.#open(record, key, id);
    }

    /**
     * A record found by its id only (no uid, no user code) does not store the id again, nor its
     * model's name: both come back from the lookup (fewer bytes per token, and no token value
     * inside a compressed record).
     */
    #seal(id: string, payload: AdapterPayload, key: string): string {
      const { jti, kind, ...rest } = payload;
      const compact = jti === id && kind === this.name && !payload.uid && !payload.userCode;
      return compact
        ? box.sealJson(rest, key, { compress: COMPRESSED_MODELS.has(this.name) })
        : box.sealJson(payload, key);
    }

    #open(record: StoredRecord, key: string, id: string | undefined): AdapterPayload {
      const payload = box.openJson<AdapterPayload>(record.sealed, key);
      if (id !== undefined && payload.jti === undefined) Object.assign(payload, { jti: id, kind: this.name });
      return record.legacyConsumed === undefined || payload.consumed !== undefined
        ? payload
        : { ...payload, consumed: record.legacyConsumed };
    }
  };
}

function grantRevoked() {
  return new errors.InvalidGrant('the grant has been revoked');
}
