import type { Adapter, AdapterPayload } from 'oidc-provider';
import { errors } from 'oidc-provider';
import { StoreUnavailableError } from '../../shared/errors.ts';
import type { SealedBox } from '../../shared/sealing/index.ts';
import type { Kv } from './kv.ts';
import type { KeyNames } from './redis-keys.ts';

/** Models whose records are single-use; a second consume is a replay (RFC 6749 §4.1.2, §10.4). */
const CONSUMABLE = new Set([
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

export interface AdapterDeps {
  kv: Kv;
  keys: KeyNames;
  box: SealedBox;
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
export function createAdapterClass({ kv, keys, box }: AdapterDeps) {
  return class KvAdapter implements Adapter {
    readonly name: string;

    constructor(name: string) {
      this.name = name;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const key = keys.model(this.name, id);
      await guarded(async () => {
        await kv.putRecord(key, box.sealJson(payload, key), expiresIn || undefined);
        const side: Promise<void>[] = [];
        if (payload.grantId) side.push(kv.addToSet(keys.grant(payload.grantId), key, expiresIn || undefined));
        if (payload.userCode) side.push(kv.set(keys.userCode(payload.userCode), key, expiresIn || undefined));
        if (payload.uid) side.push(kv.set(keys.sessionUid(payload.uid), key, expiresIn || undefined));
        await Promise.all(side);
      });
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      return this.#read(keys.model(this.name, id));
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

    async consume(id: string): Promise<void> {
      const key = keys.model(this.name, id);
      const result = await guarded(() => kv.consumeRecord(key, Math.floor(Date.now() / 1000)));
      if (result === 'already-consumed' && CONSUMABLE.has(this.name)) {
        // Lost a race with another instance redeeming the same code or refresh token: treat it as
        // the replay it is and revoke everything the grant issued.
        const payload = await this.#read(key);
        if (payload?.grantId) await this.revokeByGrantId(payload.grantId);
        throw new errors.InvalidGrant('grant request is invalid');
      }
    }

    async destroy(id: string): Promise<void> {
      await guarded(() => kv.del(keys.model(this.name, id)));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      const index = keys.grant(grantId);
      await guarded(async () => {
        const members = await kv.setMembers(index);
        // One command per key: members hash to different Cluster slots.
        await Promise.all(members.map((member) => kv.del(member)));
        await kv.del(index);
      });
    }

    async #read(key: string): Promise<AdapterPayload | undefined> {
      const record = await guarded(() => kv.getRecord(key));
      if (!record) return undefined;
      const payload = box.openJson<AdapterPayload>(record.sealed, key);
      return record.consumed === undefined ? payload : { ...payload, consumed: record.consumed };
    }
  };
}
