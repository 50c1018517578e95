import test from 'ava';
import { API, Deployment, startClientSite, type TestUser } from '../../e2e/support/deployment.ts';
import {
  authorizationRequest,
  exchangeCode,
  runAuthorization,
  UserAgent,
} from '../../e2e/support/user-agent.ts';
import type { RunningAuthServer } from '../../support/auth-server.ts';

/**
 * The authorization request's rules (PKCE, exact redirect URIs, PAR, and SPEC's scope rules:
 * nothing unregistered is silently dropped) and SPEC's logout rule (logout revokes the grant, so
 * its tokens go inactive, offline_access included).
 */
let deployment: Deployment;
let server: RunningAuthServer;
let site: Awaited<ReturnType<typeof startClientSite>>;
let user: TestUser;
let redirectUri: string;
let apiSecret: string;

test.before(async () => {
  deployment = await Deployment.create('test-scope-logout');
  server = await deployment.start();
  await deployment.addApi(server);
  site = await startClientSite();
  redirectUri = `${site.origin}/callback`;
  user = await deployment.addUser(server, 'scope.user@example.com');
  await server.store.clients.add({
    id: 'scope-app',
    grants: ['authorization_code', 'refresh_token'],
    scope: ['openid', 'offline_access', 'policies:read'],
    resources: [API],
    redirectUris: [redirectUri],
    postLogoutRedirectUris: [`${site.origin}/signed-out`],
    authMethod: 'none',
  });
  // A confidential client of the API, allowed to introspect its tokens.
  ({ client_secret: apiSecret } = (await server.store.clients.add({
    id: 'api-introspector',
    grants: ['client_credentials'],
    scope: ['policies:read'],
    resources: [API],
    redirectUris: [],
    postLogoutRedirectUris: [],
  })) as { client_secret: string });
});

test.after.always(async () => {
  await site?.close();
  await deployment?.cleanup();
});

/** Signs a user in through login and consent, then exchanges the code (PKCE) for tokens. */
async function signIn(
  params: Record<string, string>,
  credentials: TestUser = user,
  browser = new UserAgent(),
) {
  const request = authorizationRequest(server.issuer, {
    client_id: 'scope-app',
    redirect_uri: redirectUri,
    ...params,
  } as {
    client_id: string;
    redirect_uri: string;
    scope: string;
  });
  const flow = await runAuthorization(browser, request.url, redirectUri, { credentials, consent: 'approve' });
  return exchangeCode(server.issuer, flow.callback, {
    client_id: 'scope-app',
    redirect_uri: redirectUri,
    verifier: request.verifier,
  });
}

function refresh(refreshToken: string, extra: Record<string, string> = {}) {
  return fetch(`${server.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
      client_id: 'scope-app',
      ...extra,
    }),
  });
}

/** Whether introspection says active, asked by the token's own (public) client or by the API's client. */
async function isActive(token: string, askedBy: 'client' | 'api' = 'client') {
  const response = await fetch(`${server.issuer}/token/introspection`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(askedBy === 'api'
        ? { authorization: `Basic ${Buffer.from(`api-introspector:${apiSecret}`).toString('base64')}` }
        : {}),
    },
    body: new URLSearchParams({ token, ...(askedBy === 'client' ? { client_id: 'scope-app' } : {}) }),
  });
  return ((await response.json()) as { active: boolean }).active;
}

async function firstRedirect(url: string): Promise<URL> {
  const response = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(5000) });
  return new URL(response.headers.get('location') ?? '', url);
}

test('a scope the client is not registered for is invalid_scope at the authorization endpoint', async (t) => {
  for (const scope of ['openid unheard-of', 'openid claims:write']) {
    const { url, state } = authorizationRequest(server.issuer, {
      client_id: 'scope-app',
      redirect_uri: redirectUri,
      scope,
    });
    const back = await firstRedirect(url);
    t.is(back.origin + back.pathname, redirectUri, scope);
    t.is(back.searchParams.get('error'), 'invalid_scope', scope);
    t.is(back.searchParams.get('state'), state);
  }
});

test('a resource asked for with no scope of that resource is invalid_scope', async (t) => {
  const { url } = authorizationRequest(server.issuer, {
    client_id: 'scope-app',
    redirect_uri: redirectUri,
    scope: 'openid',
    resource: API,
  });
  t.is((await firstRedirect(url)).searchParams.get('error'), 'invalid_scope');
});

test('logout revokes the grant: refresh fails and the JWT access token introspects inactive, offline_access included', async (t) => {
  const browser = new UserAgent();
  const tokens = await signIn(
    { scope: 'openid offline_access policies:read', resource: API, prompt: 'consent' },
    user,
    browser,
  );
  t.truthy(tokens.refresh_token);
  t.true(await isActive(tokens.access_token as string, 'api'));

  const confirm = await browser.get(
    `${server.issuer}/session/end?${new URLSearchParams({ id_token_hint: tokens.id_token as string })}`,
  );
  const html = await confirm.text();
  const action = /<form id="op.logoutForm" method="post" action="([^"]+)"/.exec(html)?.[1] as string;
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)?.[1] as string;
  const done = await browser.postForm(new URL(action, server.issuer).href, { xsrf, logout: 'yes' });
  t.true(done.status < 400);

  t.false(await isActive(tokens.access_token as string, 'api'), 'the API token is inactive after logout');
  const refreshed = await refresh(tokens.refresh_token as string);
  t.is(refreshed.status, 400);
  t.is(((await refreshed.json()) as { error: string }).error, 'invalid_grant');
});

test('pushed authorization requests (RFC 9126) work, and get the same scope rules', async (t) => {
  const push = (scope: string) => {
    const { url } = authorizationRequest(server.issuer, {
      client_id: 'scope-app',
      redirect_uri: redirectUri,
      scope,
    });
    return fetch(`${server.issuer}/request`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URL(url).searchParams,
    });
  };
  const pushed = await push('openid policies:read');
  t.is(pushed.status, 201);
  const { request_uri, expires_in } = (await pushed.json()) as { request_uri: string; expires_in: number };
  t.regex(request_uri, /^urn:ietf:params:oauth:request_uri:/);
  t.true(expires_in > 0);
  const next = await firstRedirect(
    `${server.issuer}/auth?${new URLSearchParams({ client_id: 'scope-app', request_uri })}`,
  );
  t.regex(next.pathname, /^\/interaction\//, 'on to the login page');

  const refused = await push('openid unheard-of');
  t.is(refused.status, 400);
  t.is(((await refused.json()) as { error: string }).error, 'invalid_scope');
});

test('PKCE is required even for a request without code_challenge', async (t) => {
  const query = new URLSearchParams({
    client_id: 'scope-app',
    redirect_uri: redirectUri,
    response_type: 'code',
    scope: 'openid',
    state: 's1',
  });
  const back = await firstRedirect(`${server.issuer}/auth?${query}`);
  t.is(back.origin + back.pathname, redirectUri);
  t.is(back.searchParams.get('error'), 'invalid_request');
});

test('redirect URIs match exactly: a near miss gets an error page, never a redirect', async (t) => {
  for (const near of [
    `${redirectUri}/`,
    `${redirectUri}?x=1`,
    redirectUri.replace('127.0.0.1', 'localhost'),
    `${redirectUri}#f`,
  ]) {
    const { url } = authorizationRequest(server.issuer, {
      client_id: 'scope-app',
      redirect_uri: near,
      scope: 'openid',
    });
    const response = await fetch(url, { redirect: 'manual', headers: { accept: 'application/json' } });
    t.is(response.status, 400, near);
    t.is(response.headers.get('location'), null, near);
  }
});

test('one audience per token: the response scope is the token scope, API or userinfo (RFC 6749 §5.1)', async (t) => {
  const tokens = await signIn({
    scope: 'openid offline_access policies:read',
    resource: API,
    prompt: 'consent',
  });
  t.is(tokens.scope, 'policies:read', 'the code exchange gave the API token');

  const refreshed = async (refreshToken: string, extra: Record<string, string> = {}) =>
    (await (await refresh(refreshToken, extra)).json()) as Record<string, string>;
  const again = await refreshed(tokens.refresh_token as string);
  t.is(again.scope, 'policies:read', 'a refresh without resource keeps the API (RFC 8707 §2.2)');
  const forUserinfo = await refreshed(again.refresh_token as string, { scope: 'openid offline_access' });
  t.is(forUserinfo.scope, 'openid offline_access');
  const me = await fetch(`${server.issuer}/me`, {
    headers: { authorization: `Bearer ${forUserinfo.access_token}` },
  });
  t.is(me.status, 200);

  const forApi = await refreshed(forUserinfo.refresh_token as string, { resource: API });
  t.is(forApi.scope, 'policies:read');
  t.is(String(forApi.access_token).split('.').length, 3, 'a JWT for the API');
});

test('a removed user can no longer refresh, and their tokens read inactive', async (t) => {
  const leaving = await deployment.addUser(server, 'leaving.user@example.com');
  const tokens = await signIn({ scope: 'openid offline_access', prompt: 'consent' }, leaving);
  t.true(await isActive(tokens.access_token as string));
  await server.store.users.remove(leaving.email);
  t.false(await isActive(tokens.access_token as string), 'a token does not outlive its user');
  const refreshed = await refresh(tokens.refresh_token as string);
  t.is(refreshed.status, 400);
  t.is(((await refreshed.json()) as { error: string }).error, 'invalid_grant');
});

test('a client registered for refresh_token gets one in the code flow, prompt=consent or not', async (t) => {
  const without = await signIn({ scope: 'openid offline_access policies:read' });
  t.truthy(without.refresh_token, 'without prompt=consent');
  const withConsent = await signIn({ scope: 'openid offline_access policies:read', prompt: 'consent' });
  t.truthy(withConsent.refresh_token, 'with prompt=consent');
  t.not(withConsent.refresh_token, without.refresh_token);
});
