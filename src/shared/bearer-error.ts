import type { Context } from 'koa';

/**
 * The one RFC 6750 formatter: every bearer-protected surface (the resource server's middleware, the
 * admin API) answers a refused token with the same challenge and the same JSON body.
 */
export interface BearerRefusal {
  readonly code: string;
  readonly status: number;
  readonly description: string;
  /** Whether the response carries a `WWW-Authenticate: Bearer` challenge. */
  readonly challenge: boolean;
  /** For `insufficient_scope`: the scope the request needs. */
  readonly scope?: string;
}

export interface ChallengeParameters {
  readonly realm: string;
  /** RFC 9728 §5.1: where the protected resource metadata is, for resources that publish it. */
  readonly resourceMetadataUrl?: string;
}

/** The code of a request that sent no credentials: its challenge carries no error (RFC 6750 §3.1). */
export const NO_CREDENTIALS = 'unauthorized';

// RFC 6750 §3: error_description and scope are limited to %x20-21 / %x23-5B / %x5D-7E.
function quotable(value: string): string {
  return value.replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, '?');
}

export function bearerChallenge(parameters: ChallengeParameters, refusal?: BearerRefusal): string {
  const attributes = [`realm="${quotable(parameters.realm)}"`];
  if (refusal !== undefined && refusal.code !== NO_CREDENTIALS) {
    attributes.push(`error="${refusal.code}"`, `error_description="${quotable(refusal.description)}"`);
    if (refusal.scope !== undefined) attributes.push(`scope="${quotable(refusal.scope)}"`);
  }
  if (parameters.resourceMetadataUrl !== undefined)
    attributes.push(`resource_metadata="${quotable(parameters.resourceMetadataUrl)}"`);
  return `Bearer ${attributes.join(', ')}`;
}

/** Writes the error response itself, so it works in any Koa app whatever its error handler. */
export function respondWithBearerError(
  ctx: Context,
  parameters: ChallengeParameters,
  refusal: BearerRefusal,
): void {
  ctx.status = refusal.status;
  if (refusal.challenge) ctx.set('WWW-Authenticate', bearerChallenge(parameters, refusal));
  if (refusal.status === 503) ctx.set('Retry-After', '5');
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { error: refusal.code, error_description: refusal.description };
}
