import type { SealedBox } from '../../shared/sealing/index.ts';
import type { Kv } from './kv.ts';
import { resealRecordIfStale } from './lazy-reseal.ts';
import type { KeyNames } from './redis-keys.ts';

/** What a user approved for one client: OpenID scopes and claims, and scopes per API. */
export interface Approval {
  openid: string[];
  claims: string[];
  resources: Record<string, string[]>;
}

export interface ConsentRecord extends Approval {
  updated_at: string;
}

/** Remembered consent outlives a session (logout revokes grants), so it lasts this long. */
export const CONSENT_TTL_SECONDS = 180 * 24 * 3600;

/**
 * How long a removed client's consent index stays closed. It must outlast any consent being saved
 * while the client is removed (a few store round trips, each bounded by the command timeout), and
 * is short because an app registered again under the same id cannot have consent remembered until
 * it ends: its users are asked again meanwhile, which is the safe side.
 */
export const CLOSED_CONSENT_INDEX_SECONDS = 300;

/**
 * Consent remembered per account and client, sealed. Each client keeps an index of its consent
 * records, so removing the client removes them: a client registered again under the same id starts
 * from nothing (it may be someone else's app).
 */
export class ConsentStore {
  readonly #kv: Kv;
  readonly #keys: KeyNames;
  readonly #box: SealedBox;

  constructor(kv: Kv, keys: KeyNames, box: SealedBox) {
    this.#kv = kv;
    this.#keys = keys;
    this.#box = box;
  }

  async get(accountId: string, clientId: string): Promise<ConsentRecord | undefined> {
    const key = this.#keys.consent(accountId, clientId);
    const record = await this.#kv.getRecord(key);
    if (!record) return undefined;
    const consent = this.#box.openJson<ConsentRecord>(record.sealed, key);
    resealRecordIfStale(this.#kv, this.#box, key, record.sealed);
    return consent;
  }

  /**
   * Adds an approval to what the user approved for the client before. False when the client is
   * being (or was just) removed: nothing is remembered then.
   */
  async add(accountId: string, clientId: string, approval: Approval): Promise<boolean> {
    const before = await this.get(accountId, clientId);
    const resources: Record<string, string[]> = { ...before?.resources };
    for (const [indicator, scopes] of Object.entries(approval.resources)) {
      resources[indicator] = union(resources[indicator], scopes);
    }
    const record: ConsentRecord = {
      openid: union(before?.openid, approval.openid),
      claims: union(before?.claims, approval.claims),
      resources,
      updated_at: new Date().toISOString(),
    };
    const key = this.#keys.consent(accountId, clientId);
    const index = this.#keys.clientConsents(clientId);
    // Removing the client closes its index before deleting what it lists, so the removal wins at any
    // interleaving (Kv.putRecordInOpenSet).
    return this.#kv.putRecordInOpenSet(
      index,
      key,
      this.#box.sealJson(record, key),
      CONSENT_TTL_SECONDS,
      CONSENT_TTL_SECONDS,
    );
  }

  /** Forgets every user's consent for the client (the client is being removed). */
  async removeClient(clientId: string): Promise<void> {
    const members = await this.#kv.closeSet(
      this.#keys.clientConsents(clientId),
      CLOSED_CONSENT_INDEX_SECONDS,
    );
    // One command per key: the records hash to different Cluster slots.
    await Promise.all(members.map((key) => this.#kv.del(key)));
  }
}

function union(a: string[] | undefined, b: string[]): string[] {
  return [...new Set([...(a ?? []), ...b])].filter(Boolean);
}
