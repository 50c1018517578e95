import type { Context, Next } from 'koa';

/**
 * Headers for every response, the provider's included. Its own pages with inline script (the
 * form_post response) add their script's hash to script-src themselves.
 */
const BASELINE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'";

export async function baselineSecurityHeaders(ctx: Context, next: Next): Promise<void> {
  ctx.set({
    'Content-Security-Policy': BASELINE_CSP,
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
  });
  await next();
}

interface HeaderTarget {
  set(field: Record<string, string>): void;
}

/**
 * Our HTML pages: no script at all, styles from our origin only, never framed (clickjacking), and
 * forms post only to us and to where the flow is sent next. Browsers apply form-action to the
 * redirects that follow a form post, so the client's redirect target must be allowed too.
 */
export function setPageHeaders(ctx: HeaderTarget, formTargets: (string | undefined)[] = []): void {
  const origins = [...new Set(formTargets.map(originOf).filter((o): o is string => o !== undefined))];
  const formAction = ["'self'", ...origins].join(' ');
  ctx.set({
    'Content-Security-Policy': `default-src 'none'; style-src 'self'; img-src 'self'; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-store',
  });
}

function originOf(uri: string | undefined): string | undefined {
  if (!uri) return undefined;
  try {
    const { origin, protocol } = new URL(uri);
    // Custom schemes (native apps) have an opaque origin; allow the scheme itself.
    return origin === 'null' ? protocol : origin;
  } catch {
    return undefined;
  }
}
