import test from 'ava';
import type { Redis } from 'ioredis';
import { type RunningAuthServer, startAuthServer, testSecrets } from '../support/auth-server.ts';
import { connectRedis, deletePrefix, testPrefix } from '../support/redis.ts';

/**
 * Any OAuth parameter given twice is invalid_request, on our error page at the authorization and
 * logout endpoints (never a redirect: the target would be ambiguous) and in JSON elsewhere; and
 * redirect_uri is never optional, even for a client with one registered URI.
 */
const prefix = testPrefix('strict');
const secrets = testSecrets();
const api = 'https://api.strict.test';
const redirectUri = 'https://app.strict.test/callback';
let redis: Redis;
let server: RunningAuthServer;
let secret: string;

test.before(async () => {
  redis = await connectRedis();
  server = await startAuthServer({ prefix, secrets });
  await server.store.resources.add({ uri: api, scopes: ['policies:read'] });
  ({ client_secret: secret } = (await server.store.clients.add({
    id: 'strict-web',
    grants: ['authorization_code', 'refresh_token', 'client_credentials'],
    scope: ['openid', 'policies:read'],
    resources: [api],
    redirectUris: [redirectUri],
    postLogoutRedirectUris: [],
  })) as { client_secret: string });
});

test.after.always(async () => {
  await server?.close();
  if (redis) {
    await deletePrefix(redis, prefix);
    redis.disconnect();
  }
});

const authParams = (): [string, string][] => [
  ['client_id', 'strict-web'],
  ['response_type', 'code'],
  ['scope', 'openid'],
  ['redirect_uri', redirectUri],
  ['state', 'abc'],
  ['code_challenge', 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'],
  ['code_challenge_method', 'S256'],
];

/** The params with `name` given a second time (another value, or the same one). */
function twice(params: [string, string][], name: string, value?: string): URLSearchParams {
  const search = new URLSearchParams(params);
  search.append(name, value ?? search.get(name) ?? 'x');
  return search;
}

async function expectErrorPage(t: import('ava').ExecutionContext, response: Response, label: string) {
  t.is(response.status, 400, label);
  t.is(response.headers.get('location'), null, `${label}: never redirected`);
  t.regex(String(response.headers.get('content-type')), /^text\/html/, label);
  t.regex(await response.text(), /invalid_request/, label);
}

for (const [name, value] of [
  ['redirect_uri', 'https://evil.example/callback'],
  ['redirect_uri', undefined],
  ['client_id', 'someone-else'],
  ['state', 'other'],
  ['scope', 'openid policies:read'],
  ['response_type', undefined],
  ['code_challenge', undefined],
  ['resource', api],
] as const) {
  test(`/auth with ${name} twice${value ? '' : ' (same value)'} is invalid_request on our error page, GET and POST`, async (t) => {
    const params =
      name === 'resource' ? [...authParams(), ['resource', api] as [string, string]] : authParams();
    const query = twice(params, name, value);
    await expectErrorPage(t, await fetch(`${server.issuer}/auth?${query}`, { redirect: 'manual' }), 'GET');
    const posted = await fetch(`${server.issuer}/auth`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: query,
      redirect: 'manual',
    });
    await expectErrorPage(t, posted, 'POST');
  });
}

test('/auth without redirect_uri is refused on our error page, even with one registered URI', async (t) => {
  const query = new URLSearchParams(authParams().filter(([name]) => name !== 'redirect_uri'));
  await expectErrorPage(t, await fetch(`${server.issuer}/auth?${query}`, { redirect: 'manual' }), 'GET');
});

test('the logout endpoint shows repeated parameters on our error page too', async (t) => {
  const query = new URLSearchParams([
    ['client_id', 'strict-web'],
    ['client_id', 'strict-web'],
  ]);
  await expectErrorPage(
    t,
    await fetch(`${server.issuer}/session/end?${query}`, { redirect: 'manual' }),
    'GET',
  );
});

const basic = () => `Basic ${Buffer.from(`strict-web:${encodeURIComponent(secret)}`).toString('base64')}`;

async function postJson(path: string, body: URLSearchParams, auth = true) {
  const response = await fetch(`${server.issuer}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(auth ? { authorization: basic() } : {}),
    },
    body,
    redirect: 'manual',
  });
  return { status: response.status, json: (await response.json()) as Record<string, string> };
}

test('other endpoints answer a repeated parameter with invalid_request in JSON', async (t) => {
  const cases: [string, [string, string][]][] = [
    [
      '/token',
      [
        ['grant_type', 'client_credentials'],
        ['scope', 'policies:read'],
        ['scope', 'policies:read'],
      ],
    ],
    [
      '/token',
      [
        ['grant_type', 'client_credentials'],
        ['resource', api],
        ['resource', api],
      ],
    ],
    [
      '/token',
      [
        ['grant_type', 'authorization_code'],
        ['code', 'a'],
        ['code', 'b'],
        ['redirect_uri', redirectUri],
        ['code_verifier', 'x'.repeat(43)],
      ],
    ],
    [
      '/token/introspection',
      [
        ['token', 'a'],
        ['token', 'b'],
      ],
    ],
    [
      '/token/revocation',
      [
        ['token', 'a'],
        ['token_type_hint', 'access_token'],
        ['token_type_hint', 'refresh_token'],
      ],
    ],
    ['/request', [...authParams(), ['redirect_uri', 'https://evil.example/callback']]],
  ];
  for (const [path, params] of cases) {
    const { status, json } = await postJson(path, new URLSearchParams(params));
    t.is(status, 400, `${path} ${JSON.stringify(params)}`);
    t.is(json.error, 'invalid_request', path);
    t.regex(json.error_description ?? '', /provided twice/, path);
  }
  // In the query string too (userinfo takes its parameters there).
  const me = await fetch(`${server.issuer}/me?access_token=a&access_token=b`);
  t.is(me.status, 400);
  t.is(((await me.json()) as { error: string }).error, 'invalid_request');
});

test('the code exchange needs redirect_uri too', async (t) => {
  const { status, json } = await postJson(
    '/token',
    new URLSearchParams({ grant_type: 'authorization_code', code: 'unknown', code_verifier: 'x'.repeat(43) }),
  );
  t.is(status, 400, JSON.stringify(json));
  t.is(json.error, 'invalid_request');
  t.regex(json.error_description ?? '', /redirect_uri/);
});
