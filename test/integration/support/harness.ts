import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadResourceServerConfig } from '../../../src/config/resource-server-config.ts';
import { buildResourceServerApp } from '../../../src/resource-server/app.ts';
import { createLogger } from '../../../src/shared/logger.ts';
import type { RunningAuthServer } from '../../support/auth-server.ts';
import { type Served, serve } from '../../support/serve.ts';

export const silentLogger = createLogger('integration-test', 'silent');

export { type Served, serve };

/** The real sample resource server, configured the way main.ts configures it from the environment. */
export function startResourceServer(options: {
  issuer: string;
  audience: string;
  introspection?: { clientId: string; clientSecret: string };
  env?: Record<string, string>;
}): Promise<Served> {
  const config = loadResourceServerConfig({
    ISSUER: options.issuer,
    RS_AUDIENCE: options.audience,
    LOG_LEVEL: 'silent',
    ...(options.introspection
      ? {
          RS_INTROSPECTION_CLIENT_ID: options.introspection.clientId,
          RS_INTROSPECTION_CLIENT_SECRET: options.introspection.clientSecret,
        }
      : {}),
    ...options.env,
  });
  return serve(buildResourceServerApp({ config, logger: silentLogger }));
}

export interface JsonResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly json: Record<string, unknown>;
  readonly text: string;
}

/** fetch with a deadline, returning the body as text and (when it parses) as JSON. */
export async function call(url: string, init: RequestInit = {}): Promise<JsonResponse> {
  const response = await fetch(url, { signal: AbortSignal.timeout(10_000), ...init });
  const text = await response.text();
  let json: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed === 'object') json = parsed;
  } catch {
    // asserted by the caller
  }
  return { status: response.status, headers: response.headers, json, text };
}

export const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

export function postForm(url: string, body: Record<string, string>, headers: Record<string, string> = {}) {
  return call(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(body),
  });
}

export interface ClientCredentials {
  id: string;
  secret: string;
}

/** A client-credentials token from the real token endpoint; throws with the AS's answer on failure. */
export async function clientCredentialsToken(
  issuer: string,
  client: ClientCredentials,
  params: Record<string, string> = {},
): Promise<string> {
  const r = await postForm(
    `${issuer}/token`,
    { grant_type: 'client_credentials', ...params },
    { authorization: basic(client.id, client.secret) },
  );
  if (r.status !== 200 || typeof r.json.access_token !== 'string')
    throw new Error(`token endpoint answered ${r.status}: ${r.text}`);
  return r.json.access_token;
}

export function introspect(issuer: string, client: ClientCredentials, token: string) {
  return postForm(
    `${issuer}/token/introspection`,
    { token },
    { authorization: basic(client.id, client.secret) },
  );
}

export function revoke(issuer: string, client: ClientCredentials, token: string) {
  return postForm(
    `${issuer}/token/revocation`,
    { token },
    { authorization: basic(client.id, client.secret) },
  );
}

function cookiesFrom(headers: Headers): string {
  return headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
}

/**
 * The authorization code flow (PKCE S256) against the real AS, with the login step done in-process:
 * the interaction's result is written through the provider's own Interaction model (what the login
 * page does after checking the password), so no login UI is needed. Works for first-party clients,
 * which skip consent.
 */
export async function userTokens(
  as: RunningAuthServer,
  options: {
    client: ClientCredentials;
    redirectUri: string;
    accountId: string;
    scope: string;
    resource?: string;
  },
): Promise<{ access_token: string; id_token?: string; json: Record<string, unknown> }> {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const auth = new URL(`${as.issuer}/auth`);
  for (const [name, value] of Object.entries({
    client_id: options.client.id,
    response_type: 'code',
    redirect_uri: options.redirectUri,
    scope: options.scope,
    state: randomBytes(8).toString('hex'),
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ...(options.resource ? { resource: options.resource } : {}),
  }))
    auth.searchParams.set(name, value);

  const start = await fetch(auth, { redirect: 'manual', signal: AbortSignal.timeout(10_000) });
  await start.body?.cancel();
  const toInteraction = start.headers.get('location') ?? '';
  const uid = /\/interaction\/([^/?#]+)/.exec(toInteraction)?.[1];
  if (start.status !== 303 || !uid)
    throw new Error(`authorization request answered ${start.status} → ${toInteraction}`);

  const interaction = await as.host.provider.Interaction.find(uid);
  if (!interaction) throw new Error(`no interaction ${uid}`);
  interaction.result = { login: { accountId: options.accountId } };
  await interaction.save(Math.max(1, (interaction.exp ?? 0) - Math.floor(Date.now() / 1000)));

  const resumed = await fetch(`${as.issuer}/auth/${uid}`, {
    redirect: 'manual',
    headers: { cookie: cookiesFrom(start.headers) },
    signal: AbortSignal.timeout(10_000),
  });
  await resumed.body?.cancel();
  const back = new URL(resumed.headers.get('location') ?? '', as.issuer);
  const code = back.searchParams.get('code');
  if (!code) throw new Error(`resuming the authorization answered ${resumed.status} → ${back.href}`);

  const token = await postForm(
    `${as.issuer}/token`,
    {
      grant_type: 'authorization_code',
      code,
      redirect_uri: options.redirectUri,
      code_verifier: verifier,
      ...(options.resource ? { resource: options.resource } : {}),
    },
    { authorization: basic(options.client.id, options.client.secret) },
  );
  if (token.status !== 200 || typeof token.json.access_token !== 'string')
    throw new Error(`code exchange answered ${token.status}: ${token.text}`);
  return {
    access_token: token.json.access_token,
    id_token: typeof token.json.id_token === 'string' ? token.json.id_token : undefined,
    json: token.json,
  };
}

/** Polls `check` until it returns true or `timeoutMs` passes; returns whether it ever did. */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 5000, everyMs = 50) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Every file under a folder as text (binary files too, decoded as latin1 so any byte sequence shows). */
export function dumpFolder(folder: string): string {
  const parts: string[] = [];
  for (const name of readdirSync(folder)) {
    const path = join(folder, name);
    if (statSync(path).isDirectory()) parts.push(dumpFolder(path));
    else parts.push(path, readFileSync(path, 'latin1'));
  }
  return parts.join('\n');
}
