import test from 'ava';
import { API, Deployment, startClientSite, type TestUser } from '../../e2e/support/deployment.ts';
import { authorizationRequest, runAuthorization, UserAgent } from '../../e2e/support/user-agent.ts';
import type { RunningAuthServer } from '../../support/auth-server.ts';

/** Consent: remembered per client and scopes, asked again for new scopes, skipped for first parties. */
let deployment: Deployment;
let server: RunningAuthServer;
let site: Awaited<ReturnType<typeof startClientSite>>;
let redirectUri: string;

test.before(async () => {
  deployment = await Deployment.create('test-consent');
  server = await deployment.start();
  site = await startClientSite();
  redirectUri = `${site.origin}/callback`;
  await deployment.addApi(server);
  for (const [id, firstParty] of [
    ['third-party', false],
    ['first-party', true],
  ] as const) {
    await server.store.clients.add({
      id,
      grants: ['authorization_code'],
      scope: ['openid', 'profile', 'email', 'policies:read', 'policies:write'],
      resources: [API],
      redirectUris: [redirectUri],
      postLogoutRedirectUris: [],
      authMethod: 'none',
      firstParty,
    });
  }
});

test.after.always(async () => {
  await site?.close();
  await deployment?.cleanup();
});

function flow(
  agent: UserAgent,
  user: TestUser,
  client: string,
  scope: string,
  extra: Record<string, string> = {},
) {
  const { url } = authorizationRequest(server.issuer, {
    client_id: client,
    redirect_uri: redirectUri,
    scope,
    ...extra,
  });
  return runAuthorization(agent, url, redirectUri, { credentials: user });
}

test('consent is remembered per client and scopes, across sessions; new scopes ask again', async (t) => {
  const user = await deployment.addUser(server, 'consent.user@example.com');
  const browser = new UserAgent();
  const first = await flow(browser, user, 'third-party', 'openid email');
  t.deepEqual(first.pages, ['login', 'consent']);
  t.truthy(first.callback.searchParams.get('code'));

  // Same session, same scopes: straight back to the client.
  t.deepEqual((await flow(browser, user, 'third-party', 'openid email')).pages, []);

  // A new session (another browser): signs in, but is not asked again.
  t.deepEqual((await flow(new UserAgent(), user, 'third-party', 'openid email')).pages, ['login']);

  // A new scope asks again, and the page lists only what is new.
  const { url } = authorizationRequest(server.issuer, {
    client_id: 'third-party',
    redirect_uri: redirectUri,
    scope: 'openid email policies:read',
    resource: API,
  });
  const start = await browser.get(url);
  const page = await browser.get(new URL(start.headers.get('location') as string, server.issuer).href);
  const html = await page.text();
  t.regex(html, /<code class="scope">policies:read<\/code>/);
  t.notRegex(html, /<code class="scope">email<\/code>/);
  t.regex(html, /<button type="submit" class="button primary" autofocus>Allow<\/button>/);
  t.regex(html, new RegExp(`Access applies to <code>${API}</code>`));
  t.deepEqual(
    (await flow(browser, user, 'third-party', 'openid email policies:read', { resource: API })).pages,
    ['consent'],
  );
  t.deepEqual(
    (await flow(browser, user, 'third-party', 'openid email policies:read', { resource: API })).pages,
    [],
  );
});

test('denying consent returns access_denied to the client', async (t) => {
  const user = await deployment.addUser(server, 'denier@example.com');
  const { url, state } = authorizationRequest(server.issuer, {
    client_id: 'third-party',
    redirect_uri: redirectUri,
    scope: 'openid profile',
  });
  const result = await runAuthorization(new UserAgent(), url, redirectUri, {
    credentials: user,
    consent: 'deny',
  });
  t.is(result.callback.searchParams.get('error'), 'access_denied');
  t.is(result.callback.searchParams.get('state'), state);
  // Nothing was remembered: the next request asks again.
  t.deepEqual((await flow(new UserAgent(), user, 'third-party', 'openid profile')).pages, [
    'login',
    'consent',
  ]);
});

test('first-party clients skip the consent page, new scopes included', async (t) => {
  const user = await deployment.addUser(server, 'employee@example.com');
  const browser = new UserAgent();
  t.deepEqual((await flow(browser, user, 'first-party', 'openid email')).pages, ['login']);
  const wider = await flow(browser, user, 'first-party', 'openid email policies:write', { resource: API });
  t.deepEqual(wider.pages, []);
  t.truthy(wider.callback.searchParams.get('code'));
});

test('scopes the client is not registered for are refused, not widened', async (t) => {
  const { url } = authorizationRequest(server.issuer, {
    client_id: 'third-party',
    redirect_uri: redirectUri,
    scope: 'openid claims:read',
  });
  const response = await new UserAgent().get(url);
  const location = new URL(response.headers.get('location') as string);
  t.is(location.searchParams.get('error'), 'invalid_scope');
});

test('consent does not survive removing a client and registering one again under the same id', async (t) => {
  const user = await deployment.addUser(server, 'reregistered@example.com');
  const register = () =>
    server.store.clients.add({
      id: 'reregistered',
      grants: ['authorization_code'],
      scope: ['openid', 'email'],
      resources: [],
      redirectUris: [redirectUri],
      postLogoutRedirectUris: [],
      authMethod: 'none',
    });
  await register();
  t.deepEqual((await flow(new UserAgent(), user, 'reregistered', 'openid email')).pages, [
    'login',
    'consent',
  ]);
  t.deepEqual((await flow(new UserAgent(), user, 'reregistered', 'openid email')).pages, ['login']);
  t.truthy(await server.store.consents.get(user.sub, 'reregistered'));

  await server.store.clients.remove('reregistered');
  t.is(await server.store.consents.get(user.sub, 'reregistered'), undefined);
  await register();
  t.deepEqual(
    (await flow(new UserAgent(), user, 'reregistered', 'openid email')).pages,
    ['login', 'consent'],
    'the new registration asks for consent again',
  );
});
