import { compareAndSet, delay, type RedisConnection } from '../../shared/redis.ts';
import { type KeyEncryptionKeys, loadDataKeys, SealedBox } from '../../shared/sealing/index.ts';
import { ApiError } from '../api-errors.ts';
import {
  CLAIM_STATUSES,
  type Claim,
  type ClaimsReport,
  type InsuranceRepository,
  type NewClaim,
  type NewPolicy,
  newClaim,
  newPolicy,
  POLICY_STATUSES,
  type Policy,
  PRODUCTS,
} from './repository.ts';

interface StoredPolicy extends Omit<Policy, 'createdAt'> {
  createdAt: string;
}

interface StoredClaim extends Omit<Claim, 'createdAt'> {
  createdAt: string;
}

/**
 * Policies and claims in Redis, so they survive restarts and every instance sees the same data.
 * Every value is sealed (AES-256-GCM, bound to its key name) with data keys wrapped by the resource
 * server's own RS_STORE_KEY, and ids and holders appear in key names only as keyed hashes: a Redis
 * dump shows no description, amount, holder or id. Every command touches one key (Redis Cluster
 * works); the report is one sealed record of counters, so it never scans anyone's data. Ownership
 * stays part of every lookup, as in the in-memory store.
 */
export function createRedisInsuranceRepository(
  redis: RedisConnection,
  prefix: string,
  storeKey: KeyEncryptionKeys,
): InsuranceRepository & { open(): Promise<void> } {
  const dataKeysName = `${prefix}rs:data-keys`;
  let loading: Promise<SealedBox> | undefined;
  /** The data keys are loaded on first use (and retried after a failure), so the server starts without Redis. */
  function sealedBox(): Promise<SealedBox> {
    loading ??= loadDataKeys(
      {
        get: async (key) => (await redis.get(key)) ?? undefined,
        compareAndSet: (key, expected, value) => compareAndSet(redis, key, expected, value),
      },
      dataKeysName,
      storeKey,
      'RS_STORE_KEY',
    ).then(
      (keys) => new SealedBox(keys),
      (error: unknown) => {
        loading = undefined;
        throw error;
      },
    );
    return loading;
  }

  const keys = (box: SealedBox) => ({
    policy: (id: string) => `${prefix}rs:policy:${box.hashId('policy', id)}`,
    holderPolicies: (holder: string) => `${prefix}rs:holder-policies:${box.hashId('holder', holder)}`,
    claims: (policyId: string) => `${prefix}rs:policy-claims:${box.hashId('policy', policyId)}`,
    report: () => `${prefix}rs:claims-report`,
  });

  /** Redis trouble is the service's, not the caller's: 503, never a 500 or a hang. */
  async function guarded<T>(
    work: (box: SealedBox, names: ReturnType<typeof keys>) => Promise<T>,
  ): Promise<T> {
    try {
      const box = await sealedBox();
      return await work(box, keys(box));
    } catch (error) {
      if (error instanceof ApiError) throw error;
      throw new ApiError(503, 'temporarily_unavailable', 'the service is temporarily unavailable');
    }
  }

  const toPolicy = (stored: StoredPolicy): Policy => ({ ...stored, createdAt: new Date(stored.createdAt) });
  const toClaim = (stored: StoredClaim): Claim => ({ ...stored, createdAt: new Date(stored.createdAt) });

  async function ownPolicy(
    box: SealedBox,
    names: ReturnType<typeof keys>,
    holder: string,
    policyId: string,
  ): Promise<Policy | undefined> {
    const name = names.policy(policyId);
    const sealed = await redis.get(name);
    if (!sealed) return undefined;
    const policy = toPolicy(box.openJson<StoredPolicy>(sealed, name));
    return policy.holder === holder ? policy : undefined;
  }

  /**
   * The report's counters live in one sealed record (sums of amounts are data too), updated by
   * compare-and-set; one update at a time per process, so instances only race each other.
   */
  let reportUpdates: Promise<void> = Promise.resolve();
  async function addToReport(box: SealedBox, name: string, fields: Record<string, number>): Promise<void> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const sealed = (await redis.get(name)) ?? undefined;
      const counters = sealed ? box.openJson<Record<string, number>>(sealed, name) : {};
      for (const [field, by] of Object.entries(fields)) counters[field] = (counters[field] ?? 0) + by;
      if (await compareAndSet(redis, name, sealed, box.sealJson(counters, name))) return;
      await delay(Math.random() * 5 * (attempt + 1));
    }
    throw new Error('the claims report is too contended to update');
  }
  function count(box: SealedBox, name: string, fields: Record<string, number>): Promise<void> {
    const update = reportUpdates.catch(() => {}).then(() => addToReport(box, name, fields));
    reportUpdates = update;
    return update;
  }

  return {
    /** Loads the data keys now: a wrong RS_STORE_KEY is a ConfigError at start, not a 503 later. */
    open: async () => {
      await sealedBox();
    },

    createPolicy: (holder: string, input: NewPolicy) =>
      guarded(async (box, names) => {
        const policy = newPolicy(holder, input);
        const name = names.policy(policy.id);
        await redis.set(name, box.sealJson(policy, name));
        const index = names.holderPolicies(holder);
        await redis.sadd(index, box.seal(policy.id, index));
        await count(box, names.report(), {
          policies: 1,
          [`policies:product:${policy.product}`]: 1,
          [`policies:status:${policy.status}`]: 1,
        });
        return policy;
      }),

    listPolicies: (holder: string) =>
      guarded(async (box, names) => {
        const index = names.holderPolicies(holder);
        const ids = (await redis.smembers(index)).map((sealed) => box.open(sealed, index));
        const found = await Promise.all(ids.map((id) => ownPolicy(box, names, holder, id)));
        return found
          .filter((p): p is Policy => p !== undefined)
          .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
      }),

    findPolicy: (holder: string, policyId: string) =>
      guarded((box, names) => ownPolicy(box, names, holder, policyId)),

    createClaim: (holder: string, policyId: string, input: NewClaim) =>
      guarded(async (box, names) => {
        const policy = await ownPolicy(box, names, holder, policyId);
        if (policy === undefined) return undefined;
        const claim = newClaim(policy, input);
        const list = names.claims(policy.id);
        await redis.rpush(list, box.sealJson(claim, list));
        await count(box, names.report(), {
          claims: 1,
          'claims:amount': claim.amount,
          [`claims:product:${policy.product}:count`]: 1,
          [`claims:product:${policy.product}:amount`]: claim.amount,
          [`claims:status:${claim.status}`]: 1,
        });
        return claim;
      }),

    listClaims: (holder: string, policyId: string) =>
      guarded(async (box, names) => {
        const policy = await ownPolicy(box, names, holder, policyId);
        if (policy === undefined) return undefined;
        const list = names.claims(policy.id);
        const stored = await redis.lrange(list, 0, -1);
        return stored.map((sealed) => toClaim(box.openJson<StoredClaim>(sealed, list)));
      }),

    claimsReport: () =>
      guarded(async (box, names): Promise<ClaimsReport> => {
        const name = names.report();
        const sealed = await redis.get(name);
        const counters = sealed ? box.openJson<Record<string, number>>(sealed, name) : {};
        const n = (field: string) => Number(counters[field] ?? 0);
        const byKey = <K extends string>(values: readonly K[], field: (k: K) => string) =>
          Object.fromEntries(values.map((v) => [v, n(field(v))])) as Record<K, number>;
        return {
          policies: {
            total: n('policies'),
            byProduct: byKey(PRODUCTS, (p) => `policies:product:${p}`),
            byStatus: byKey(POLICY_STATUSES, (s) => `policies:status:${s}`),
          },
          claims: {
            total: n('claims'),
            totalAmount: n('claims:amount'),
            byProduct: Object.fromEntries(
              PRODUCTS.map((p) => [
                p,
                { count: n(`claims:product:${p}:count`), amount: n(`claims:product:${p}:amount`) },
              ]),
            ) as ClaimsReport['claims']['byProduct'],
            byStatus: byKey(CLAIM_STATUSES, (s) => `claims:status:${s}`),
          },
        };
      }),
  };
}
