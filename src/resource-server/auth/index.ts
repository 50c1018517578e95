/**
 * Bearer token verification for any Koa API: JWT access tokens (RFC 9068) from an OpenID Connect
 * authorization server, checked against its discovery document and JWKS, with RFC 6750 error responses.
 * This file is the module's only entry point.
 */
export {
  type BearerAuth,
  type BearerAuthOptions,
  createBearerAuth,
  getAuth,
  type ProtectOptions,
  protectedResourceMetadataUrl,
} from './bearer-auth.ts';
export {
  AuthorizationServerUnavailable,
  BearerAuthError,
  type BearerErrorCode,
  EndUserRequired,
  InsufficientScope,
  InvalidRequest,
  InvalidToken,
  MissingToken,
} from './errors.ts';
export type { IntrospectionCredentials } from './introspection.ts';
export type { AuthLogger } from './logger.ts';
export type { AccessTokenAuth } from './verify-access-token.ts';
