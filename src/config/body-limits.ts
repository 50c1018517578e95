/**
 * Request-body limits of the public authorization server, in bytes: the one table the body step
 * (authorization-server/request-body.ts) reads. Not environment settings: raising them only
 * widens what a stranger can make the server buffer.
 */
export const BODY_LIMITS = {
  /**
   * OAuth/OpenID endpoints (token, introspection, revocation, PAR, logout confirm, ...): 56 KiB,
   * oidc-provider's own ceiling for the bodies it parses (its shared/selective_body.js; pinned by
   * test/contract/oidc-provider.test.ts), so the provider never sees a body it would refuse.
   */
  oauth: 56 * 1024,
  /** Our login, consent and abort forms: an email, a password and a code at most. */
  form: 8 * 1024,
  /**
   * How much of an oversized body is read and thrown away before the 413 goes out. Closing a
   * connection while the client is still sending makes its kernel see a reset and lose the
   * answer; draining first means the client reads the 413. Past this, the connection is closed.
   */
  drain: 16 * 1024 * 1024,
  /** The longest a drain may take (a slow sender is not waited for beyond it). */
  drainMs: 5_000,
} as const;

export type BodyLimits = typeof BODY_LIMITS;
