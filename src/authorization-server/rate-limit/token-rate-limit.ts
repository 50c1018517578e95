import { parse as parseQuery } from 'node:querystring';
import { decodeJwt } from 'jose';
import type { Context, Next } from 'koa';
import { RateLimiterRes } from 'rate-limiter-flexible';
import { bodyTooLarge, readRawBody, replayRawBody } from '../provider/form-body.ts';
import type { Store } from '../storage/store.ts';
import { createLimiter } from './limiter.ts';
import { TOKEN_LIMIT_WINDOW_SECONDS } from './limits.ts';

/**
 * Koa middleware in front of oidc-provider's `/token`: at most `perWindow` requests per client per
 * window, counted in the store across every instance. The client is the one the request claims
 * (Basic credentials, `client_id`, or a client assertion's issuer); authenticating it stays the
 * provider's job, and a request naming no client is counted against its IP.
 */
export function limitTokenRequests(store: Store, perWindow: number) {
  const limiter = createLimiter(store, {
    name: 'token-client',
    points: perWindow,
    durationSeconds: TOKEN_LIMIT_WINDOW_SECONDS,
  });

  return async function limitTokenRequestsPerClient(ctx: Context, next: Next): Promise<void> {
    const claimed = await claimedClient(ctx);
    if (claimed === 'too-large') {
      bodyTooLarge(ctx);
      return;
    }
    const key = claimed
      ? `client:${store.box.hashId('token-client', claimed)}`
      : `ip:${store.box.hashId('token-ip', ctx.ip)}`;
    try {
      await limiter.consume(key);
    } catch (error) {
      if (!(error instanceof RateLimiterRes)) {
        // The store is away: answer like the rest of the server does (app.ts), not with a 500.
        ctx.set('Retry-After', '2');
        respond(ctx, 503, {
          error: 'temporarily_unavailable',
          error_description: 'the service is temporarily unavailable',
        });
        return;
      }
      const retryAfter = Math.max(1, Math.ceil(error.msBeforeNext / 1000));
      ctx.set('Retry-After', String(retryAfter));
      respond(ctx, 429, {
        error: 'temporarily_unavailable',
        error_description: `too many token requests for this client; retry in ${retryAfter} s`,
      });
      return;
    }
    await next();
  };
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
