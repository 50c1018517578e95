import type { Kv, KvWrite } from './kv.ts';
import type { KeyNames } from './redis-keys.ts';

/** The oidc-provider models a JWT access token is recorded under. */
export const JWT_ACCESS_TOKEN_MODELS = ['AccessToken', 'ClientCredentials'] as const;
export type JwtAccessTokenModel = (typeof JWT_ACCESS_TOKEN_MODELS)[number];

/** How many records an emergency rotation deletes per round trip. */
const REVOKE_BATCH = 500;

/**
 * The registry of issued JWT access tokens, so that introspection, revocation and the admin API
 * can tell a live token from a revoked one. Each token's record is the provider's own model record
 * (written by its adapter, sealed) under a reference only this server can compute from the jti.
 * Each signing key has an index of the records it signed, ordered by expiry and trimmed as it
 * grows, so it holds live tokens only; an emergency rotation empties it in bounded batches.
 */
export class JwtTokenStore {
  readonly #kv: Kv;
  readonly #keys: KeyNames;
  readonly #batch: number;

  constructor(kv: Kv, keys: KeyNames, { revokeBatch = REVOKE_BATCH } = {}) {
    this.#kv = kv;
    this.#keys = keys;
    this.#batch = revokeBatch;
  }

  /** The id a token's record is stored under: a keyed hash of its jti. */
  reference(jti: string): string {
    return this.#keys.jwtReference(jti);
  }

  /**
   * The write noting that `kid` signed the token recorded as `model`/`reference`, until `expiresAt`
   * (epoch s): made together with the token's record (oidc-adapter.ts `upsertTogether`).
   */
  signedByWrite(kid: string, model: JwtAccessTokenModel, reference: string, expiresAt: number): KvWrite {
    return {
      op: 'indexByExpiry',
      key: this.#keys.signedBy(kid),
      member: this.#keys.model(model, reference),
      expiresAt,
    };
  }

  /**
   * Which grant's model holds the token's record while it is live (not expired, not revoked, its
   * grant not revoked); undefined once it is not.
   */
  async liveModel(jti: string): Promise<JwtAccessTokenModel | undefined> {
    const reference = this.reference(jti);
    const records = await Promise.all(
      JWT_ACCESS_TOKEN_MODELS.map((model) => this.#kv.getRecord(this.#keys.model(model, reference))),
    );
    return JWT_ACCESS_TOKEN_MODELS.find((_, i) => records[i] !== undefined);
  }

  /** Deletes the record of every token `kid` signed; returns how many records were removed. */
  async revokeSignedBy(kid: string): Promise<number> {
    const index = this.#keys.signedBy(kid);
    let removed = 0;
    for (;;) {
      const batch = await this.#kv.popFromExpiryIndex(index, this.#batch);
      if (batch.length === 0) return removed;
      // One command per record: records hash to different Cluster slots.
      await Promise.all(batch.map((record) => this.#kv.del(record)));
      removed += batch.length;
    }
  }

  /** How many tokens `kid`'s index holds (for tests and the bench). */
  async signedByCount(kid: string): Promise<number> {
    return this.#kv.expiryIndexSize(this.#keys.signedBy(kid));
  }
}
