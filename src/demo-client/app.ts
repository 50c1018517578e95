import { randomBytes } from 'node:crypto';
import Router from '@koa/router';
import Koa, { type Context } from 'koa';
import * as oidc from 'openid-client';
import type { DemoClientConfig } from '../config/demo-client-config.ts';
import { describe } from '../shared/describe-error.ts';
import type { Logger } from '../shared/logger.ts';

/**
 * The demo web app: a public OpenID Connect client (no secret) built on openid-client. Sign
 * in with the authorization code flow and PKCE (S256), read the ID token's claims, call the sample
 * API with the access token, refresh, and sign out (RP-initiated logout). Sessions live in this
 * process only: it is a demo.
 */

/** What the app keeps per browser: the pending login's checks, then the tokens. */
interface Session {
  csrf: string;
  pending?: { verifier: string; state: string; nonce: string };
  tokens?: { accessToken: string; refreshToken?: string; idToken: string; claims: Record<string, unknown> };
  /** The last API call or refresh, shown once. */
  notice?: { title: string; body: string };
  refreshed: number;
}

const COOKIE = 'demo_session';
const SCOPE = 'openid profile email offline_access policies:read policies:write claims:read';

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Demo client</title></head>
<body><main><h1>${escapeHtml(title)}</h1>
${body}
</main></body></html>`;
}

const button = (action: string, label: string, csrf: string) =>
  `<form method="post" action="${action}"><input type="hidden" name="csrf" value="${escapeHtml(csrf)}"><button type="submit">${escapeHtml(label)}</button></form>`;

export interface DemoClientDeps {
  config: DemoClientConfig;
  logger: Logger;
}

export function buildDemoClientApp({ config, logger }: DemoClientDeps): Koa {
  const app = new Koa();
  app.silent = true;
  app.on('error', (error) => logger.warn({ err: describe(error) }, 'request error'));
  const sessions = new Map<string, Session>();
  const redirectUri = `${config.baseUrl}/callback`;

  // Discovery on first use, so the demo can start before the authorization server; retried until it works.
  let discovered: Promise<oidc.Configuration> | undefined;
  const configuration = () => {
    discovered ??= oidc
      .discovery(new URL(config.issuer), config.clientId, undefined, oidc.None(), {
        // Plain http is for a demo on localhost only; an https issuer is used as it is.
        ...(config.issuer.startsWith('http:') ? { execute: [oidc.allowInsecureRequests] } : {}),
      })
      .catch((error: unknown) => {
        discovered = undefined;
        throw error;
      });
    return discovered;
  };

  function session(ctx: Context): Session {
    const id = ctx.cookies.get(COOKIE);
    const existing = id ? sessions.get(id) : undefined;
    if (existing) return existing;
    const fresh: Session = { csrf: randomBytes(16).toString('base64url'), refreshed: 0 };
    const newId = randomBytes(24).toString('base64url');
    sessions.set(newId, fresh);
    ctx.cookies.set(COOKIE, newId, { httpOnly: true, sameSite: 'lax', overwrite: true });
    return fresh;
  }

  /** POST forms carry the session's CSRF token (and the cookie is SameSite=Lax). */
  async function formCsrf(ctx: Context, s: Session): Promise<boolean> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of ctx.req) {
      size += (chunk as Buffer).length;
      if (size > 4096) return false;
      chunks.push(chunk as Buffer);
    }
    return new URLSearchParams(Buffer.concat(chunks).toString('utf8')).get('csrf') === s.csrf;
  }

  const router = new Router();

  router.get('/', (ctx) => {
    const s = session(ctx);
    ctx.type = 'html';
    if (!s.tokens) {
      ctx.body = page(
        'Signed out',
        `<p>This app signs you in at <code>${escapeHtml(config.issuer)}</code> as the client <code>${escapeHtml(config.clientId)}</code> (authorization code + PKCE).</p>
<p><a href="/login">Sign in</a></p>`,
      );
      return;
    }
    const rows = Object.entries(s.tokens.claims)
      .map(
        ([name, value]) =>
          `<tr><th scope="row">${escapeHtml(name)}</th><td>${escapeHtml(JSON.stringify(value))}</td></tr>`,
      )
      .join('\n');
    const notice = s.notice
      ? `<section aria-live="polite"><h2>${escapeHtml(s.notice.title)}</h2><pre id="result">${escapeHtml(s.notice.body)}</pre></section>`
      : '';
    s.notice = undefined;
    ctx.body = page(
      'Signed in',
      `<h2>The ID token's claims</h2>
<table id="claims"><tbody>
${rows}
</tbody></table>
<p>Access token for <code>${escapeHtml(config.apiUrl)}</code> refreshed ${s.refreshed} time(s).</p>
${button('/api/policies', 'Call the API: list my policies', s.csrf)}
${button('/api/new-policy', 'Call the API: create a policy', s.csrf)}
${button('/refresh', 'Refresh the tokens', s.csrf)}
${button('/logout', 'Sign out', s.csrf)}
${notice}`,
    );
  });

  router.get('/login', async (ctx) => {
    const s = session(ctx);
    const verifier = oidc.randomPKCECodeVerifier();
    s.pending = { verifier, state: oidc.randomState(), nonce: oidc.randomNonce() };
    const url = oidc.buildAuthorizationUrl(await configuration(), {
      redirect_uri: redirectUri,
      scope: SCOPE,
      resource: config.apiUrl,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: s.pending.state,
      nonce: s.pending.nonce,
    });
    ctx.redirect(url.href);
  });

  router.get('/callback', async (ctx) => {
    const s = session(ctx);
    const pending = s.pending;
    s.pending = undefined;
    if (!pending) {
      ctx.redirect('/');
      return;
    }
    const tokens = await oidc.authorizationCodeGrant(
      await configuration(),
      new URL(ctx.originalUrl, config.baseUrl),
      {
        pkceCodeVerifier: pending.verifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
        idTokenExpected: true,
      },
      { resource: config.apiUrl },
    );
    s.tokens = {
      accessToken: tokens.access_token,
      refreshToken: tokens.refresh_token,
      idToken: String(tokens.id_token),
      claims: { ...tokens.claims() },
    };
    logger.info({ sub: tokens.claims()?.sub }, 'signed in');
    ctx.redirect('/');
  });

  async function callApi(s: Session, method: 'GET' | 'POST', path: string, body?: object) {
    const response = await fetch(`${config.apiUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${s.tokens?.accessToken}`,
        ...(body ? { 'content-type': 'application/json' } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    let shown = text;
    try {
      shown = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      // not JSON: shown as it came
    }
    s.notice = { title: `${method} ${path}: ${response.status}`, body: shown };
  }

  const signedInPost = (handler: (ctx: Context, s: Session) => Promise<void>) => async (ctx: Context) => {
    const s = session(ctx);
    if (!(await formCsrf(ctx, s))) ctx.throw(403, 'bad or missing CSRF token');
    if (!s.tokens) {
      ctx.redirect('/');
      return;
    }
    await handler(ctx, s);
  };

  router.post(
    '/api/policies',
    signedInPost(async (ctx, s) => {
      await callApi(s, 'GET', '/policies');
      ctx.redirect('/');
    }),
  );
  router.post(
    '/api/new-policy',
    signedInPost(async (ctx, s) => {
      await callApi(s, 'POST', '/policies', { product: 'home', coverage: 250_000 });
      ctx.redirect('/');
    }),
  );
  router.post(
    '/refresh',
    signedInPost(async (ctx, s) => {
      if (!s.tokens?.refreshToken) {
        s.notice = { title: 'Refresh: no refresh token', body: 'the client got none' };
      } else {
        const tokens = await oidc.refreshTokenGrant(await configuration(), s.tokens.refreshToken);
        s.tokens = {
          ...s.tokens,
          accessToken: tokens.access_token,
          refreshToken: tokens.refresh_token ?? s.tokens.refreshToken,
        };
        s.refreshed += 1;
        s.notice = {
          title: 'Refresh: new tokens',
          body: `a new access token (expires in ${tokens.expires_in ?? '?'} s) and a new refresh token; the old refresh token no longer works`,
        };
      }
      ctx.redirect('/');
    }),
  );
  router.post(
    '/logout',
    signedInPost(async (ctx, s) => {
      const idTokenHint = s.tokens?.idToken ?? '';
      s.tokens = undefined;
      const url = oidc.buildEndSessionUrl(await configuration(), {
        id_token_hint: idTokenHint,
        post_logout_redirect_uri: `${config.baseUrl}/`,
      });
      ctx.redirect(url.href);
    }),
  );

  app.use(async function pageErrors(ctx, next) {
    try {
      await next();
    } catch (error) {
      const status = (error as { status?: number }).status ?? 500;
      logger.warn({ err: describe(error) }, 'demo client error');
      ctx.status = status < 500 ? status : 502;
      ctx.type = 'html';
      // Only what a 4xx means to say reaches the page; anything else stays in the log above.
      const shown =
        status < 500 && (error as { expose?: boolean }).expose === true
          ? (error as Error).message
          : 'The sign-in could not be completed. Please try again.';
      ctx.body = page(
        'Something went wrong',
        `<p role="alert">${escapeHtml(shown)}</p><p><a href="/">Back</a></p>`,
      );
    }
  });
  app.use(async function securityHeaders(ctx, next) {
    await next();
    // form-action covers the redirect after a form post too: signing out goes on to the issuer.
    ctx.set(
      'Content-Security-Policy',
      `default-src 'none'; form-action 'self' ${new URL(config.issuer).origin}; frame-ancestors 'none'`,
    );
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
  });
  app.use(router.routes()).use(router.allowedMethods());
  return app;
}
