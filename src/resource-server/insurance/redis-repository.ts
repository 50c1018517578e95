import type { RedisConnection } from '../../shared/redis.ts';
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
 * Every command touches one key (Redis Cluster works); the report is kept as counters, so it never
 * scans anyone's data. Ownership stays part of every lookup, as in the in-memory store.
 */
export function createRedisInsuranceRepository(redis: RedisConnection, prefix: string): InsuranceRepository {
  const keys = {
    policy: (id: string) => `${prefix}rs:policy:${id}`,
    holderPolicies: (holder: string) => `${prefix}rs:holder-policies:${encodeURIComponent(holder)}`,
    claims: (policyId: string) => `${prefix}rs:policy-claims:${policyId}`,
    report: () => `${prefix}rs:claims-report`,
  };

  /** Redis trouble is the service's, not the caller's: 503, never a 500 or a hang. */
  async function guarded<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof ApiError) throw error;
      throw new ApiError(503, 'temporarily_unavailable', 'the service is temporarily unavailable');
    }
  }

  const toPolicy = (stored: StoredPolicy): Policy => ({ ...stored, createdAt: new Date(stored.createdAt) });
  const toClaim = (stored: StoredClaim): Claim => ({ ...stored, createdAt: new Date(stored.createdAt) });

  async function ownPolicy(holder: string, policyId: string): Promise<Policy | undefined> {
    const json = await redis.get(keys.policy(policyId));
    if (!json) return undefined;
    const policy = toPolicy(JSON.parse(json) as StoredPolicy);
    return policy.holder === holder ? policy : undefined;
  }

  async function count(fields: Record<string, number>): Promise<void> {
    const tx = redis.multi();
    for (const [field, by] of Object.entries(fields)) tx.hincrby(keys.report(), field, by);
    await tx.exec();
  }

  return {
    createPolicy: (holder: string, input: NewPolicy) =>
      guarded(async () => {
        const policy = newPolicy(holder, input);
        await redis.set(keys.policy(policy.id), JSON.stringify(policy));
        await redis.sadd(keys.holderPolicies(holder), policy.id);
        await count({
          policies: 1,
          [`policies:product:${policy.product}`]: 1,
          [`policies:status:${policy.status}`]: 1,
        });
        return policy;
      }),

    listPolicies: (holder: string) =>
      guarded(async () => {
        const ids = await redis.smembers(keys.holderPolicies(holder));
        const found = await Promise.all(ids.map((id) => ownPolicy(holder, id)));
        return found
          .filter((p): p is Policy => p !== undefined)
          .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
      }),

    findPolicy: (holder: string, policyId: string) => guarded(() => ownPolicy(holder, policyId)),

    createClaim: (holder: string, policyId: string, input: NewClaim) =>
      guarded(async () => {
        const policy = await ownPolicy(holder, policyId);
        if (policy === undefined) return undefined;
        const claim = newClaim(policy, input);
        await redis.rpush(keys.claims(policy.id), JSON.stringify(claim));
        await count({
          claims: 1,
          'claims:amount': claim.amount,
          [`claims:product:${policy.product}:count`]: 1,
          [`claims:product:${policy.product}:amount`]: claim.amount,
          [`claims:status:${claim.status}`]: 1,
        });
        return claim;
      }),

    listClaims: (holder: string, policyId: string) =>
      guarded(async () => {
        const policy = await ownPolicy(holder, policyId);
        if (policy === undefined) return undefined;
        const stored = await redis.lrange(keys.claims(policy.id), 0, -1);
        return stored.map((json) => toClaim(JSON.parse(json) as StoredClaim));
      }),

    claimsReport: () =>
      guarded(async (): Promise<ClaimsReport> => {
        const counters = await redis.hgetall(keys.report());
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
