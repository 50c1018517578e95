import test from 'ava';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { type Served, startResourceServer } from '../integration/support/harness.ts';
import type { RunningAuthServer } from '../support/auth-server.ts';
import { API, Deployment, startClientSite, type TestUser } from './support/deployment.ts';
import { runAuthorization, UserAgent } from './support/user-agent.ts';

/**
 * A relying party built on openid-client does what a web app does: code + PKCE (S256), ID token
 * validation, userinfo, the API, refresh with rotation (keeping the API it was granted for), and it
 * sees refresh-token reuse revoke the grant.
 */
let deployment: Deployment;
let server: RunningAuthServer;
let site: Awaited<ReturnType<typeof startClientSite>>;
let user: TestUser;
let client: oidc.Configuration;
let redirectUri: string;
/** The sample insurance API, serving API; OTHER_API is registered for the client but never granted. */
let api: Served;
const OTHER_API = 'http://other.insurance.test';

test.before(async () => {
  deployment = await Deployment.create('test-rp');
  server = await deployment.start();
  site = await startClientSite();
  redirectUri = `${site.origin}/callback`;
  await deployment.addApi(server);
  await server.store.resources.add({ uri: OTHER_API, scopes: ['other:read'] });
  api = await startResourceServer({ issuer: server.issuer, audience: API });
  user = await deployment.addUser(server, 'rp.user@example.com');
  const { client_secret } = await server.store.clients.add({
    id: 'web-app',
    grants: ['authorization_code', 'refresh_token'],
    scope: ['openid', 'profile', 'email', 'offline_access', 'policies:read', 'policies:write', 'other:read'],
    resources: [API, OTHER_API],
    redirectUris: [redirectUri],
    postLogoutRedirectUris: [],
  });
  client = await oidc.discovery(
    new URL(server.issuer),
    'web-app',
    undefined,
    oidc.ClientSecretBasic(client_secret as string),
    { execute: [oidc.allowInsecureRequests] },
  );
});

test.after.always(async () => {
  await api?.close();
  await site?.close();
  await deployment?.cleanup();
});

async function signIn(extra: Record<string, string>) {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(client, {
    redirect_uri: redirectUri,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  });
  const { callback } = await runAuthorization(new UserAgent(), url.href, redirectUri, { credentials: user });
  return oidc.authorizationCodeGrant(client, callback, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
}

async function refreshFails(
  refreshToken: string,
  parameters?: Record<string, string>,
): Promise<string | undefined> {
  try {
    await oidc.refreshTokenGrant(client, refreshToken, parameters);
    return undefined;
  } catch (error) {
    return (error as { error?: string }).error;
  }
}

test('code + PKCE, ID token, userinfo, refresh rotation, and reuse revoking the grant', async (t) => {
  const tokens = await signIn({
    scope: 'openid profile email offline_access policies:read',
    prompt: 'consent',
    resource: API,
  });

  // The ID token: RS256 (OpenID Connect Core §15.1), signed by a key in the JWKS, for this client.
  const idToken = tokens.id_token as string;
  t.is(decodeProtectedHeader(idToken).alg, 'RS256');
  const jwks = createRemoteJWKSet(new URL(client.serverMetadata().jwks_uri as string));
  const { payload } = await jwtVerify(idToken, jwks, { issuer: server.issuer, audience: 'web-app' });
  t.is(payload.sub, user.sub);
  t.is(tokens.claims()?.sub, user.sub);

  // The access token from the code is a JWT for the API named at authorization (RFC 8707).
  const apiToken = tokens.access_token;
  t.is(decodeProtectedHeader(apiToken).typ, 'at+jwt');
  t.is(decodeJwt(apiToken).aud, API);
  t.is(decodeJwt(apiToken).scope, 'policies:read');
  t.true((await oidc.tokenIntrospection(client, apiToken)).active);
  const firstRefresh = tokens.refresh_token as string;
  t.truthy(firstRefresh);

  // A refresh asking for OpenID scopes only gets the userinfo token; the refresh token rotates.
  const refreshed = await oidc.refreshTokenGrant(client, firstRefresh, { scope: 'openid profile email' });
  t.not(refreshed.refresh_token, firstRefresh);
  const info = await oidc.fetchUserInfo(client, refreshed.access_token, user.sub);
  t.is(info.email, user.email);
  t.is(info.name, 'Test Person');

  // Reusing the spent refresh token is a replay: refused, and the whole grant is revoked.
  t.is(await refreshFails(firstRefresh), 'invalid_grant');
  t.is(await refreshFails(refreshed.refresh_token as string), 'invalid_grant');
  for (const token of [refreshed.access_token, refreshed.refresh_token as string, apiToken]) {
    t.false((await oidc.tokenIntrospection(client, token)).active);
  }
});

const policies = (token: string) =>
  fetch(`${api.url}/policies`, {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(5000),
  });

test('a refresh keeps the API it was granted for (RFC 8707 §2.2); OpenID scopes alone ask for userinfo', async (t) => {
  const tokens = await signIn({ scope: 'openid email offline_access policies:read', resource: API });
  t.is(decodeJwt(tokens.access_token).aud, API);
  t.is((await policies(tokens.access_token)).status, 200);

  // What every RP library does: refresh without `resource`. Same API, same scopes, and it works there.
  const refreshed = await oidc.refreshTokenGrant(client, tokens.refresh_token as string);
  const claims = decodeJwt(refreshed.access_token);
  t.is(claims.aud, API);
  t.is(claims.scope, 'policies:read');
  t.is(refreshed.scope, 'policies:read');
  t.is((await policies(refreshed.access_token)).status, 200);

  // Naming the API it holds is the same; one the grant does not hold is invalid_target, even one
  // the client is registered for; a scope never granted is invalid_scope (scopes narrow, never widen).
  const named = await oidc.refreshTokenGrant(client, refreshed.refresh_token as string, { resource: API });
  t.is(decodeJwt(named.access_token).aud, API);
  t.is(await refreshFails(named.refresh_token as string, { resource: OTHER_API }), 'invalid_target');
  t.is(await refreshFails(named.refresh_token as string, { scope: 'policies:write' }), 'invalid_scope');

  // OpenID scopes alone: a token for userinfo, which the API refuses (wrong audience).
  const forUserinfo = await oidc.refreshTokenGrant(client, named.refresh_token as string, {
    scope: 'openid email',
  });
  t.is(forUserinfo.access_token.split('.').length, 1, 'an opaque userinfo token, not an API JWT');
  t.is((await oidc.fetchUserInfo(client, forUserinfo.access_token, user.sub)).email, user.email);
  t.is((await policies(forUserinfo.access_token)).status, 401);

  // And the API again on the next plain refresh: the grant still holds it.
  const again = await oidc.refreshTokenGrant(client, forUserinfo.refresh_token as string);
  t.is(decodeJwt(again.access_token).aud, API);
  t.is((await policies(again.access_token)).status, 200);
});

test('a replayed authorization code is refused and what it issued is revoked', async (t) => {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(client, {
    redirect_uri: redirectUri,
    scope: 'openid email',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  });
  const { callback } = await runAuthorization(new UserAgent(), url.href, redirectUri, { credentials: user });
  const tokens = await oidc.authorizationCodeGrant(client, callback, {
    pkceCodeVerifier: verifier,
    expectedState: state,
  });
  t.true((await oidc.tokenIntrospection(client, tokens.access_token)).active);
  const replay = await oidc
    .authorizationCodeGrant(client, callback, { pkceCodeVerifier: verifier, expectedState: state })
    .then(() => undefined)
    .catch((error: { error?: string }) => error.error);
  t.is(replay, 'invalid_grant');
  t.false((await oidc.tokenIntrospection(client, tokens.access_token)).active);
});

test('PKCE plain is refused', async (t) => {
  const url = oidc.buildAuthorizationUrl(client, {
    redirect_uri: redirectUri,
    scope: 'openid',
    code_challenge: oidc.randomPKCECodeVerifier(),
    code_challenge_method: 'plain',
    state: oidc.randomState(),
  });
  const response = await new UserAgent().get(url.href);
  t.is(response.status, 303);
  const location = new URL(response.headers.get('location') as string);
  t.true(location.href.startsWith(redirectUri));
  t.is(location.searchParams.get('error'), 'invalid_request');
});
