import type { KoaContextWithOIDC } from 'oidc-provider';
import { errors } from 'oidc-provider';
import { requestBody } from '../request-body.ts';
import type { ProviderPages } from './configuration.ts';

/** The names given more than once in a query string or an urlencoded body. */
export function repeatedNames(...sources: URLSearchParams[]): string[] {
  const repeated = new Set<string>();
  for (const params of sources) {
    const seen = new Set<string>();
    for (const name of params.keys()) {
      if (seen.has(name)) repeated.add(name);
      seen.add(name);
    }
  }
  return [...repeated];
}

/** Pages a browser is sent to (authorization, logout); every other endpoint answers in JSON. */
function isPageRoute(path: string): boolean {
  const normalized = path
    .toLowerCase()
    .replace(/\/{2,}/g, '/')
    .replace(/\/$/, '');
  return /^\/auth(\/|$)/.test(normalized) || /^\/session\/end(\/|$)/.test(normalized);
}

function formBody(ctx: KoaContextWithOIDC): URLSearchParams {
  const raw = requestBody(ctx);
  if (!raw || !ctx.is('application/x-www-form-urlencoded')) return new URLSearchParams();
  return new URLSearchParams(raw.toString('utf8'));
}

/**
 * Any parameter given twice is `invalid_request` (SPEC; OAuth 2.1 §3.1: "request and response
 * parameters MUST NOT be included more than once"), checked before oidc-provider reads any, and
 * never answered with a redirect: with `redirect_uri` or `client_id` twice the redirect target is
 * ambiguous, so the authorization and logout endpoints answer on our error page, the others in JSON.
 * oidc-provider lets `resource` repeat (RFC 8707); here a token is for one audience, so it may not.
 */
export function rejectRepeatedParameters(renderError: ProviderPages['renderError']) {
  return async function rejectRepeatedParameters(
    ctx: KoaContextWithOIDC,
    next: () => Promise<void>,
  ): Promise<void> {
    const repeated = repeatedNames(new URLSearchParams(ctx.querystring), formBody(ctx));
    if (repeated.length === 0) return next();
    const error = new errors.InvalidRequest(
      `${repeated.join(', ')} ${repeated.length === 1 ? 'parameter' : 'parameters'} must not be provided twice`,
    );
    const out = { error: error.message, error_description: error.error_description as string };
    ctx.status = 400;
    ctx.set('Cache-Control', 'no-store');
    if (isPageRoute(ctx.path)) {
      await renderError(ctx, out, error);
      return;
    }
    ctx.body = out;
  };
}
