import { z } from 'zod';
import { MAX_TOKEN_LIFETIME_SECONDS } from '../../config/fields.ts';
import { InvalidInputError, NotFoundError } from '../../shared/errors.ts';
import type { Kv } from './kv.ts';
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
  created_at: string;
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
});

export function parseScope(scope: string): string[] {
  return [...new Set(scope.split(/\s+/).filter(Boolean))];
}

function validationMessage(error: z.ZodError): string {
  return error.issues.map((i) => i.message).join('; ');
}

/**
 * Resource servers (APIs) that tokens may be issued for, in one hash: resource URI → JSON. Read on
 * every token request, so a change applies at once on every instance.
 */
export class ResourceStore {
  readonly #kv: Kv;
  readonly #keys: KeyNames;
  constructor(kv: Kv, keys: KeyNames) {
    this.#kv = kv;
    this.#keys = keys;
  }

  async add(input: { uri: string; scopes: string[]; token_ttl?: number }): Promise<Resource> {
    const parsed = resourceInput.safeParse(input);
    if (!parsed.success) throw new InvalidInputError(validationMessage(parsed.error));
    const resource: Resource = {
      ...parsed.data,
      scopes: [...new Set(parsed.data.scopes)],
      created_at: new Date().toISOString(),
    };
    await this.#kv.hashSet(this.#keys.resources(), resource.uri, JSON.stringify(resource));
    return resource;
  }

  async get(uri: string): Promise<Resource | undefined> {
    const json = await this.#kv.hashGet(this.#keys.resources(), uri);
    return json ? (JSON.parse(json) as Resource) : undefined;
  }

  async list(): Promise<Resource[]> {
    const all = await this.#kv.hashGetAll(this.#keys.resources());
    return Object.values(all)
      .map((json) => JSON.parse(json) as Resource)
      .sort((a, b) => a.uri.localeCompare(b.uri));
  }

  async remove(uri: string): Promise<void> {
    if (!(await this.#kv.hashDelete(this.#keys.resources(), uri)))
      throw new NotFoundError(`no resource ${uri}`);
  }
}
