import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { buildAuthorizationServer } from '../../src/authorization-server/authorization-server.ts';
import { DEMO, DEMO_CREDENTIALS_FILE } from '../../src/authorization-server/interactions/demo-data.ts';
import { loadConfig } from '../../src/config/config.ts';
import { createLogger } from '../../src/shared/logger.ts';

test('the in-process demo store writes the demo sign-in to keys/, private to the owner, and it works', async (t) => {
  const keysDir = mkdtempSync(join(tmpdir(), 'idp-demo-keys-'));
  const server = await buildAuthorizationServer(loadConfig({ KEYS_DIR: keysDir, LOG_LEVEL: 'silent' }), {
    logger: createLogger('demo-credentials-test', 'silent'),
  });
  try {
    const file = join(keysDir, DEMO_CREDENTIALS_FILE);
    t.is(statSync(file).mode & 0o777, 0o600);
    const text = readFileSync(file, 'utf8');
    const email = /^email=(.+)$/m.exec(text)?.[1];
    const password = /^password=(.+)$/m.exec(text)?.[1] ?? '';
    t.is(email, DEMO.user.email);
    t.truthy(await server.store.users.verifyPassword(DEMO.user.email, password), 'the password signs in');
    t.false(text.includes('secret'), "the machine client's secret is not in the file");
  } finally {
    await server.close();
  }
});
