import { z } from 'zod';
import { type Claim, type ClaimsReport, type Policy, PRODUCTS } from './repository.ts';

/** Upper bounds keep amounts far from Number.MAX_SAFE_INTEGER, so sums in reports stay exact. */
export const MAX_COVERAGE = 1_000_000_000;
export const MAX_CLAIM_AMOUNT = 1_000_000_000;
export const MAX_DESCRIPTION_LENGTH = 2000;

/**
 * Request bodies name exactly the fields a client may set. Unknown fields, server-owned ones included
 * (`id`, `holder`, `status`, `created_at`, `policy_id`), are rejected with 400 invalid_request rather
 * than dropped, so a client that believes it can set them learns otherwise (OWASP API3:2023).
 */
export const createPolicyBody = z.strictObject({
  product: z.enum(PRODUCTS),
  coverage: z.number().int().positive().max(MAX_COVERAGE),
});

export const createClaimBody = z.strictObject({
  description: z
    .string()
    .trim()
    .min(1)
    .max(MAX_DESCRIPTION_LENGTH)
    .refine((text) => !hasControlCharacters(text), 'must not contain control characters'),
  amount: z.number().int().positive().max(MAX_CLAIM_AMOUNT),
});

export const policyId = z.uuid();

/** Control characters other than tab and line breaks have no business in free text. */
function hasControlCharacters(text: string): boolean {
  for (let index = 0; index < text.length; index += 1) {
    const code = text.charCodeAt(index);
    if ((code < 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) || code === 0x7f) return true;
  }
  return false;
}

/** What a client sees of a policy: exactly these fields. */
export function policyResponse(policy: Policy) {
  return {
    id: policy.id,
    holder: policy.holder,
    product: policy.product,
    coverage: policy.coverage,
    status: policy.status,
    created_at: policy.createdAt.toISOString(),
  };
}

/** What a client sees of a claim: exactly these fields (the holder is the policy's). */
export function claimResponse(claim: Claim) {
  return {
    id: claim.id,
    policy_id: claim.policyId,
    description: claim.description,
    amount: claim.amount,
    status: claim.status,
    created_at: claim.createdAt.toISOString(),
  };
}

export function claimsReportResponse(report: ClaimsReport, generatedAt: Date) {
  return {
    policies: {
      total: report.policies.total,
      by_product: report.policies.byProduct,
      by_status: report.policies.byStatus,
    },
    claims: {
      total: report.claims.total,
      total_amount: report.claims.totalAmount,
      by_product: report.claims.byProduct,
      by_status: report.claims.byStatus,
    },
    generated_at: generatedAt.toISOString(),
  };
}
