import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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
export async function seedDemoData(store: Store, logger: Logger, keysDir: string): Promise<void> {
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
  }
  // Readable without a terminal too: the demo user's sign-in only (the machine client's secret stays
  // on the terminal), in a file private to the owner, rewritten at every start.
  const file = join(keysDir, DEMO_CREDENTIALS_FILE);
  mkdirSync(keysDir, { recursive: true, mode: 0o700 });
  writeFileSync(
    file,
    `# DEVELOPMENT ONLY: the in-process demo store of the authorization server started ${new Date().toISOString()}.\n` +
      '# Rewritten at every start, useless once that process exits. Sign in with it at `npm run demo-client`.\n' +
      `email=${user.email}\npassword=${password}\n`,
    { mode: 0o600 },
  );
  chmodSync(file, 0o600);
  logger.info({ file }, 'demo sign-in written to a file readable by this user only');
}

/** Under KEYS_DIR: the demo user's email and password, mode 0600. */
export const DEMO_CREDENTIALS_FILE = 'demo-credentials.txt';
