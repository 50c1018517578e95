import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { ConflictError, InvalidInputError, NotFoundError } from '../../shared/errors.ts';
import type { SealedBox } from '../../shared/sealing/index.ts';
import type { ConsentStore } from './consent-store.ts';
import type { Kv } from './kv.ts';
import { resealRecordIfStale } from './lazy-reseal.ts';
import { RecordCache } from './record-cache.ts';
import type { KeyNames } from './redis-keys.ts';
import { OPENID_SCOPES, type ResourceStore } from './resource-store.ts';

export const GRANTS = ['authorization_code', 'refresh_token', 'client_credentials'] as const;
export const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'] as const;
/** Public keys only: a JWKS carrying private members is refused rather than stored. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'];

export type Grant = (typeof GRANTS)[number];
export type AuthMethod = (typeof AUTH_METHODS)[number];

export interface ClientInput {
  id: string;
  grants: Grant[];
  scope: string[];
  resources: string[];
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  authMethod?: AuthMethod;
  jwks?: unknown;
  /** First-party clients skip the consent page. */
  firstParty?: boolean;
  /** Every sign-in for this client needs two factors (enrolment included when there is none). */
  requireMfa?: boolean;
}

/** The oidc-provider client metadata as stored (sealed) under the Client model key. */
export interface ClientMetadata {
  client_id: string;
  client_secret?: string;
  grant_types: Grant[];
  response_types: string[];
  redirect_uris: string[];
  post_logout_redirect_uris: string[];
  token_endpoint_auth_method: AuthMethod;
  jwks?: { keys: Record<string, unknown>[] };
  /**
   * The OpenID Connect scopes the client may request, as oidc-provider reads them. API scopes are
   * kept apart (resource_scopes): oidc-provider treats every scope it knows as an OpenID scope, so
   * registering API scopes with it would let them leak into userinfo tokens.
   */
  scope?: string;
  /** The API (resource) scopes the client may request, across its resources. */
  resource_scopes: string[];
  resources: string[];
  first_party: boolean;
  require_mfa?: boolean;
  created_at: string;
  [key: string]: unknown;
}

/** What `clients list` and `clients show` print: no secret, and one `scope` with everything registered. */
export type ClientView = Omit<ClientMetadata, 'client_secret' | 'resource_scopes'> & { scope: string };

/** The resources (APIs) a client may get tokens for; the first is its default. */
export function clientResources(client: object): string[] {
  const { resources } = client as { resources?: unknown };
  return Array.isArray(resources) ? resources.filter((r): r is string => typeof r === 'string') : [];
}

const scopesOf = new WeakMap<object, ReadonlySet<string>>();

/**
 * Every scope a client is registered for, OpenID and API alike. Worked out once per client object
 * (a registration's objects are cached and never change in place; a change makes new ones).
 */
export function registeredScopes(client: {
  scope?: unknown;
  resource_scopes?: unknown;
}): ReadonlySet<string> {
  let scopes = scopesOf.get(client);
  if (!scopes) {
    const oidc = typeof client.scope === 'string' ? client.scope.split(' ') : [];
    const api = Array.isArray(client.resource_scopes)
      ? client.resource_scopes.filter((s) => typeof s === 'string')
      : [];
    scopes = new Set([...oidc, ...api].filter(Boolean));
    scopesOf.set(client, scopes);
  }
  return scopes;
}

const redirectUri = z
  .url({ error: 'redirect URIs must be absolute URIs' })
  .refine((u) => !u.includes('#'), 'redirect URIs must not contain a fragment (RFC 6749 §3.1.2)');

const clientInput = z
  .object({
    // RFC 6749 Appendix A.1 allows any VSCHAR; spaces aside, so ids survive shells and logs intact.
    id: z.string().regex(/^[\x21-\x7E]{1,128}$/, 'client id: 1-128 visible ASCII characters, no spaces'),
    grants: z.array(z.enum(GRANTS)).min(1, 'at least one --grant'),
    scope: z.array(z.string()).min(1, '--scope needs at least one scope'),
    resources: z.array(z.url({ protocol: /^https?$/ })),
    redirectUris: z.array(redirectUri),
    postLogoutRedirectUris: z.array(redirectUri),
    authMethod: z.enum(AUTH_METHODS).optional(),
    jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1) }).optional(),
    firstParty: z.boolean().optional(),
    requireMfa: z.boolean().optional(),
  })
  .superRefine((c, ctx) => {
    const fail = (message: string) => ctx.addIssue({ code: 'custom', message });
    const authMethod = c.authMethod ?? 'client_secret_basic';
    if (c.grants.includes('authorization_code') && c.redirectUris.length === 0) {
      fail('authorization_code needs at least one --redirect-uri');
    }
    if (!c.grants.includes('authorization_code') && c.redirectUris.length > 0) {
      fail('--redirect-uri is only for authorization_code clients');
    }
    if (c.grants.includes('refresh_token') && !c.grants.includes('authorization_code')) {
      fail('refresh_token needs authorization_code');
    }
    if (authMethod === 'none' && c.grants.includes('client_credentials')) {
      fail('client_credentials needs an authenticated client (not --auth-method none)');
    }
    if (authMethod === 'private_key_jwt' && !c.jwks) fail('private_key_jwt needs --jwks-file');
    if (authMethod !== 'private_key_jwt' && c.jwks) fail('--jwks-file is only for private_key_jwt');
    for (const key of c.jwks?.keys ?? []) {
      if (PRIVATE_MEMBERS.some((m) => m in key)) fail('--jwks-file must hold public keys only');
    }
    if (c.grants.includes('client_credentials') && c.resources.length === 0) {
      fail('client_credentials needs at least one --resource');
    }
    // SPEC: admin tokens act for the client itself, never for a signed-in person (issue 9 #1).
    if (c.scope.some(isAdminScope) && c.grants.some((g) => g !== 'client_credentials')) {
      fail('admin:* scopes are only for clients whose only grant is client_credentials');
    }
  });

/** The admin API's scopes (`admin:keys`, `admin:clients`...): held only by client-credentials clients. */
export function isAdminScope(scope: string): boolean {
  return scope.startsWith('admin:');
}

/**
 * Clients live where oidc-provider looks for them (the Client model, sealed like every model), plus
 * an index of their ids. Secrets are 256-bit random values, shown once, kept only sealed: no
 * password hash, so authenticating a client costs one decryption, not an argon2 run.
 */
export class ClientStore {
  readonly #kv: Kv;
  readonly #keys: KeyNames;
  readonly #box: SealedBox;
  readonly #resources: ResourceStore;
  readonly #consents: ConsentStore;
  /** Every token request reads its client: served from memory, dropped on every change (record-cache.ts). */
  readonly cache: RecordCache<ClientMetadata>;

  constructor(kv: Kv, keys: KeyNames, box: SealedBox, resources: ResourceStore, consents: ConsentStore) {
    this.#kv = kv;
    this.#keys = keys;
    this.#box = box;
    this.#resources = resources;
    this.#consents = consents;
    this.cache = new RecordCache(kv, keys.recordChanges('clients'));
  }

  async add(input: ClientInput): Promise<{ client_id: string; client_secret?: string }> {
    const parsed = clientInput.safeParse(input);
    if (!parsed.success) throw new InvalidInputError(parsed.error.issues.map((i) => i.message).join('; '));
    const c = parsed.data;
    await this.#checkScopesAndResources(c.scope, c.resources);
    const authMethod = c.authMethod ?? 'client_secret_basic';
    const secret = authMethod.startsWith('client_secret') ? newSecret() : undefined;
    const metadata: ClientMetadata = {
      client_id: c.id,
      ...(secret ? { client_secret: secret } : {}),
      grant_types: [...new Set(c.grants)],
      response_types: c.grants.includes('authorization_code') ? ['code'] : [],
      redirect_uris: [...new Set(c.redirectUris)],
      post_logout_redirect_uris: [...new Set(c.postLogoutRedirectUris)],
      token_endpoint_auth_method: authMethod,
      ...(c.jwks ? { jwks: c.jwks } : {}),
      ...splitScopes(c.scope),
      resources: [...new Set(c.resources)],
      first_party: c.firstParty ?? false,
      ...(c.requireMfa ? { require_mfa: true } : {}),
      created_at: new Date().toISOString(),
    };
    if (!(await this.#kv.hashSetIfAbsent(this.#keys.clientIndex(), c.id, metadata.created_at))) {
      throw new ConflictError(`client ${c.id} exists`);
    }
    await this.#write(metadata);
    return { client_id: c.id, ...(secret ? { client_secret: secret } : {}) };
  }

  /**
   * The client for a token request: from the cache, as registered now (within
   * RECORD_CACHE_MAX_AGE_MS on an instance that missed a change message).
   */
  async get(id: string): Promise<ClientMetadata | undefined> {
    return this.cache.get(id, async () => (await this.#read(id))?.client);
  }

  /** The client as stored right now, never from the cache: for every decision that writes or grants. */
  async current(id: string): Promise<ClientMetadata | undefined> {
    return (await this.#read(id))?.client;
  }

  async #read(id: string): Promise<{ client: ClientMetadata; sealed: string } | undefined> {
    const key = this.#keys.model('Client', id);
    const record = await this.#kv.getRecord(key);
    if (!record) return undefined;
    const client = this.#box.openJson<ClientMetadata>(record.sealed, key);
    resealRecordIfStale(this.#kv, this.#box, key, record.sealed);
    return { client, sealed: record.sealed };
  }

  async show(id: string): Promise<ClientView> {
    const client = await this.current(id);
    if (!client) throw new NotFoundError(`no client ${id}`);
    return publicView(client);
  }

  async list(): Promise<ClientView[]> {
    const ids = Object.keys(await this.#kv.hashGetAll(this.#keys.clientIndex())).sort();
    const clients = await Promise.all(ids.map((id) => this.current(id)));
    return clients.filter((c): c is ClientMetadata => c !== undefined).map(publicView);
  }

  async remove(id: string): Promise<void> {
    if (!(await this.#kv.hashDelete(this.#keys.clientIndex(), id)))
      throw new NotFoundError(`no client ${id}`);
    await this.#kv.del(this.#keys.model('Client', id));
    await this.cache.changed(id);
    // Consent was given to this registration; an app registered later under the same id gets none.
    await this.#consents.removeClient(id);
  }

  /**
   * A new secret, written only over the registration it was made from (compare-and-swap on the
   * sealed record): a client removed or changed meanwhile, here or on another instance, is never
   * written back.
   */
  async rotateSecret(id: string): Promise<{ client_id: string; client_secret: string }> {
    const stored = await this.#read(id);
    if (!stored) throw new NotFoundError(`no client ${id}`);
    const { client } = stored;
    if (!client.token_endpoint_auth_method.startsWith('client_secret')) {
      throw new InvalidInputError(
        `client ${id} authenticates with ${client.token_endpoint_auth_method}: it has no secret`,
      );
    }
    const secret = newSecret();
    const key = this.#keys.model('Client', id);
    const swapped = await this.#kv.replaceRecord(
      key,
      stored.sealed,
      this.#box.sealJson({ ...client, client_secret: secret }, key),
    );
    if (swapped === 'missing') throw new NotFoundError(`no client ${id}`);
    if (swapped === 'changed')
      throw new ConflictError(`client ${id} changed meanwhile: rotate its secret again`);
    await this.cache.changed(id);
    return { client_id: id, client_secret: secret };
  }

  async #write(metadata: ClientMetadata): Promise<void> {
    const key = this.#keys.model('Client', metadata.client_id);
    await this.#kv.putRecord(key, this.#box.sealJson(metadata, key));
    await this.cache.changed(metadata.client_id);
  }

  async #checkScopesAndResources(scope: string[], resourceUris: string[]): Promise<void> {
    const resources = await Promise.all(
      resourceUris.map(async (uri) => [uri, await this.#resources.current(uri)] as const),
    );
    const missing = resources.filter(([, r]) => !r).map(([uri]) => uri);
    if (missing.length) {
      // The admin API's resource is the server's own: it appears when a server starts with ADMIN_PORT.
      throw new InvalidInputError(
        scope.some(isAdminScope)
          ? `unknown resource ${missing.join(', ')}: admin:* scopes are for the admin API's resource, which the server registers itself when it starts with ADMIN_PORT (ADMIN_AUDIENCE, default http://localhost:$ADMIN_PORT); start it that way first`
          : `unknown resource ${missing.join(', ')}: add it first (resources add)`,
      );
    }
    const useless = resources
      .filter(([, r]) => !r?.scopes.some((s) => scope.includes(s)))
      .map(([uri]) => uri);
    if (useless.length) {
      throw new InvalidInputError(
        `--scope has none of the scopes of ${useless.join(', ')}: no token could be issued for it`,
      );
    }
    const allowed = new Set<string>([...OPENID_SCOPES, ...resources.flatMap(([, r]) => r?.scopes ?? [])]);
    const unknown = scope.filter((s) => !allowed.has(s));
    if (unknown.length) {
      throw new InvalidInputError(
        `scope ${unknown.join(' ')} belongs to none of the client's resources nor OpenID Connect`,
      );
    }
  }
}

function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

function splitScopes(scopes: string[]): Pick<ClientMetadata, 'scope' | 'resource_scopes'> {
  const unique = [...new Set(scopes)];
  const oidc = unique.filter((s) => (OPENID_SCOPES as readonly string[]).includes(s));
  return {
    ...(oidc.length ? { scope: oidc.join(' ') } : {}),
    resource_scopes: unique.filter((s) => !oidc.includes(s)),
  };
}

function publicView(client: ClientMetadata): ClientView {
  const { client_secret: _secret, resource_scopes: _api, ...view } = client;
  return { ...view, scope: [...registeredScopes(client)].join(' ') };
}
