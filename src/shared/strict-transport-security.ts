import type { Middleware } from 'koa';

/** One year, as RFC 6797 §11.2 and OWASP suggest for a site that is https-only for good. */
export const HSTS_MAX_AGE_SECONDS = 31_536_000;

/**
 * RFC 6797: a browser that saw this header over https uses only https for this host (and its
 * subdomains) for a year, so a later plain-http link cannot be downgraded. Mounted when the issuer
 * is https, whether TLS ends here (TLS_CERT_FILE) or at a proxy in front.
 */
export function strictTransportSecurity(): Middleware {
  const value = `max-age=${HSTS_MAX_AGE_SECONDS}; includeSubDomains`;
  return async function sendStrictTransportSecurity(ctx, next) {
    ctx.set('Strict-Transport-Security', value);
    await next();
  };
}
