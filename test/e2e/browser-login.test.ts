import test from 'ava';
import type { Browser } from 'playwright-core';
import { freePort, type RunningAuthServer } from '../support/auth-server.ts';
import { launchChromium, watchProblems } from './support/browser.ts';
import { API, Deployment, startClientSite } from './support/deployment.ts';
import { authorizationRequest, exchangeCode } from './support/user-agent.ts';

/**
 * A real browser (Debian chromium) through login and consent to a code and tokens, with
 * JavaScript on and off, with no console errors and no CSP violations; the session survives a
 * server restart; RP-initiated logout ends it.
 */
let browser: Browser;
let site: Awaited<ReturnType<typeof startClientSite>>;
const deployments: Deployment[] = [];

test.before(async () => {
  browser = await launchChromium();
  site = await startClientSite();
});

test.after.always(async () => {
  await browser?.close();
  await site?.close();
  await Promise.allSettled(deployments.map((d) => d.cleanup()));
});

for (const javaScriptEnabled of [true, false]) {
  test(`login, consent, tokens, restart and logout in chromium with JavaScript ${javaScriptEnabled ? 'on' : 'off'}`, async (t) => {
    const deployment = await Deployment.create(`test-browser-${javaScriptEnabled ? 'js' : 'nojs'}`);
    deployments.push(deployment);
    const port = await freePort();
    let server: RunningAuthServer = await deployment.start({ port });
    await deployment.addApi(server);
    const user = await deployment.addUser(server, 'browser.user@example.com');
    const redirectUri = `${site.origin}/callback`;
    const signedOutUri = `${site.origin}/signed-out`;
    await server.store.clients.add({
      id: 'spa',
      grants: ['authorization_code'],
      scope: ['openid', 'profile', 'email', 'policies:read'],
      resources: [API],
      redirectUris: [redirectUri],
      postLogoutRedirectUris: [signedOutUri],
      authMethod: 'none',
    });

    const context = await browser.newContext({ javaScriptEnabled });
    const { problems } = watchProblems(context);
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);

    // The watcher does see a CSP violation (a page that breaks its own policy).
    await page.goto(`${site.origin}/csp-canary`);
    await page.waitForTimeout(100);
    t.true(
      problems.some((p) => /content security policy|CSP violation/i.test(p)),
      'the watcher catches violations',
    );
    problems.length = 0;

    // Login page: labelled inputs, focus starts on the email field, tab order email → password → submit.
    const request = authorizationRequest(server.issuer, {
      client_id: 'spa',
      redirect_uri: redirectUri,
      scope: 'openid email policies:read',
      resource: API,
    });
    await page.goto(request.url);
    t.is(await page.title(), 'Sign in · Insurance Account');
    t.is(await page.locator(':focus').getAttribute('id'), 'email');
    await page.keyboard.press('Tab');
    t.is(await page.locator(':focus').getAttribute('id'), 'password');
    await page.keyboard.press('Tab');
    t.is((await page.locator(':focus').textContent())?.trim(), 'Sign in');

    // A wrong password first: the error is shown in an alert.
    await page.getByLabel('Email address').fill(user.email);
    await page.getByLabel('Password').fill('definitely not it');
    await page.getByRole('button', { name: 'Sign in' }).click();
    t.regex((await page.getByRole('alert').textContent()) ?? '', /incorrect/);

    await page.getByLabel('Password').fill(user.password);
    await page.getByRole('button', { name: 'Sign in' }).click();

    // Consent page, then back to the client with a code.
    await page.getByRole('heading', { name: /spa wants to access your account/ }).waitFor();
    t.regex((await page.locator('.permissions').textContent()) ?? '', /See your insurance policies/);
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL(`${redirectUri}?**`);
    const callback = new URL(page.url());
    t.is(callback.searchParams.get('state'), request.state);
    const tokens = await exchangeCode(server.issuer, callback, {
      client_id: 'spa',
      redirect_uri: redirectUri,
      verifier: request.verifier,
    });
    t.truthy(tokens.id_token);
    t.truthy(tokens.access_token);

    // The server restarts (a new instance on the same address and Redis): the cookie still signs in.
    await deployment.stop(server);
    server = await deployment.start({ port });
    const again = authorizationRequest(server.issuer, {
      client_id: 'spa',
      redirect_uri: redirectUri,
      scope: 'openid email policies:read',
      resource: API,
    });
    await page.goto(again.url);
    await page.waitForURL(`${redirectUri}?**`);
    t.truthy(
      new URL(page.url()).searchParams.get('code'),
      'single sign-on after the restart, consent remembered',
    );

    // RP-initiated logout: our confirmation page, then back to the registered URI.
    const sessions = await deployment.keys('oidc:Session:*');
    t.is(sessions.length, 1);
    const logout = new URLSearchParams({
      id_token_hint: tokens.id_token as string,
      post_logout_redirect_uri: signedOutUri,
      state: 'after-logout',
    });
    await page.goto(`${server.issuer}/session/end?${logout}`);
    t.is(await page.title(), 'Sign out · Insurance Account');
    await page.getByRole('button', { name: 'Yes, sign me out' }).click();
    await page.waitForURL(`${signedOutUri}?**`);
    t.is(new URL(page.url()).searchParams.get('state'), 'after-logout');
    t.deepEqual(await deployment.keys('oidc:Session:*'), [], 'the session is gone from Redis');

    t.deepEqual(problems, [], 'no console errors and no CSP violations');
    await context.close();
  });
}
