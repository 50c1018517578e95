import { parse as parseQuery } from 'node:querystring';
import { decodeJwt } from 'jose';
import type { Context, Next } from 'koa';
import { bodyTooLarge, readRawBody, replayRawBody } from '../provider/form-body.ts';
import type { Store } from '../storage/store.ts';
import { createLimiter } from './limiter.ts';
import { TOKEN_AUTH_FAILURES_PER_CALLER, TOKEN_LIMIT_WINDOW_SECONDS } from './limits.ts';

/**
 * Koa middleware in front of oidc-provider's `/token`, counted in the store across every instance:
 * - a client gets at most `perWindow` tokens per window (its successful requests), so no one
 *   client, runaway or stolen, takes the server;
 * - failed client authentications are counted per caller IP and claimed client together: nobody
 *   can use up a client's budget, or lock it out, by sending its id with wrong secrets, and one
 *   caller's failures for one id never hold back the other clients behind the same address.
 * The client is the one the request claims (Basic credentials, `client_id`, or a client
 * assertion's issuer); authenticating it stays the provider's job.
 */
export function limitTokenRequests(store: Store, perWindow: number) {
  const issued = createLimiter(store, {
    name: 'token-client',
    points: perWindow,
    durationSeconds: TOKEN_LIMIT_WINDOW_SECONDS,
  });
  const failed = createLimiter(store, {
    name: 'token-auth-failures',
    points: TOKEN_AUTH_FAILURES_PER_CALLER,
    durationSeconds: TOKEN_LIMIT_WINDOW_SECONDS,
  });

  return async function limitTokenRequestsPerClient(ctx: Context, next: Next): Promise<void> {
    const claimed = await claimedClient(ctx);
    if (claimed === 'too-large') {
      bodyTooLarge(ctx);
      return;
    }
    const clientKey = claimed ? store.box.hashId('token-client', claimed) : undefined;
    const ipKey = store.box.hashId('token-ip', `${ctx.ip}\0${claimed ?? ''}`);
    try {
      const [client, ip] = await Promise.all([clientKey ? issued.get(clientKey) : null, failed.get(ipKey)]);
      if (client && client.consumedPoints >= perWindow) {
        return tooMany(ctx, client.msBeforeNext, 'too many token requests for this client');
      }
      if (ip && ip.consumedPoints >= TOKEN_AUTH_FAILURES_PER_CALLER) {
        return tooMany(
          ctx,
          ip.msBeforeNext,
          'too many failed client authentications for this client from this address',
        );
      }
    } catch {
      return storeUnavailable(ctx);
    }

    await next();

    // oidc-provider has written the response itself (ctx.respond is off), so read the raw status.
    const status = ctx.res.statusCode;
    if (status === 401) await failed.penalty(ipKey).catch(() => {});
    else if (status < 400 && clientKey) await issued.penalty(clientKey).catch(() => {});
  };
}

function tooMany(ctx: Context, msBeforeNext: number, description: string): void {
  const retryAfter = Math.max(1, Math.ceil(msBeforeNext / 1000));
  ctx.set('Retry-After', String(retryAfter));
  respond(ctx, 429, {
    error: 'temporarily_unavailable',
    error_description: `${description}; retry in ${retryAfter} s`,
  });
}

/** The store is away: answer like the rest of the server does (app.ts), not with a 500. */
function storeUnavailable(ctx: Context): void {
  ctx.set('Retry-After', '2');
  respond(ctx, 503, {
    error: 'temporarily_unavailable',
    error_description: 'the service is temporarily unavailable',
  });
}

function respond(ctx: Context, status: number, body: { error: string; error_description: string }): void {
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = body;
}

/** The client a token request names, reading the form body when the credentials are in it. */
async function claimedClient(ctx: Context): Promise<string | undefined | 'too-large'> {
  const basic = basicClientId(ctx.get('authorization'));
  if (basic) return basic;
  if (ctx.method !== 'POST' || !ctx.is('application/x-www-form-urlencoded')) return undefined;
  const raw = await readRawBody(ctx.req);
  if (raw === undefined) return 'too-large';
  replayRawBody(ctx.req, raw);
  const form = parseQuery(raw.toString('utf8'));
  if (typeof form.client_id === 'string' && form.client_id) return form.client_id;
  if (typeof form.client_assertion === 'string') {
    try {
      const { iss } = decodeJwt(form.client_assertion);
      if (typeof iss === 'string' && iss) return iss;
    } catch {
      // malformed: the provider will say so
    }
  }
  return undefined;
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
