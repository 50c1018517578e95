import type { ServerResponse } from 'node:http';
import { decodeJwt } from 'jose';
import type { Context, Next } from 'koa';
import { AppError, StoreUnavailableError } from '../../shared/errors.ts';
import { respondWithJsonError } from '../../shared/json-error.ts';
import { rateLimitRefusals } from '../../shared/metrics.ts';
import { requestForm } from '../request-body.ts';
import type { KvWrite } from '../storage/kv.ts';
import type { Store } from '../storage/store.ts';
import { addressBucket } from './address-bucket.ts';
import {
  TOKEN_AUTH_FAILURES_PER_ADDRESS,
  TOKEN_AUTH_FAILURES_PER_CALLER,
  TOKEN_LIMIT_WINDOW_SECONDS,
} from './limits.ts';

/** The grant a refresh token or an authorization code belongs to (undefined when unknown). */
export type GrantLookup = (
  grantType: 'refresh_token' | 'authorization_code',
  value: string,
) => Promise<string | undefined>;

/** What a token request says about itself, read before the provider authenticates it. */
interface TokenRequestClaim {
  clientId: string | undefined;
  /** A public client's code or refresh token: its budget is its grant's, not the whole client's. */
  publicGrant?: { type: 'refresh_token' | 'authorization_code'; value: string };
}

/** What a token request in flight owes its budget once it issues something, by its response. */
interface PendingCharge {
  key: string;
  limit: number;
  windowMs: number;
  /** Answers 429 with Retry-After for a budget found spent at issuance (throws). */
  refuse(ctx: Context): Promise<never>;
}
const pendingCharges = new WeakMap<ServerResponse, PendingCharge>();

/** A budget found spent when the token was about to be issued: oidc-provider renders it as 429. */
export class TokenBudgetSpentError extends AppError {
  readonly statusCode = 429;
  readonly error_description: string;

  constructor(description: string) {
    super('temporarily_unavailable', 'temporarily_unavailable', 429, true);
    this.error_description = description;
  }
}

/**
 * The request's count against its budget, handed over once to the token registry, which makes it
 * together with its own write (one script call, one round trip). `refusable` (client credentials,
 * where nothing is spent before the token) makes it a take: a budget spent by parallel requests
 * since the limiter's check refuses this one, atomically with the write, so no burst gets more
 * tokens than the budget; `refuse` then answers it. Code and refresh grants have spent their code or
 * token by then and are counted whatever. A token issued is a token counted.
 */
export function takeTokenBudget(
  res: ServerResponse,
  { refusable }: { refusable: boolean },
): { write: KvWrite; refuse: (ctx: Context) => Promise<never> } | undefined {
  const charge = pendingCharges.get(res);
  pendingCharges.delete(res);
  if (!charge) return undefined;
  const { key, limit, windowMs } = charge;
  return {
    write: refusable ? { op: 'takeBelow', key, limit, windowMs } : { op: 'countUp', key, windowMs },
    refuse: charge.refuse,
  };
}

/**
 * Koa middleware in front of oidc-provider's `/token`, counted in the store across every instance:
 * - a client gets at most `perWindow` tokens per window (its successful requests), so no one
 *   client, runaway or stolen, takes the server. A public client (no credentials: every user's
 *   app shares its id) is counted per grant instead, so one user looping refresh tokens cannot
 *   spend everybody's budget;
 * - failed client authentications are counted per caller address and claimed client together
 *   (nobody can use up a client's budget, or lock it out, by sending its id with wrong secrets),
 *   and per address alone, so one address cycling through made-up client ids is stopped too. The
 *   per-address counter is checked first and a blocked address writes no more keys: the keys one
 *   address can create per window are bounded.
 * The client is the one the request claims (Basic credentials, `client_id`, or a client
 * assertion's issuer); authenticating it stays the provider's job. The counters are fixed
 * windows; the checks are independent single-key reads issued together, so they travel in one
 * round trip (one MGET). A JWT access token's budget is taken by the registry's own write
 * (`takeTokenBudget`: for client credentials only while the budget has room); a response that
 * issued no JWT is counted after it is sent, and so are failed client authentications.
 */
export function limitTokenRequests(store: Store, perWindow: number, grantOf: GrantLookup) {
  const windowMs = TOKEN_LIMIT_WINDOW_SECONDS * 1000;
  const counter = (name: string, id: string) => `${store.keys.rateLimit(name)}:${id}`;
  // Callers come back: their counters' keyed hashes are computed once, not per request (bounded).
  const hashedKeys = new Map<string, string>();
  const hashedKey = (name: string, namespace: string, id: string) => {
    const memo = `${namespace}\0${id}`;
    let key = hashedKeys.get(memo);
    if (!key) {
      key = counter(name, store.box.hashId(namespace, id));
      if (hashedKeys.size >= 10_000) hashedKeys.clear();
      hashedKeys.set(memo, key);
    }
    return key;
  };
  const clientKey = (clientId: string) => hashedKey('token-client', 'token-client', clientId);

  async function budgetKey(claim: TokenRequestClaim): Promise<string | undefined> {
    if (!claim.clientId) return undefined;
    if (claim.publicGrant) {
      const grantId = await grantOf(claim.publicGrant.type, claim.publicGrant.value);
      // An unknown code or refresh token is refused by the provider (400) and never counted.
      if (grantId)
        return counter('token-client', store.box.hashId('token-grant', `${claim.clientId}\0${grantId}`));
    }
    return clientKey(claim.clientId);
  }

  return async function limitTokenRequestsPerClient(ctx: Context, next: Next): Promise<void> {
    const claim = claimOf(ctx);
    let budget: string | undefined;
    const address = addressBucket(ctx.ip);
    const addressKey = hashedKey('token-auth-failures-ip', 'token-ip', address);
    const callerKey = hashedKey(
      'token-auth-failures',
      'token-ip-client',
      `${address}\0${claim.clientId ?? ''}`,
    );
    try {
      budget = await budgetKey(claim);
      const keys = budget ? [addressKey, callerKey, budget] : [addressKey, callerKey];
      const [fromAddress = 0, fromCaller = 0, issued = 0] = await store.kv.readCounters(keys);
      const refuse = async (key: string, description: string) =>
        tooMany(ctx, await store.kv.counterMsLeft(key), description);
      if (fromAddress >= TOKEN_AUTH_FAILURES_PER_ADDRESS) {
        return await refuse(addressKey, 'too many failed client authentications from this address');
      }
      if (fromCaller >= TOKEN_AUTH_FAILURES_PER_CALLER) {
        return await refuse(
          callerKey,
          'too many failed client authentications for this client from this address',
        );
      }
      if (budget && issued >= perWindow) {
        return await refuse(
          budget,
          claim.publicGrant
            ? 'too many token requests for this grant'
            : 'too many token requests for this client',
        );
      }
    } catch (error) {
      throw new StoreUnavailableError(error);
    }

    if (budget) {
      const key = budget;
      const description = claim.publicGrant
        ? 'too many token requests for this grant'
        : 'too many token requests for this client';
      pendingCharges.set(ctx.res, {
        key,
        limit: perWindow,
        windowMs,
        refuse: async (answering) => {
          const retryAfter = retryAfterSeconds(await store.kv.counterMsLeft(key));
          answering.set('Retry-After', String(retryAfter));
          rateLimitRefusals.inc({ limit: 'token_endpoint' });
          throw new TokenBudgetSpentError(`${description}; retry in ${retryAfter} s`);
        },
      });
    }
    try {
      await next();
    } catch (error) {
      // Nothing was answered yet (the error handler will): nothing to count.
      pendingCharges.delete(ctx.res);
      throw error;
    }
    // oidc-provider has written the response itself (ctx.respond is off), so read the raw status.
    // The response is already on its way: counting adds no latency.
    const status = ctx.res.statusCode;
    const charge = takeTokenBudget(ctx.res, { refusable: false })?.write;
    if (status === 401) {
      await Promise.all([
        store.kv.countUp(addressKey, windowMs),
        store.kv.countUp(callerKey, windowMs),
      ]).catch(() => {});
    } else if (status < 400 && charge) {
      // Nothing issued took the count with it (opaque tokens only): count it now.
      await store.kv.writeTogether([charge]).catch(() => {});
    }
  };
}

const retryAfterSeconds = (msBeforeNext: number) => Math.max(1, Math.ceil(msBeforeNext / 1000));

function tooMany(ctx: Context, msBeforeNext: number, description: string): void {
  rateLimitRefusals.inc({ limit: 'token_endpoint' });
  const retryAfter = retryAfterSeconds(msBeforeNext);
  ctx.set('Retry-After', String(retryAfter));
  respondWithJsonError(
    ctx,
    new AppError('temporarily_unavailable', `${description}; retry in ${retryAfter} s`, 429, true),
  );
}

const PUBLIC_GRANTS = { refresh_token: 'refresh_token', authorization_code: 'code' } as const;

/**
 * A client id as registered ones are spelled (storage/client-store.ts): anything else names no
 * client, so it gets no budget and no key of its own (a made-up 50 KB id must not be kept in
 * memory or in Redis); its failures still count against the address.
 */
const PLAUSIBLE_CLIENT_ID = /^[\x21-\x7E]{1,128}$/;

/** The client a token request names, from the form body (request-body.ts) when the credentials are in it. */
function claimOf(ctx: Context): TokenRequestClaim {
  const claim = claimedBy(ctx);
  return claim.clientId === undefined || PLAUSIBLE_CLIENT_ID.test(claim.clientId)
    ? claim
    : { clientId: undefined };
}

function claimedBy(ctx: Context): TokenRequestClaim {
  const basic = basicClientId(ctx.get('authorization'));
  if (basic) return { clientId: basic };
  if (ctx.method !== 'POST' || !ctx.is('application/x-www-form-urlencoded')) return { clientId: undefined };
  const form = requestForm(ctx);
  if (typeof form.client_assertion === 'string') {
    try {
      const { iss } = decodeJwt(form.client_assertion);
      if (typeof iss === 'string' && iss) return { clientId: iss };
    } catch {
      // malformed: the provider will say so
    }
    return { clientId: typeof form.client_id === 'string' ? form.client_id : undefined };
  }
  if (typeof form.client_id !== 'string' || !form.client_id) return { clientId: undefined };
  const clientId = form.client_id;
  // No secret and no assertion: a public client, or a confidential one the provider will refuse
  // (401, counted as a failure).
  const grantType = form.grant_type;
  if (
    form.client_secret === undefined &&
    (grantType === 'refresh_token' || grantType === 'authorization_code')
  ) {
    const value = form[PUBLIC_GRANTS[grantType]];
    if (typeof value === 'string' && value) return { clientId, publicGrant: { type: grantType, value } };
  }
  return { clientId };
}

/** RFC 6749 §2.3.1: the client id is form-urlencoded inside the Basic credentials. */
function basicClientId(header: string): string | undefined {
  const match = /^basic\s+([A-Za-z0-9+/=._~-]+)\s*$/i.exec(header);
  if (!match?.[1]) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  try {
    return decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}
