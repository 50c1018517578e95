import test from 'ava';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import type { RunningAuthServer } from '../support/auth-server.ts';
import { API, Deployment, startClientSite, type TestUser } from './support/deployment.ts';
import { runAuthorization, UserAgent } from './support/user-agent.ts';

/**
 * A relying party built on openid-client does what a web app does: code + PKCE (S256), ID token
 * validation, userinfo, refresh with rotation, and it sees refresh-token reuse revoke the grant.
 */
let deployment: Deployment;
let server: RunningAuthServer;
let site: Awaited<ReturnType<typeof startClientSite>>;
let user: TestUser;
let client: oidc.Configuration;
let redirectUri: string;

test.before(async () => {
  deployment = await Deployment.create('test-rp');
  server = await deployment.start();
  site = await startClientSite();
  redirectUri = `${site.origin}/callback`;
  await deployment.addApi(server);
  user = await deployment.addUser(server, 'rp.user@example.com');
  const { client_secret } = await server.store.clients.add({
    id: 'web-app',
    grants: ['authorization_code', 'refresh_token'],
    scope: ['openid', 'profile', 'email', 'offline_access', 'policies:read'],
    resources: [API],
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

async function refreshFails(refreshToken: string): Promise<string | undefined> {
  try {
    await oidc.refreshTokenGrant(client, refreshToken);
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

  // A refresh without `resource` gets the userinfo token; the refresh token rotates.
  const refreshed = await oidc.refreshTokenGrant(client, firstRefresh);
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
