import type { Context } from 'koa';
import { type BearerAuthError, InsufficientScope, MissingToken } from './errors.ts';

export interface ChallengeParameters {
  readonly realm: string;
  readonly resourceMetadataUrl: string;
}

// RFC 6750 §3: error_description and scope are limited to %x20-21 / %x23-5B / %x5D-7E.
function quotable(value: string): string {
  return value.replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, '?');
}

export function bearerChallenge(parameters: ChallengeParameters, error?: BearerAuthError): string {
  const attributes = [`realm="${quotable(parameters.realm)}"`];
  if (error !== undefined && !(error instanceof MissingToken)) {
    attributes.push(`error="${error.code}"`, `error_description="${quotable(error.description)}"`);
  }
  if (error instanceof InsufficientScope) attributes.push(`scope="${quotable(error.scope)}"`);
  // RFC 9728 §5.1: point clients at the protected resource metadata in every challenge.
  attributes.push(`resource_metadata="${quotable(parameters.resourceMetadataUrl)}"`);
  return `Bearer ${attributes.join(', ')}`;
}

/** Writes the error response itself, so the middleware works in any Koa app whatever its error handler. */
export function respondWithError(
  ctx: Context,
  parameters: ChallengeParameters,
  error: BearerAuthError,
): void {
  ctx.status = error.status;
  if (error.challenge) ctx.set('WWW-Authenticate', bearerChallenge(parameters, error));
  if (error.status === 503) ctx.set('Retry-After', '5');
  ctx.set('Cache-Control', 'no-store');
  ctx.body = {
    error: error.code,
    error_description: error.description,
  };
}
