import type { RouterMiddleware } from '@koa/router';
import type { z } from 'zod';
import { invalidRequest, notFound, unsupportedMediaType } from '../api-errors.ts';
import { type AccessTokenAuth, getAuth } from '../auth/index.ts';
import type { RouteId } from '../scope-policy.ts';
import type { InsuranceRepository, NewClaim, NewPolicy, Policy } from './repository.ts';
import {
  claimResponse,
  claimsReportResponse,
  createClaimBody,
  createPolicyBody,
  policyId,
  policyResponse,
} from './schemas.ts';

interface InsuranceState {
  auth: AccessTokenAuth;
  policy?: Policy;
  input?: unknown;
}

type Step = RouterMiddleware<InsuranceState>;

function describeIssues(error: z.ZodError): string {
  const text = error.issues
    .map((issue) => (issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message))
    .join('; ');
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}

const requireJsonBody: Step = async function requireJsonBody(ctx, next) {
  if (!ctx.is('application/json')) throw unsupportedMediaType();
  await next();
};

function validateBody(schema: z.ZodType): Step {
  return async function validateBodyStep(ctx, next) {
    const result = schema.safeParse((ctx.request as { body?: unknown }).body);
    if (!result.success) throw invalidRequest(describeIssues(result.error));
    ctx.state.input = result.data;
    await next();
  };
}

/** The end user's `sub`: routes over user-owned data run only behind requireEndUser. */
function holder(ctx: Parameters<Step>[0]): string {
  return getAuth(ctx).subject;
}

export function insuranceHandlers(repository: InsuranceRepository) {
  const loadOwnPolicy: Step = async function loadOwnPolicy(ctx, next) {
    const id = ctx.params.id;
    // A malformed id is just another id that does not exist: 404, like someone else's policy.
    const policy = policyId.safeParse(id).success
      ? await repository.findPolicy(holder(ctx), id as string)
      : undefined;
    if (policy === undefined) throw notFound();
    ctx.state.policy = policy;
    await next();
  };

  const insertPolicy: Step = async function insertPolicy(ctx) {
    const policy = await repository.createPolicy(holder(ctx), ctx.state.input as NewPolicy);
    ctx.status = 201;
    ctx.set('Location', `/policies/${policy.id}`);
    ctx.body = policyResponse(policy);
  };

  const listOwnPolicies: Step = async function listOwnPolicies(ctx) {
    const policies = await repository.listPolicies(holder(ctx));
    ctx.body = policies.map(policyResponse);
  };

  const showPolicy: Step = async function showPolicy(ctx) {
    ctx.body = policyResponse(ctx.state.policy as Policy);
  };

  const insertClaim: Step = async function insertClaim(ctx) {
    const policy = ctx.state.policy as Policy;
    const claim = await repository.createClaim(holder(ctx), policy.id, ctx.state.input as NewClaim);
    if (claim === undefined) throw notFound();
    ctx.status = 201;
    ctx.body = claimResponse(claim);
  };

  const listPolicyClaims: Step = async function listPolicyClaims(ctx) {
    const claims = await repository.listClaims(holder(ctx), (ctx.state.policy as Policy).id);
    if (claims === undefined) throw notFound();
    ctx.body = claims.map(claimResponse);
  };

  const showClaimsReport: Step = async function showClaimsReport(ctx) {
    ctx.body = claimsReportResponse(await repository.claimsReport(), new Date());
  };

  return {
    createPolicy: [requireJsonBody, validateBody(createPolicyBody), insertPolicy],
    listPolicies: [listOwnPolicies],
    getPolicy: [loadOwnPolicy, showPolicy],
    createClaim: [loadOwnPolicy, requireJsonBody, validateBody(createClaimBody), insertClaim],
    listClaims: [loadOwnPolicy, listPolicyClaims],
    claimsReport: [showClaimsReport],
  } satisfies Partial<Record<RouteId, Step[]>>;
}
