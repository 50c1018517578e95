import { z } from 'zod';
import { MAX_TOKEN_LIFETIME_SECONDS } from '../../config/fields.ts';
import { InvalidInputError, NotFoundError } from '../../shared/errors.ts';
import { SIGNING_ALGS, type SigningAlg } from '../keys/signing-key-ring.ts';
import type { Kv } from './kv.ts';
import { RecordCache } from './record-cache.ts';
import type { KeyNames } from './redis-keys.ts';

/** Scopes oidc-provider owns; a resource may not claim them. */
export const OPENID_SCOPES = ['openid', 'offline_access', 'profile', 'email'] as const;

/** RFC 6749 §3.3 scope-token. */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

export interface Resource {
  uri: string;
  scopes: string[];
  /** Access token lifetime in seconds for this API; unset: ACCESS_TOKEN_TTL. */
  token_ttl?: number;
  /** The algorithm its access tokens are signed with: the one it names, or ACCESS_TOKEN_ALG. */
  alg: SigningAlg;
  created_at: string;
}

/** As stored: `alg` only when the API names one, so ACCESS_TOKEN_ALG keeps applying to the others. */
type StoredResource = Omit<Resource, 'alg'> & { alg?: SigningAlg };

export interface ResourceStoreOptions {
  /** ACCESS_TOKEN_ALG: the algorithm of resources that name none. */
  defaultAlg: SigningAlg;
  /** Makes sure the key ring has a family for an algorithm before an API may name it. */
  ensureKeyFamily: (alg: SigningAlg) => Promise<unknown>;
}

const resourceInput = z.object({
  uri: z
    .url({ protocol: /^https?$/, error: 'the resource must be an absolute http(s) URI' })
    .refine((uri) => !uri.includes('#'), 'the resource must not contain a fragment (RFC 8707 §2)'),
  scopes: z
    .array(
      z
        .string()
        .regex(SCOPE_TOKEN, 'scope values are RFC 6749 scope-tokens')
        .refine(
          (s) => !(OPENID_SCOPES as readonly string[]).includes(s),
          'OpenID Connect scopes are not resource scopes',
        ),
    )
    .min(1, 'at least one scope'),
  token_ttl: z.number().int().min(1).max(MAX_TOKEN_LIFETIME_SECONDS).optional(),
  alg: z.enum(SIGNING_ALGS, { error: `alg: one of ${SIGNING_ALGS.join(', ')}` }).optional(),
});

export function parseScope(scope: string): string[] {
  return [...new Set(scope.split(/\s+/).filter(Boolean))];
}

function validationMessage(error: z.ZodError): string {
  return error.issues.map((i) => i.message).join('; ');
}

/**
 * Resource servers (APIs) that tokens may be issued for, in one hash: resource URI → JSON. Read on
 * every token request, so served from memory; a change drops the cached copy at once on the
 * instance that made it and through pub/sub on every other (record-cache.ts).
 */
export class ResourceStore {
  readonly #kv: Kv;
  readonly #keys: KeyNames;
  readonly #options: ResourceStoreOptions;
  readonly cache: RecordCache<Resource>;

  constructor(kv: Kv, keys: KeyNames, options: ResourceStoreOptions) {
    this.#kv = kv;
    this.#keys = keys;
    this.#options = options;
    this.cache = new RecordCache(kv, keys.recordChanges('resources'));
  }

  async add(input: { uri: string; scopes: string[]; token_ttl?: number; alg?: string }): Promise<Resource> {
    const parsed = resourceInput.safeParse(input);
    if (!parsed.success) throw new InvalidInputError(validationMessage(parsed.error));
    const { alg, ...rest } = parsed.data;
    const stored: StoredResource = {
      ...rest,
      scopes: [...new Set(parsed.data.scopes)],
      ...(alg ? { alg } : {}),
      created_at: new Date().toISOString(),
    };
    // Keys first: once the API is listed, tokens for it are signed with its algorithm.
    if (alg) await this.#options.ensureKeyFamily(alg);
    await this.#kv.hashSet(this.#keys.resources(), stored.uri, JSON.stringify(stored));
    await this.cache.changed(stored.uri);
    return this.#view(stored);
  }

  /** The API for a token request: from the cache (record-cache.ts). */
  async get(uri: string): Promise<Resource | undefined> {
    return this.cache.get(uri, () => this.current(uri));
  }

  /** The API as stored right now, never from the cache: for decisions that write. */
  async current(uri: string): Promise<Resource | undefined> {
    const json = await this.#kv.hashGet(this.#keys.resources(), uri);
    return json ? this.#view(JSON.parse(json) as StoredResource) : undefined;
  }

  async list(): Promise<Resource[]> {
    const all = await this.#kv.hashGetAll(this.#keys.resources());
    return Object.values(all)
      .map((json) => this.#view(JSON.parse(json) as StoredResource))
      .sort((a, b) => a.uri.localeCompare(b.uri));
  }

  /** The algorithms resources name themselves (the key ring keeps a family for each). */
  async namedAlgs(): Promise<SigningAlg[]> {
    const all = await this.#kv.hashGetAll(this.#keys.resources());
    const named = Object.values(all).map((json) => (JSON.parse(json) as StoredResource).alg);
    return [...new Set(named.filter((alg): alg is SigningAlg => alg !== undefined))];
  }

  #view(stored: StoredResource): Resource {
    return { ...stored, alg: stored.alg ?? this.#options.defaultAlg };
  }

  async remove(uri: string): Promise<void> {
    if (!(await this.#kv.hashDelete(this.#keys.resources(), uri)))
      throw new NotFoundError(`no resource ${uri}`);
    await this.cache.changed(uri);
  }
}
