import test from 'ava';
import { basic, postForm } from '../integration/support/harness.ts';
import { startAuthServer, testSecrets } from '../support/auth-server.ts';
import { connectRedis, deletePrefix, testPrefix } from '../support/redis.ts';

// What one client-credentials token costs in Redis (README "Performance"): the limiter's counters in
// one MGET, then one script call that takes the budget and writes the registry record and its
// signing-key index entry. The client and its API come from the in-process cache.
const prefix = testPrefix('token-hot-path');

test.after.always(async () => {
  const redis = await connectRedis();
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

test('a client-credentials token costs two Redis commands: one MGET, one script call', async (t) => {
  const server = await startAuthServer({ prefix, secrets: testSecrets() });
  t.teardown(() => server.close());
  const api = 'https://hot-path.api.test';
  await server.store.resources.add({ uri: api, scopes: ['reports:read'] });
  const { client_secret } = await server.store.clients.add({
    id: 'hot-path-m2m',
    grants: ['client_credentials'],
    scope: ['reports:read'],
    resources: [api],
    redirectUris: [],
    postLogoutRedirectUris: [],
  });
  const token = () =>
    postForm(
      `${server.issuer}/token`,
      { grant_type: 'client_credentials' },
      { authorization: basic('hot-path-m2m', String(client_secret)) },
    );
  // The first request loads the client and the API into the cache and the scripts into Redis.
  t.is((await token()).status, 200);

  const watcher = await connectRedis();
  const monitor = await watcher.monitor();
  t.teardown(() => {
    monitor.disconnect();
    watcher.disconnect();
  });
  const commands: string[] = [];
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    // Commands this server sent (not those a script ran), on this test's keys.
    if (source !== 'lua' && args.some((arg) => arg.startsWith(prefix))) commands.push(String(args[0]));
  });
  // MONITOR is asynchronous: a marker command tells when it is listening.
  const marker = await connectRedis();
  t.teardown(() => marker.disconnect());
  const ready = `${prefix}monitor-ready`;
  while (!commands.includes('get')) {
    await marker.get(ready);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  commands.length = 0;

  t.is((await token()).status, 200);
  const done = `${prefix}monitor-done`;
  await marker.set(done, '1');
  while (!commands.includes('set')) await new Promise((resolve) => setTimeout(resolve, 20));
  const forToken = commands.filter((c) => c !== 'set' && c !== 'get');
  t.deepEqual(forToken.map((c) => c.toLowerCase()).sort(), ['evalsha', 'mget'], commands.join(' '));
});
