import test from 'ava';
import { Deployment, startClientSite, type TestUser } from '../../e2e/support/deployment.ts';
import { authorizationRequest, UserAgent } from '../../e2e/support/user-agent.ts';
import type { RunningAuthServer } from '../../support/auth-server.ts';

let deployment: Deployment;
let server: RunningAuthServer;
let site: Awaited<ReturnType<typeof startClientSite>>;
let user: TestUser;
let redirectUri: string;

test.before(async () => {
  deployment = await Deployment.create('test-login');
  server = await deployment.start();
  site = await startClientSite();
  redirectUri = `${site.origin}/callback`;
  user = await deployment.addUser(server, 'login.user@example.com');
  await server.store.clients.add({
    id: 'login-app',
    grants: ['authorization_code'],
    scope: ['openid', 'email'],
    resources: [],
    redirectUris: [redirectUri],
    postLogoutRedirectUris: [],
    authMethod: 'none',
  });
});

test.after.always(async () => {
  await site?.close();
  await deployment?.cleanup();
});

/** A fresh browser at the login page: the agent, the page's HTML and the interaction's login URL. */
async function openLoginPage() {
  const agent = new UserAgent();
  const { url } = authorizationRequest(server.issuer, {
    client_id: 'login-app',
    redirect_uri: redirectUri,
    scope: 'openid email',
  });
  const start = await agent.get(url);
  const pageUrl = new URL(start.headers.get('location') as string, server.issuer).href;
  const page = await agent.get(pageUrl);
  return { agent, pageUrl, page, html: await page.text(), loginUrl: `${pageUrl}/login` };
}

test('the login page is a plain HTML form with labelled email and password inputs', async (t) => {
  const { html, page } = await openLoginPage();
  t.is(page.status, 200);
  t.regex(page.headers.get('content-type') ?? '', /^text\/html/);
  t.regex(html, /<form method="post" action="\/interaction\/[^"]+\/login"/);
  t.regex(html, /<label for="email">/);
  t.regex(html, /<input id="email" name="email" type="email"/);
  t.regex(html, /<label for="password">/);
  t.regex(html, /<input id="password" name="password" type="password"/);
  t.regex(html, /<button type="submit"[^>]*>Sign in<\/button>/);
  t.notRegex(html, /<script/i, 'no script: the page works with JavaScript off');
  t.notRegex(html, /style=/i, 'no inline style: the CSP forbids it');
  t.regex(html, /<link rel="stylesheet" href="\/assets\/app.css">/);
});

test('pages carry a CSP without unsafe-inline, nosniff, no framing and a referrer policy', async (t) => {
  const { page } = await openLoginPage();
  const csp = page.headers.get('content-security-policy') ?? '';
  t.regex(csp, /default-src 'none'/);
  t.regex(csp, /frame-ancestors 'none'/);
  t.regex(csp, /form-action 'self'/);
  t.notRegex(csp, /unsafe-inline|unsafe-eval/);
  t.is(page.headers.get('x-content-type-options'), 'nosniff');
  t.is(page.headers.get('x-frame-options'), 'DENY');
  t.is(page.headers.get('referrer-policy'), 'no-referrer');
  t.is(page.headers.get('cache-control'), 'no-store');

  const css = await fetch(`${server.issuer}/assets/app.css`);
  t.is(css.status, 200);
  t.regex(css.headers.get('content-type') ?? '', /^text\/css/);
  t.is(css.headers.get('x-content-type-options'), 'nosniff');
});

test('a wrong password and an unknown user get the same status and the same page', async (t) => {
  const wrongPassword = await openLoginPage();
  const unknownUser = await openLoginPage();
  const a = await wrongPassword.agent.postForm(wrongPassword.loginUrl, {
    email: user.email,
    password: 'not the password at all',
  });
  const b = await unknownUser.agent.postForm(unknownUser.loginUrl, {
    email: 'nobody@example.com',
    password: 'not the password at all',
  });
  t.is(a.status, b.status);
  t.is(a.status, 200);
  // Identical but for the echoed email and the interaction id in the form action.
  const normalise = (html: string, email: string) =>
    html.replaceAll(email, 'EMAIL').replace(/\/interaction\/[^/"]+\//g, '/interaction/UID/');
  t.is(normalise(await a.text(), user.email), normalise(await b.text(), 'nobody@example.com'));
  t.is(a.headers.get('retry-after'), b.headers.get('retry-after'));
});

test('the error is announced to assistive technology and focus goes back to the form', async (t) => {
  const { agent, loginUrl } = await openLoginPage();
  const response = await agent.postForm(loginUrl, { email: user.email, password: 'wrong password here' });
  const html = await response.text();
  t.regex(
    html,
    /<div class="alert" role="alert" id="form-error">\s*<p>The email address or password is incorrect.<\/p>/,
  );
  t.regex(html, /aria-describedby="form-error"/);
  t.regex(html, /value="login.user@example.com"/, 'the email is kept');
});

test('empty fields are refused without counting as a failed attempt', async (t) => {
  const { agent, loginUrl } = await openLoginPage();
  const response = await agent.postForm(loginUrl, { email: '', password: '' });
  t.is(response.status, 200);
  t.regex(await response.text(), /Enter your email address and your password/);
});

test('the correct password signs in and returns to the authorization endpoint', async (t) => {
  const { agent, loginUrl } = await openLoginPage();
  const response = await agent.postForm(loginUrl, {
    email: user.email.toUpperCase(),
    password: user.password,
  });
  t.is(response.status, 303);
  t.regex(response.headers.get('location') ?? '', /\/auth\/[^/]+$/);
});

test('form posts accept only urlencoded bodies, size-limited', async (t) => {
  const { agent, loginUrl } = await openLoginPage();
  const json = await agent.postRaw(
    loginUrl,
    JSON.stringify({ email: user.email, password: user.password }),
    'application/json',
  );
  t.is(json.status, 415);

  const page = await openLoginPage();
  const huge = await page.agent.postForm(page.loginUrl, { email: user.email, password: 'x'.repeat(20_000) });
  // The one 413 of the body step, the same on every endpoint (issue 9 #8).
  t.is(huge.status, 413);
  t.like(await huge.json(), { error: 'invalid_request' });
});

test('a login post without the interaction cookie is refused', async (t) => {
  const { loginUrl } = await openLoginPage();
  const stranger = new UserAgent();
  const response = await stranger.postForm(loginUrl, { email: user.email, password: user.password });
  t.is(response.status, 400);
  t.regex(await response.text(), /This sign-in has expired/);
});
