import test from 'ava';
import { Deployment, startClientSite, type TestUser } from '../../e2e/support/deployment.ts';
import {
  authorizationRequest,
  exchangeCode,
  runAuthorization,
  UserAgent,
} from '../../e2e/support/user-agent.ts';
import type { RunningAuthServer } from '../../support/auth-server.ts';
import { freePort } from '../../support/auth-server.ts';

/**
 * Sessions live in Redis: a login on one instance is single sign-on on another behind the same
 * issuer, and RP-initiated logout ends the session there and honours post_logout_redirect_uri.
 */
let deployment: Deployment;
let a: RunningAuthServer;
let b: RunningAuthServer;
let site: Awaited<ReturnType<typeof startClientSite>>;
let user: TestUser;
let redirectUri: string;
let loggedOutUri: string;

test.before(async () => {
  deployment = await Deployment.create('test-sessions');
  // Two instances of one deployment: one public issuer (the load balancer's address), two ports.
  const issuerPort = await freePort();
  const issuer = `http://127.0.0.1:${issuerPort}`;
  a = await deployment.start({ port: issuerPort });
  b = await deployment.start({ env: { ISSUER: issuer } });
  site = await startClientSite();
  redirectUri = `${site.origin}/callback`;
  loggedOutUri = `${site.origin}/signed-out`;
  user = await deployment.addUser(a, 'sso.user@example.com');
  await a.store.clients.add({
    id: 'sso-app',
    grants: ['authorization_code'],
    scope: ['openid', 'email'],
    resources: [],
    redirectUris: [redirectUri],
    postLogoutRedirectUris: [loggedOutUri],
    authMethod: 'none',
    firstParty: true,
  });
});

test.after.always(async () => {
  await site?.close();
  await deployment?.cleanup();
});

/** The same request sent to one instance's own port (a load balancer picking that instance). */
function via(server: RunningAuthServer, url: string): string {
  const target = new URL(url);
  target.port = String(server.port);
  return target.href;
}

async function signInOn(server: RunningAuthServer, agent: UserAgent, credentials?: TestUser) {
  const request = authorizationRequest(a.issuer, {
    client_id: 'sso-app',
    redirect_uri: redirectUri,
    scope: 'openid email',
  });
  const result = await runAuthorization(agent, via(server, request.url), redirectUri, { credentials });
  return { ...result, request };
}

test.serial('a login on one instance is single sign-on on another', async (t) => {
  t.is(a.issuer, b.issuer);
  const browser = new UserAgent();
  const first = await signInOn(a, browser, user);
  t.deepEqual(first.pages, ['login']);

  // No credentials given: a login page would fail the flow.
  const second = await signInOn(b, browser);
  t.deepEqual(second.pages, []);
  const tokens = await exchangeCode(b.issuer, second.callback, {
    client_id: 'sso-app',
    redirect_uri: redirectUri,
    verifier: second.request.verifier,
  });
  t.truthy(tokens.id_token);
  t.is((await deployment.keys('oidc:Session:*')).length, 1, 'one session, in Redis');
});

test.serial(
  'RP-initiated logout ends the session in Redis and returns to post_logout_redirect_uri',
  async (t) => {
    const browser = new UserAgent();
    const signedIn = await signInOn(a, browser, user);
    const tokens = await exchangeCode(a.issuer, signedIn.callback, {
      client_id: 'sso-app',
      redirect_uri: redirectUri,
      verifier: signedIn.request.verifier,
    });
    const sessionsBefore = await deployment.keys('oidc:Session:*');
    t.true(sessionsBefore.length >= 1);

    const query = new URLSearchParams({
      id_token_hint: tokens.id_token as string,
      post_logout_redirect_uri: loggedOutUri,
      state: 'bye-123',
    });
    const confirm = await browser.get(via(b, `${a.issuer}/session/end?${query}`));
    t.is(confirm.status, 200);
    const csp = confirm.headers.get('content-security-policy') ?? '';
    t.notRegex(csp, /unsafe-inline/);
    t.regex(csp, new RegExp(`form-action 'self' ${site.origin}`));
    const html = await confirm.text();
    t.notRegex(html, /<script/i);
    // Posted the way a form is posted without scripts: the first form's own inputs, nothing added.
    const firstForm = /<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/.exec(html);
    const action = firstForm?.[1] as string;
    const inputs = Object.fromEntries(
      [...(firstForm?.[2] ?? '').matchAll(/<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g)].map((m) => [
        m[1],
        m[2],
      ]),
    );
    t.is(inputs.logout, 'yes', 'the sign-out form says what it means by itself');
    t.truthy(inputs.xsrf);

    const done = await browser.postForm(via(a, action), inputs as Record<string, string>);
    t.is(done.status, 303);
    const back = new URL(done.headers.get('location') as string);
    t.is(`${back.origin}${back.pathname}`, loggedOutUri);
    t.is(back.searchParams.get('state'), 'bye-123');

    // This browser's session is gone from Redis; other browsers' sessions are untouched.
    const sessionsAfter = await deployment.keys('oidc:Session:*');
    t.is(sessionsAfter.length, sessionsBefore.length - 1);
    t.true(sessionsAfter.every((key) => sessionsBefore.includes(key)));
    // The browser is signed out everywhere: the next request shows the login page again.
    const again = await signInOn(b, browser, user);
    t.deepEqual(again.pages, ['login']);
  },
);

test.serial('an unregistered post_logout_redirect_uri is refused', async (t) => {
  const browser = new UserAgent();
  const signedIn = await signInOn(a, browser, user);
  const tokens = await exchangeCode(a.issuer, signedIn.callback, {
    client_id: 'sso-app',
    redirect_uri: redirectUri,
    verifier: signedIn.request.verifier,
  });
  const query = new URLSearchParams({
    id_token_hint: tokens.id_token as string,
    post_logout_redirect_uri: 'https://evil.example/',
  });
  const response = await browser.get(`${a.issuer}/session/end?${query}`);
  t.is(response.status, 400);
  const html = await response.text();
  t.regex(html, /We could not continue/);
  t.notRegex(response.headers.get('content-security-policy') ?? '', /unsafe-inline/);
});

test.serial(
  'a code made on one instance is redeemed on another, and its refresh token used on a third hop',
  async (t) => {
    await a.store.clients.add({
      id: 'sso-offline',
      grants: ['authorization_code', 'refresh_token'],
      scope: ['openid', 'offline_access'],
      resources: [],
      redirectUris: [redirectUri],
      postLogoutRedirectUris: [],
      authMethod: 'none',
    });
    const request = authorizationRequest(a.issuer, {
      client_id: 'sso-offline',
      redirect_uri: redirectUri,
      scope: 'openid offline_access',
      prompt: 'consent',
    });
    const flow = await runAuthorization(new UserAgent(), via(b, request.url), redirectUri, {
      credentials: user,
      consent: 'approve',
    });
    // Redeemed on instance a (the public issuer's port), though instance b issued the code.
    const tokens = await exchangeCode(a.issuer, flow.callback, {
      client_id: 'sso-offline',
      redirect_uri: redirectUri,
      verifier: request.verifier,
    });
    t.truthy(tokens.refresh_token);
    const refresh = (server: RunningAuthServer, refreshToken: string) =>
      fetch(via(server, `${a.issuer}/token`), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'refresh_token',
          refresh_token: refreshToken,
          client_id: 'sso-offline',
        }),
      });
    const onB = await refresh(b, tokens.refresh_token as string);
    t.is(onB.status, 200);
    const rotated = ((await onB.json()) as { refresh_token: string }).refresh_token;
    t.not(rotated, tokens.refresh_token);
    // The spent one, replayed on the other instance, is reuse: refused, and the grant goes with it.
    t.is((await refresh(a, tokens.refresh_token as string)).status, 400);
    t.is((await refresh(b, rotated)).status, 400);
  },
);
