import { randomUUID } from 'node:crypto';

/**
 * Storage for policies and claims. Every method over user-owned data takes the holder, so ownership is
 * part of the lookup itself: no code path can fetch another user's object and forget to check.
 */
export const PRODUCTS = ['home', 'motor', 'travel', 'life'] as const;
export type Product = (typeof PRODUCTS)[number];

export const POLICY_STATUSES = ['active'] as const;
export type PolicyStatus = (typeof POLICY_STATUSES)[number];

export const CLAIM_STATUSES = ['submitted'] as const;
export type ClaimStatus = (typeof CLAIM_STATUSES)[number];

export interface Policy {
  readonly id: string;
  /** The `sub` of the end user who owns it. */
  readonly holder: string;
  readonly product: Product;
  readonly coverage: number;
  readonly status: PolicyStatus;
  readonly createdAt: Date;
}

export interface Claim {
  readonly id: string;
  readonly policyId: string;
  readonly holder: string;
  readonly description: string;
  readonly amount: number;
  readonly status: ClaimStatus;
  readonly createdAt: Date;
}

export interface NewPolicy {
  readonly product: Product;
  readonly coverage: number;
}

export interface NewClaim {
  readonly description: string;
  readonly amount: number;
}

/** Aggregates only: counts and sums, no ids, no holders. */
export interface ClaimsReport {
  readonly policies: {
    readonly total: number;
    readonly byProduct: Record<Product, number>;
    readonly byStatus: Record<PolicyStatus, number>;
  };
  readonly claims: {
    readonly total: number;
    readonly totalAmount: number;
    readonly byProduct: Record<Product, { count: number; amount: number }>;
    readonly byStatus: Record<ClaimStatus, number>;
  };
}

/** A new policy as every repository creates it: server-owned fields are set here, never by the caller. */
export function newPolicy(holder: string, input: NewPolicy): Policy {
  return {
    id: randomUUID(),
    holder,
    product: input.product,
    coverage: input.coverage,
    status: 'active',
    createdAt: new Date(),
  };
}

/** A new claim on one's own policy, with its server-owned fields. */
export function newClaim(policy: Policy, input: NewClaim): Claim {
  return {
    id: randomUUID(),
    policyId: policy.id,
    holder: policy.holder,
    description: input.description,
    amount: input.amount,
    status: 'submitted',
    createdAt: new Date(),
  };
}

export interface InsuranceRepository {
  createPolicy(holder: string, input: NewPolicy): Promise<Policy>;
  listPolicies(holder: string): Promise<Policy[]>;
  /** undefined when there is no such policy or it belongs to someone else. */
  findPolicy(holder: string, policyId: string): Promise<Policy | undefined>;
  /** undefined when the policy does not exist or belongs to someone else. */
  createClaim(holder: string, policyId: string, input: NewClaim): Promise<Claim | undefined>;
  /** undefined when the policy does not exist or belongs to someone else. */
  listClaims(holder: string, policyId: string): Promise<Claim[] | undefined>;
  claimsReport(): Promise<ClaimsReport>;
}
