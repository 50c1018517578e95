import type { Kv } from './kv.ts';
import type { KeyNames } from './redis-keys.ts';

/** What a client has used, and the day it last did: `grant:<type>` or `scope:<scope>` → YYYY-MM-DD. */
export type ClientUsageRecord = Record<string, string>;

/**
 * Which grants and scopes each client actually uses, for `doctor` to name the ones it holds and
 * never uses (least privilege). One hash field per client, grant or scope; each process writes a
 * field at most once a day, so token issuance stays a Redis write away from nothing.
 */
export class ClientUsage {
  readonly #kv: Kv;
  readonly #keys: KeyNames;
  readonly #written = new Map<string, string>();

  constructor(kv: Kv, keys: KeyNames) {
    this.#kv = kv;
    this.#keys = keys;
  }

  /** Records that a token was issued to `clientId` through `grantType` with these scopes. */
  async record(clientId: string, grantType: string, scopes: string[], now = new Date()): Promise<void> {
    const day = now.toISOString().slice(0, 10);
    const writes: Promise<void>[] = [];
    for (const what of [`grant:${grantType}`, ...scopes.map((s) => `scope:${s}`)]) {
      const field = `${clientId}\0${what}`;
      if (this.#written.get(field) === day) continue;
      this.#written.set(field, day);
      writes.push(this.#kv.hashSet(this.#keys.clientUsage(), field, day));
    }
    await Promise.all(writes);
  }

  /** Every client's usage: client id → `grant:x` / `scope:y` → last day used. */
  async all(): Promise<Map<string, ClientUsageRecord>> {
    const usage = new Map<string, ClientUsageRecord>();
    for (const [field, day] of Object.entries(await this.#kv.hashGetAll(this.#keys.clientUsage()))) {
      const [clientId = '', what = ''] = field.split('\0');
      usage.set(clientId, { ...usage.get(clientId), [what]: day });
    }
    return usage;
  }
}
