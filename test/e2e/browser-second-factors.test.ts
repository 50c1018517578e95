import test from 'ava';
import { decodeJwt } from 'jose';
import type { Browser, CDPSession, Page } from 'playwright-core';
import { ACR } from '../../src/authorization-server/second-factor/authentication-context.ts';
import { totpCode } from '../../src/authorization-server/second-factor/totp.ts';
import { TotpFactor } from '../../src/authorization-server/second-factor/totp-factor.ts';
import { freePort, type RunningAuthServer } from '../support/auth-server.ts';
import { dumpPrefix } from '../support/redis.ts';
import { launchChromium, watchProblems } from './support/browser.ts';
import { Deployment, startClientSite } from './support/deployment.ts';
import { authorizationRequest, exchangeCode } from './support/user-agent.ts';

/**
 * Second factors in a real browser (Debian chromium): the TOTP page with JavaScript off, and
 * passkeys through Chromium's virtual authenticator (DevTools WebAuthn domain): registration,
 * passwordless sign-in, passkey as the second factor, and a cloned authenticator refused. No
 * console errors and no CSP violations on the way.
 */
let browser: Browser;
let site: Awaited<ReturnType<typeof startClientSite>>;
let deployment: Deployment;
let server: RunningAuthServer;
let redirectUri: string;
const NOW = Date.now();

test.before(async () => {
  browser = await launchChromium();
  site = await startClientSite();
  redirectUri = `${site.origin}/callback`;
  deployment = await Deployment.create('test-browser-mfa');
  const port = await freePort();
  // WebAuthn needs a domain as relying party id: localhost, not 127.0.0.1.
  server = await deployment.start({ port, env: { ISSUER: `http://localhost:${port}` }, clock: () => NOW });
  await server.store.clients.add({
    id: 'mfa-spa',
    grants: ['authorization_code'],
    scope: ['openid', 'email'],
    resources: [],
    redirectUris: [redirectUri],
    postLogoutRedirectUris: [],
    authMethod: 'none',
    firstParty: true,
  });
});

test.after.always(async () => {
  await browser?.close();
  await site?.close();
  await deployment?.cleanup();
});

function request() {
  return authorizationRequest(server.issuer, {
    client_id: 'mfa-spa',
    redirect_uri: redirectUri,
    scope: 'openid email',
  });
}

/** Waits for the client's callback and exchanges the code: the ID token's claims. */
async function idTokenAt(page: Page, verifier: string) {
  await page.waitForURL((url) => url.href.startsWith(redirectUri));
  const tokens = await exchangeCode(server.issuer, new URL(page.url()), {
    client_id: 'mfa-spa',
    redirect_uri: redirectUri,
    verifier,
  });
  return decodeJwt(tokens.id_token as string);
}

async function signInWithPassword(page: Page, email: string, password: string) {
  await page.getByLabel('Email address').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

test('TOTP with JavaScript off: the code page after the password, amr pwd+otp', async (t) => {
  const user = await deployment.addUser(server, 'browser.totp@example.com');
  const { secret } = await new TotpFactor(server.store).enrolByEmail(user.email);
  const context = await browser.newContext({ javaScriptEnabled: false });
  const { problems } = watchProblems(context);
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const { url, verifier } = request();
  await page.goto(url);
  await signInWithPassword(page, user.email, user.password);

  t.is(await page.title(), 'Enter your code · Insurance Account');
  const code = page.getByLabel('Code from your authenticator app');
  t.is(await code.getAttribute('autocomplete'), 'one-time-code');
  t.is(await page.locator('input').count(), 1);
  t.is(await page.locator(':focus').getAttribute('id'), 'code');
  await code.fill('000000');
  await page.getByRole('button', { name: 'Continue' }).click();
  t.regex((await page.getByRole('alert').textContent()) ?? '', /did not work/);
  await page.getByLabel('Code from your authenticator app').fill(totpCode(secret, NOW));
  await page.getByRole('button', { name: 'Continue' }).click();

  const claims = await idTokenAt(page, verifier);
  t.deepEqual(claims.amr, ['pwd', 'otp']);
  t.is(claims.acr, ACR.multiFactor);
  t.deepEqual(problems, []);
  await context.close();
});

interface VirtualCredential {
  credentialId: string;
  isResidentCredential: boolean;
  rpId: string;
  privateKey: string;
  userHandle: string;
  signCount: number;
}

async function virtualAuthenticator(cdp: CDPSession): Promise<string> {
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return authenticatorId;
}

test('passkeys in chromium: register, sign in without a password, as a second factor, and a cloned authenticator refused', async (t) => {
  const user = await deployment.addUser(server, 'browser.passkey@example.com');
  const context = await browser.newContext();
  const { problems } = watchProblems(context);
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const cdp = await context.newCDPSession(page);
  const authenticatorId = await virtualAuthenticator(cdp);

  // Sign in with the password, then add a passkey on the account page.
  const first = request();
  await page.goto(first.url);
  await signInWithPassword(page, user.email, user.password);
  t.deepEqual((await idTokenAt(page, first.verifier)).amr, ['pwd']);
  await page.goto(`${server.issuer}/account/security`);
  await page.getByRole('button', { name: 'Add a passkey' }).click();
  await page.locator('#passkey-list li').first().waitFor();
  t.is(await page.locator('#passkey-list li').count(), 1);

  const { credentials } = (await cdp.send('WebAuthn.getCredentials', { authenticatorId })) as {
    credentials: VirtualCredential[];
  };
  t.is(credentials.length, 1);
  const credential = credentials[0] as VirtualCredential;
  t.true(credential.isResidentCredential, 'a discoverable credential');
  const credentialId = Buffer.from(credential.credentialId, 'base64').toString('base64url');
  const dump = await dumpPrefix(deployment.redis, deployment.prefix);
  t.false(dump.includes(credentialId), 'the credential id is sealed at rest');

  // Passwordless: a new browser session signs in with the passkey alone.
  await context.clearCookies();
  const passwordless = request();
  await page.goto(passwordless.url);
  await page.getByRole('link', { name: 'Sign in with a passkey' }).click();
  await page.getByRole('button', { name: 'Use a passkey' }).click();
  const claims = await idTokenAt(page, passwordless.verifier);
  t.is(claims.sub, user.sub);
  t.deepEqual(claims.amr, ['hwk']);
  t.is(claims.acr, ACR.multiFactor);

  // Second factor: the password first, then the passkey (the account's only second factor).
  await context.clearCookies();
  const twoStep = request();
  await page.goto(twoStep.url);
  await signInWithPassword(page, user.email, user.password);
  await page.getByRole('button', { name: 'Use a passkey' }).click();
  const twoFactor = await idTokenAt(page, twoStep.verifier);
  t.deepEqual(twoFactor.amr, ['pwd', 'hwk']);
  t.is(twoFactor.acr, ACR.multiFactor);
  t.deepEqual(problems, [], 'no console errors or CSP violations');

  // A clone: the same key with its signature counter set back. The server refuses it.
  const { credentials: now } = (await cdp.send('WebAuthn.getCredentials', { authenticatorId })) as {
    credentials: VirtualCredential[];
  };
  const current = now[0] as VirtualCredential;
  t.true(current.signCount >= 2);
  await cdp.send('WebAuthn.removeCredential', { authenticatorId, credentialId: current.credentialId });
  await cdp.send('WebAuthn.addCredential', { authenticatorId, credential: { ...current, signCount: 1 } });
  await context.clearCookies();
  const cloned = request();
  await page.goto(cloned.url);
  await page.getByRole('link', { name: 'Sign in with a passkey' }).click();
  await page.getByRole('button', { name: 'Use a passkey' }).click();
  await page.getByText(/signature counter went back/).waitFor();
  t.false(page.url().startsWith(redirectUri));
  t.true(
    problems.every((p) => /Failed to load resource.*400/.test(p)),
    `only the refused request is reported: ${problems.join('; ')}`,
  );
  await context.close();
});
