import test from 'ava';
import type { Browser } from 'playwright-core';
import { loadDemoClientConfig } from '../../src/config/demo-client-config.ts';
import { loadResourceServerConfig } from '../../src/config/resource-server-config.ts';
import { buildDemoClientApp } from '../../src/demo-client/app.ts';
import { buildResourceServerApp } from '../../src/resource-server/app.ts';
import { createListener, listen } from '../../src/shared/listen.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { freePort } from '../support/auth-server.ts';
import { launchChromium, watchProblems } from './support/browser.ts';
import { Deployment } from './support/deployment.ts';

/**
 * `npm run demo-client` as a person uses it, in Debian's chromium: sign in (code + PKCE) at the
 * authorization server, read the ID token's claims, call the sample API, refresh, sign out.
 */
const logger = createLogger('demo-client-test', 'silent');
let browser: Browser;
let deployment: Deployment;
const closers: (() => void)[] = [];

test.before(async () => {
  browser = await launchChromium();
  deployment = await Deployment.create('e2e-demo-client');
});
test.after.always(async () => {
  for (const close of closers) close();
  await browser?.close();
  await deployment?.cleanup();
});

test('sign in, claims, API call, refresh and sign out through the demo client', async (t) => {
  const server = await deployment.start();
  const [rsPort, demoPort] = [await freePort(), await freePort()];
  const api = `http://127.0.0.1:${rsPort}`;
  const demoOrigin = `http://localhost:${demoPort}`;
  await server.store.resources.add({
    uri: api,
    scopes: ['policies:read', 'policies:write', 'claims:read', 'claims:write', 'reports:read'],
  });
  const user = await deployment.addUser(server, 'demo.person@example.com');
  // The demo store's demo-web client, registered for this test's port.
  await server.store.clients.add({
    id: 'demo-web',
    grants: ['authorization_code', 'refresh_token'],
    scope: ['openid', 'profile', 'email', 'offline_access', 'policies:read', 'policies:write', 'claims:read'],
    resources: [api],
    redirectUris: [`${demoOrigin}/callback`],
    postLogoutRedirectUris: [`${demoOrigin}/`],
    authMethod: 'none',
  });

  const rs = createListener(
    buildResourceServerApp({
      config: loadResourceServerConfig({ ISSUER: server.issuer, RS_AUDIENCE: api, LOG_LEVEL: 'silent' }),
      logger,
    }).callback(),
  );
  await listen(rs, rsPort, '127.0.0.1', 'RS_PORT');
  closers.push(() => rs.close());
  const config = loadDemoClientConfig({
    ISSUER: server.issuer,
    DEMO_CLIENT_PORT: String(demoPort),
    DEMO_API_URL: api,
  });
  t.is(config.baseUrl, demoOrigin);
  const demo = createListener(buildDemoClientApp({ config, logger }).callback());
  await listen(demo, demoPort, 'localhost', 'DEMO_CLIENT_PORT');
  closers.push(() => demo.close());

  const context = await browser.newContext();
  const { problems } = watchProblems(context);
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);

  await page.goto(`${demoOrigin}/`);
  t.is(await page.title(), 'Signed out · Demo client');
  await page.getByRole('link', { name: 'Sign in' }).click();

  // At the authorization server: the login page, then consent.
  await page.getByLabel('Email address').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Allow' }).click();

  // Back at the demo client, signed in: the ID token's claims.
  await page.waitForURL(`${demoOrigin}/`);
  t.is(await page.title(), 'Signed in · Demo client');
  const claims = (await page.locator('#claims').textContent()) ?? '';
  t.true(claims.includes(`"${user.sub}"`), 'sub is the user');
  t.true(claims.includes(`"${server.issuer}"`), 'iss is the issuer');
  t.true(claims.includes('"demo-web"'), 'aud is the client');

  // The sample API with the access token: create a policy, then list it.
  await page.getByRole('button', { name: 'Call the API: create a policy' }).click();
  t.regex((await page.locator('h2', { hasText: 'POST /policies' }).textContent()) ?? '', /: 201$/);
  await page.getByRole('button', { name: 'Call the API: list my policies' }).click();
  t.regex((await page.locator('h2', { hasText: 'GET /policies' }).textContent()) ?? '', /: 200$/);
  const listed = JSON.parse((await page.locator('#result').textContent()) ?? '') as { holder: string }[];
  t.is(listed.length, 1);
  t.is(listed[0]?.holder, user.sub);

  // Refresh: new tokens, and the API still answers with them.
  await page.getByRole('button', { name: 'Refresh the tokens' }).click();
  t.is(await page.locator('h2', { hasText: 'Refresh' }).textContent(), 'Refresh: new tokens');
  t.true(((await page.locator('main').textContent()) ?? '').includes('refreshed 1 time(s)'));
  await page.getByRole('button', { name: 'Call the API: list my policies' }).click();
  t.regex((await page.locator('h2', { hasText: 'GET /policies' }).textContent()) ?? '', /: 200$/);

  // Sign out: the server's confirmation page, then back to the demo client, signed out.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('button', { name: 'Yes, sign me out' }).click();
  await page.waitForURL(`${demoOrigin}/`);
  t.is(await page.title(), 'Signed out · Demo client');
  t.deepEqual(await deployment.keys('oidc:Session:*'), [], 'the session is gone at the server');

  t.deepEqual(problems, [], 'no console errors and no CSP violations');
  await context.close();
});
