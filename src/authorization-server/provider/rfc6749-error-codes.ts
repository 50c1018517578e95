import type { KoaContextWithOIDC } from 'oidc-provider';

/**
 * oidc-provider answers two token-endpoint situations with `invalid_request` where RFC 6749 §5.2
 * names a more precise code; clients switch on these codes, so they get the RFC's.
 */
const CORRECTIONS: { description: string; status: number; error: string }[] = [
  // "The authenticated client is not authorized to use this authorization grant type."
  {
    description: 'requested grant type is not allowed for this client',
    status: 400,
    error: 'unauthorized_client',
  },
  // "Client authentication failed (e.g., ... no client authentication included ...)".
  { description: 'no client authentication mechanism provided', status: 401, error: 'invalid_client' },
];

export async function rfc6749ErrorCodes(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
  await next();
  const body = ctx.body as { error?: unknown; error_description?: unknown } | undefined;
  if (body?.error !== 'invalid_request') return;
  const correction = CORRECTIONS.find((c) => c.description === body.error_description);
  if (!correction) return;
  ctx.status = correction.status;
  body.error = correction.error;
}
