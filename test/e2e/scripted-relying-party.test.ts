import { createHash, randomBytes } from 'node:crypto';
import test from 'ava';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { AuthorizationCode } from 'simple-oauth2';
import { type Served, startResourceServer } from '../integration/support/harness.ts';
import type { RunningAuthServer } from '../support/auth-server.ts';
import { API, Deployment, startClientSite, type TestUser } from './support/deployment.ts';
import { UserAgent } from './support/user-agent.ts';

/**
 * A relying party built on a second, independent client library (simple-oauth2 for the OAuth
 * requests, jose for the ID token), driving sign-in with plain HTTP the way RP test harnesses do:
 * it reads the forms it is shown and posts them, and it approves consent by posting the Allow
 * button's form as such a harness does, with an empty body and no Content-Type. Everything is
 * found through discovery, and it runs on the server's defaults.
 */
let deployment: Deployment;
let server: RunningAuthServer;
let site: Awaited<ReturnType<typeof startClientSite>>;
let api: Served;
let user: TestUser;
let secret: string;
let redirectUri: string;
let afterLogout: string;
const CLIENT_ID = 'scripted-rp';

test.before(async () => {
  deployment = await Deployment.create('test-scripted-rp');
  server = await deployment.start();
  site = await startClientSite();
  redirectUri = `${site.origin}/callback`;
  afterLogout = `${site.origin}/signed-out`;
  await deployment.addApi(server);
  api = await startResourceServer({ issuer: server.issuer, audience: API });
  user = await deployment.addUser(server, 'scripted.rp@example.com');
  ({ client_secret: secret } = (await server.store.clients.add({
    id: CLIENT_ID,
    grants: ['authorization_code', 'refresh_token'],
    scope: ['openid', 'email', 'offline_access', 'policies:read'],
    resources: [API],
    redirectUris: [redirectUri],
    postLogoutRedirectUris: [afterLogout],
  })) as { client_secret: string });
});

test.after.always(async () => {
  await api?.close();
  await site?.close();
  await deployment?.cleanup();
});

interface Form {
  action: string;
  fields: { name: string; type: string; value: string }[];
}

/** Every form on a page, with its inputs, as a harness's HTML parser sees them. */
function formsOf(html: string, base: string): Form[] {
  return [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)].map(([, attributes = '', body = '']) => ({
    action: new URL(attribute(attributes, 'action') ?? base, base).href,
    fields: [...body.matchAll(/<input\b([^>]*)>/gi)].map(([, input = '']) => ({
      name: attribute(input, 'name') ?? '',
      type: (attribute(input, 'type') ?? 'text').toLowerCase(),
      value: attribute(input, 'value') ?? '',
    })),
  }));
}

function attribute(tag: string, name: string): string | undefined {
  const value = new RegExp(`\\b${name}="([^"]*)"`, 'i').exec(tag)?.[1];
  return value?.replaceAll('&amp;', '&').replaceAll('&quot;', '"').replaceAll('&#x2F;', '/');
}

/** Follows redirects (bounded) from `url`; returns the final URL and, for a page, its HTML. */
async function follow(agent: UserAgent, first: Response, url: string) {
  let response = first;
  let at = url;
  for (let hops = 0; response.status >= 300 && response.status < 400; hops++) {
    if (hops > 10) throw new Error('too many redirects');
    at = new URL(response.headers.get('location') as string, at).href;
    if (at.startsWith(site.origin)) return { url: at, html: '' };
    response = await agent.get(at);
  }
  return { url: at, html: await response.text(), status: response.status };
}

const pkce = () => {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
};

const errorOf = (error: unknown) =>
  (error as { data?: { payload?: { error?: string } } }).data?.payload?.error ?? String(error);

test('code + PKCE, consent, ID token, API, userinfo, refresh keeping the API, reuse, logout', async (t) => {
  // Discovery only.
  const metadata = (await (
    await fetch(`${server.issuer}/.well-known/openid-configuration`)
  ).json()) as Record<string, string>;
  const oauth = new AuthorizationCode({
    client: { id: CLIENT_ID, secret },
    auth: {
      tokenHost: server.issuer,
      tokenPath: new URL(metadata.token_endpoint as string).pathname,
      authorizeHost: server.issuer,
      authorizePath: new URL(metadata.authorization_endpoint as string).pathname,
      revokePath: new URL(metadata.revocation_endpoint as string).pathname,
    },
    options: { authorizationMethod: 'header' },
  });

  // Authorization request: code + PKCE (S256), state and nonce, for the API.
  const { verifier, challenge } = pkce();
  const state = randomBytes(12).toString('base64url');
  const nonce = randomBytes(12).toString('base64url');
  const authorizeUrl = oauth.authorizeURL({
    redirect_uri: redirectUri,
    scope: 'openid email offline_access policies:read',
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    resource: API,
  } as Parameters<typeof oauth.authorizeURL>[0]);

  // Sign in: fill the login form's text and password inputs, keep its hidden ones.
  const agent = new UserAgent();
  let page = await follow(agent, await agent.get(authorizeUrl), authorizeUrl);
  const [login] = formsOf(page.html, page.url);
  t.truthy(login, 'a login form');
  const form = new URLSearchParams();
  for (const field of login?.fields ?? []) {
    if (field.type === 'password') form.set(field.name, user.password);
    else if (field.type === 'email' || field.type === 'text') form.set(field.name, user.email);
    else if (field.name) form.set(field.name, field.value);
  }
  page = await follow(
    agent,
    await agent.postRaw(login?.action as string, form.toString(), 'application/x-www-form-urlencoded'),
    login?.action as string,
  );

  // Consent: the Allow form carries no fields; post it as harnesses do, empty and untyped.
  const allow = formsOf(page.html, page.url).find((f) => f.action.endsWith('/confirm'));
  t.truthy(allow, `a consent form on ${page.url}`);
  t.deepEqual(
    allow?.fields.filter((f) => f.name),
    [],
    'the Allow form has no fields to send',
  );
  page = await follow(agent, await agent.postUntyped(allow?.action as string), allow?.action as string);
  const callback = new URL(page.url);
  t.true(page.url.startsWith(redirectUri), page.url);
  t.is(callback.searchParams.get('state'), state);
  t.is(callback.searchParams.get('iss'), server.issuer, 'RFC 9207 issuer identification');

  // Code exchange through the library.
  const first = await oauth.getToken({
    code: callback.searchParams.get('code') as string,
    redirect_uri: redirectUri,
    code_verifier: verifier,
  } as Parameters<typeof oauth.getToken>[0]);
  const tokens = first.token as Record<string, string>;

  // ID token: RS256 against the published keys, for this client, this nonce.
  const jwks = createRemoteJWKSet(new URL(metadata.jwks_uri as string));
  const { payload: idClaims, protectedHeader } = await jwtVerify(tokens.id_token as string, jwks, {
    issuer: server.issuer,
    audience: CLIENT_ID,
    algorithms: ['RS256'],
    maxTokenAge: '10 minutes',
  });
  t.is(protectedHeader.alg, 'RS256');
  t.is(idClaims.sub, user.sub);
  t.is(idClaims.nonce, nonce);

  // The access token is an RS256 JWT for the API (the default algorithm), and the API serves it.
  const apiCall = (token: string) =>
    fetch(`${api.url}/policies`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);
  t.is(decodeJwt(tokens.access_token as string).aud, API);
  t.is(await apiCall(tokens.access_token as string), 200);

  // Userinfo: a refresh asking for OpenID scopes only gives the userinfo token.
  const forUserinfo = await first.refresh({ scope: 'openid email' });
  const info = await fetch(metadata.userinfo_endpoint as string, {
    headers: { authorization: `Bearer ${forUserinfo.token.access_token}` },
  });
  t.is(info.status, 200);
  t.like(await info.json(), { sub: user.sub, email: user.email });

  // A refresh as every library sends it (no resource): the API again, and the API serves it.
  const refreshed = await forUserinfo.refresh();
  t.not(refreshed.token.refresh_token, forUserinfo.token.refresh_token, 'the refresh token rotated');
  t.is(decodeJwt(refreshed.token.access_token as string).aud, API);
  t.is(await apiCall(refreshed.token.access_token as string), 200);

  // Reusing a spent refresh token: refused, and the whole grant goes with it.
  const reuse = await first.refresh().then(
    () => 'accepted',
    (error: unknown) => errorOf(error),
  );
  t.is(reuse, 'invalid_grant');
  const latest = await refreshed.refresh().then(
    () => 'accepted',
    (error: unknown) => errorOf(error),
  );
  t.is(latest, 'invalid_grant', 'the newest refresh token died with the grant');

  // Logout (RP-initiated): the page's form, posted as it is; back to the registered URI.
  const logoutUrl = `${metadata.end_session_endpoint}?${new URLSearchParams({
    id_token_hint: tokens.id_token as string,
    post_logout_redirect_uri: afterLogout,
    state: 'bye',
  })}`;
  page = await follow(agent, await agent.get(logoutUrl), logoutUrl);
  const signOut = formsOf(page.html, page.url).find((f) =>
    f.fields.some((field) => field.name === 'logout' || field.name === 'xsrf'),
  );
  t.truthy(signOut, 'a sign-out form');
  const fields = new URLSearchParams(
    (signOut?.fields ?? []).filter((f) => f.name).map((f) => [f.name, f.value] as [string, string]),
  );
  page = await follow(
    agent,
    await agent.postRaw(signOut?.action as string, fields.toString(), 'application/x-www-form-urlencoded'),
    signOut?.action as string,
  );
  t.true(page.url.startsWith(afterLogout), page.url);
  t.is(new URL(page.url).searchParams.get('state'), 'bye');

  // Signed out: a silent authorization request now needs a login.
  const silent = oauth.authorizeURL({
    redirect_uri: redirectUri,
    scope: 'openid',
    state: 's',
    prompt: 'none',
    code_challenge: pkce().challenge,
    code_challenge_method: 'S256',
  } as Parameters<typeof oauth.authorizeURL>[0]);
  page = await follow(agent, await agent.get(silent), silent);
  t.is(new URL(page.url).searchParams.get('error'), 'login_required');
});
