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
 * are printed once, in a warning that says they are for development only.
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
  logger.warn(
    `DEVELOPMENT ONLY, in-process demo store, gone on exit: sign in as ${user.email} with password ` +
      `${password}; client ${DEMO.machineClient} has secret ${machine.client_secret}`,
  );
}
