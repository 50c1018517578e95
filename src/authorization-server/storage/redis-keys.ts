/**
 * Every key name the product writes, in one place. Secret identifiers (token, code, session,
 * interaction ids; emails) only ever appear as keyed hashes. Only the audit trail's operations span
 * two keys, and its keys share one hash tag for Redis Cluster.
 */
export class KeyNames {
  readonly prefix: string;
  readonly #hash: (namespace: string, id: string) => string;

  constructor(prefix: string, hashId: (namespace: string, id: string) => string) {
    this.prefix = prefix;
    this.#hash = hashId;
  }

  /** One oidc-provider model instance (AccessToken, Session, Client...). */
  model(model: string, id: string): string {
    return `${this.prefix}oidc:${model}:${this.#hash(model, id)}`;
  }

  /** The set of model keys issued under one grant, for revocation. */
  grant(grantId: string): string {
    return `${this.prefix}oidc:grant-index:${this.#hash('grant-index', grantId)}`;
  }

  /** Session uid → session key. */
  sessionUid(uid: string): string {
    return `${this.prefix}oidc:uid:${this.#hash('uid', uid)}`;
  }

  /** Device flow user code → model key. */
  userCode(userCode: string): string {
    return `${this.prefix}oidc:user-code:${this.#hash('user-code', userCode)}`;
  }

  /** Ids of registered clients (public identifiers). */
  clientIndex(): string {
    return `${this.prefix}clients`;
  }

  /** Resource servers: resource URI → JSON (public configuration). */
  resources(): string {
    return `${this.prefix}resources`;
  }

  /** Users: subject → sealed record. */
  users(): string {
    return `${this.prefix}users`;
  }

  /** Email (hashed) → subject. */
  userEmails(): string {
    return `${this.prefix}user-emails`;
  }

  emailHash(email: string): string {
    return this.#hash('email', email);
  }

  /** Scopes and claims a user approved for a client, remembered across sessions (sealed). */
  consent(accountId: string, clientId: string): string {
    return `${this.prefix}consent:${this.#hash('consent', `${accountId}\0${clientId}`)}`;
  }

  /** The consent keys of one client's users, so removing the client removes them. */
  clientConsents(clientId: string): string {
    return `${this.prefix}client-consents:${this.#hash('client-consents', clientId)}`;
  }

  /** The signing key ring, sealed. */
  keyRing(): string {
    return `${this.prefix}signing-keys`;
  }

  /** Bumped on every key ring change; instances compare it to reload. */
  generation(): string {
    return `${this.prefix}generation`;
  }

  /** Pub/sub channel telling instances to reload now. */
  changes(): string {
    return `${this.prefix}changes`;
  }

  /** Pub/sub channel naming a client or an API that changed, so every instance drops its cached copy. */
  recordChanges(kind: 'clients' | 'resources'): string {
    return `${this.prefix}changes:${kind}`;
  }

  /** Revoked JWT access tokens are found through a reference only the server can compute. */
  jwtReference(jti: string): string {
    return this.#hash('jwt-reference', jti);
  }

  /**
   * The audit trail: a stream of sealed, hash-chained entries, its head (last sequence number and
   * hash) and its retention checkpoint. Appends and trims touch two of them at once, so they share
   * one hash slot on Redis Cluster (the `{audit}` hash tag).
   */
  auditLog(): string {
    return `${this.prefix}{audit}:log`;
  }

  auditHead(): string {
    return `${this.prefix}{audit}:head`;
  }

  auditCheckpoint(): string {
    return `${this.prefix}{audit}:checkpoint`;
  }

  /** Records of the JWT access tokens one key signed, by expiry, for an emergency rotation to revoke. */
  signedBy(kid: string): string {
    return `${this.prefix}signed-by-expiry:${kid}`;
  }

  /** Client id + grant or scope → the day it was last used (`doctor`'s least-privilege check). */
  clientUsage(): string {
    return `${this.prefix}client-usage`;
  }

  rateLimit(name: string): string {
    return `${this.prefix}rate-limit:${name}`;
  }

  /** A sign-in between its first and second factor, per interaction (sealed). */
  pendingSignIn(interactionUid: string): string {
    return `${this.prefix}sign-in:${this.#hash('sign-in', interactionUid)}`;
  }

  /** The last TOTP time step a user's code was accepted for (RFC 6238 §5.2: a code works once). */
  totpLastStep(sub: string): string {
    return `${this.prefix}totp-step:${this.#hash('totp-step', sub)}`;
  }

  /** A TOTP secret shown on the self-enrolment page, waiting for its confirming code (sealed). */
  totpEnrolment(sub: string): string {
    return `${this.prefix}totp-enrolment:${this.#hash('totp-enrolment', sub)}`;
  }

  /** Marks one recovery code (by its stored hash) as spent. */
  recoveryCodeSpent(codeHash: string): string {
    return `${this.prefix}recovery-spent:${this.#hash('recovery-spent', codeHash)}`;
  }

  /** One passkey (WebAuthn credential) by its credential id (sealed: key, counter, owner). */
  passkey(credentialId: string): string {
    return `${this.prefix}passkey:${this.#hash('passkey', credentialId)}`;
  }

  /** A user's passkeys: a set of sealed credential ids. */
  userPasskeys(sub: string): string {
    return `${this.prefix}user-passkeys:${this.#hash('user-passkeys', sub)}`;
  }

  /** A WebAuthn challenge waiting for its response, per ceremony (sealed, used once). */
  webauthnChallenge(ceremony: string): string {
    return `${this.prefix}webauthn-challenge:${this.#hash('webauthn-challenge', ceremony)}`;
  }
}
