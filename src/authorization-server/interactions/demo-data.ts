import { randomBytes } from 'node:crypto';
import type { Logger } from '../../shared/logger.ts';
import type { Store } from '../storage/store.ts';

export const DEMO = {
  resource: 'http://localhost:4000',
  scopes: ['policies:read', 'policies:write', 'claims:read', 'claims:write', 'reports:read'],
  user: { email: 'demo@example.com', name: 'Demo User' },
  loginClient: 'demo-web',
  loginRedirectUri: 'http://localhost:8080/callback',
  loginPostLogoutUri: 'http://localhost:8080/',
  machineClient: 'demo-m2m',
} as const;

/**
 * Demo data for the in-process store (REDIS_URL unset, never production): the insurance API, a
 * user, a public login client and a machine client. The generated password and client secret
 * are shown once on an interactive terminal, never logged.
 */
export async function seedDemoData(store: Store, logger: Logger): Promise<void> {
  await store.resources.add({ uri: DEMO.resource, scopes: [...DEMO.scopes] });
  const password = randomBytes(12).toString('base64url');
  const user = await store.users.add({ ...DEMO.user, password });
  await store.clients.add({
    id: DEMO.loginClient,
    grants: ['authorization_code', 'refresh_token'],
    scope: [
      'openid',
      'profile',
      'email',
      'offline_access',
      'policies:read',
      'policies:write',
      'claims:read',
      'claims:write',
    ],
    resources: [DEMO.resource],
    redirectUris: [DEMO.loginRedirectUri],
    postLogoutRedirectUris: [DEMO.loginPostLogoutUri],
    authMethod: 'none',
  });
  const machine = await store.clients.add({
    id: DEMO.machineClient,
    grants: ['client_credentials'],
    scope: ['reports:read'],
    resources: [DEMO.resource],
    redirectUris: [],
    postLogoutRedirectUris: [],
    authMethod: 'client_secret_basic',
  });
  logger.info(
    {
      resource: DEMO.resource,
      user: { sub: user.sub, email: user.email },
      clients: [DEMO.loginClient, DEMO.machineClient],
      redirect_uri: DEMO.loginRedirectUri,
    },
    'demo data seeded (in-process store)',
  );
  // Secrets never go to the log. A developer at a terminal sees the demo credentials once; a
  // captured or shipped log only learns that they exist.
  if (process.stdout.isTTY) {
    process.stdout.write(
      `\nDEVELOPMENT ONLY (in-process demo store, gone on exit):\n` +
        `  sign in as ${user.email} with password ${password}\n` +
        `  client ${DEMO.machineClient} has secret ${machine.client_secret}\n\n`,
    );
  } else {
    logger.warn('demo credentials are generated at each start and shown only on an interactive terminal');
  }
}
