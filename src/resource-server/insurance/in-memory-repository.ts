import {
  CLAIM_STATUSES,
  type Claim,
  type ClaimStatus,
  type ClaimsReport,
  type InsuranceRepository,
  type NewClaim,
  type NewPolicy,
  newClaim,
  newPolicy,
  POLICY_STATUSES,
  type Policy,
  type PolicyStatus,
  PRODUCTS,
  type Product,
} from './repository.ts';

function countBy<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((key) => [key, 0])) as Record<K, number>;
}

/** A process-local store for the demo: data is lost on restart and not shared between instances. */
export function createInMemoryInsuranceRepository(): InsuranceRepository {
  const policies = new Map<string, Policy>();
  const claims = new Map<string, Claim[]>();

  function ownPolicy(holder: string, policyId: string): Policy | undefined {
    const policy = policies.get(policyId);
    return policy?.holder === holder ? policy : undefined;
  }

  return {
    async createPolicy(holder: string, input: NewPolicy) {
      const policy = newPolicy(holder, input);
      policies.set(policy.id, policy);
      return policy;
    },

    async listPolicies(holder: string) {
      return [...policies.values()].filter((policy) => policy.holder === holder);
    },

    async findPolicy(holder: string, policyId: string) {
      return ownPolicy(holder, policyId);
    },

    async createClaim(holder: string, policyId: string, input: NewClaim) {
      const policy = ownPolicy(holder, policyId);
      if (policy === undefined) return undefined;
      const claim = newClaim(policy, input);
      claims.set(policy.id, [...(claims.get(policy.id) ?? []), claim]);
      return claim;
    },

    async listClaims(holder: string, policyId: string) {
      const policy = ownPolicy(holder, policyId);
      if (policy === undefined) return undefined;
      return claims.get(policy.id) ?? [];
    },

    async claimsReport(): Promise<ClaimsReport> {
      const policiesByProduct = countBy<Product>(PRODUCTS);
      const policiesByStatus = countBy<PolicyStatus>(POLICY_STATUSES);
      const claimsByStatus = countBy<ClaimStatus>(CLAIM_STATUSES);
      const claimsByProduct = Object.fromEntries(
        PRODUCTS.map((product) => [product, { count: 0, amount: 0 }]),
      ) as Record<Product, { count: number; amount: number }>;
      let claimCount = 0;
      let totalAmount = 0;
      for (const policy of policies.values()) {
        policiesByProduct[policy.product] += 1;
        policiesByStatus[policy.status] += 1;
        for (const claim of claims.get(policy.id) ?? []) {
          claimCount += 1;
          totalAmount += claim.amount;
          claimsByStatus[claim.status] += 1;
          claimsByProduct[policy.product].count += 1;
          claimsByProduct[policy.product].amount += claim.amount;
        }
      }
      return {
        policies: { total: policies.size, byProduct: policiesByProduct, byStatus: policiesByStatus },
        claims: { total: claimCount, totalAmount, byProduct: claimsByProduct, byStatus: claimsByStatus },
      };
    },
  };
}
