import { createServer } from 'node:net';
import test from 'ava';
import { connectRedis as connectProductRedis } from '../../src/shared/redis.ts';
import { connectRedis } from '../support/redis.ts';
import { type ExtraRedis, startExtraRedis } from '../support/redis-server.ts';

// connectRedis reads REDIS_URL with the WHATWG URL parser for the Cluster and Sentinel cases (the
// plain case hands the URL to ioredis as it is). It keeps an IPv6 literal in brackets: "[::1]".

/** Whether this machine has an IPv6 loopback to listen on. */
const ipv6 = await new Promise<boolean>((resolve) => {
  const probe = createServer();
  probe.once('error', () => resolve(false));
  probe.listen(0, '::1', () => probe.close(() => resolve(true)));
});
if (!ipv6)
  console.warn('redis-url.test.ts: no IPv6 loopback (::1) on this machine: the IPv6 test is skipped');

let node: ExtraRedis | undefined;
test.after.always(async () => {
  await node?.stop();
});

(ipv6 ? test : test.skip)(
  'REDIS_CLUSTER with an IPv6 literal seed (redis://[::1]:port) connects to the cluster',
  async (t) => {
    // A one-node Redis Cluster of the test's own, on both loopbacks, announcing its IPv6 address.
    node = await startExtraRedis([
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      'nodes.conf',
      '--cluster-announce-ip',
      '::1',
      '--bind',
      '127.0.0.1',
      '::1',
    ]);
    const admin = await connectRedis(node.url);
    t.teardown(() => admin.disconnect());
    await admin.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
    const deadline = Date.now() + 15_000;
    while (!String(await admin.call('CLUSTER', 'INFO')).includes('cluster_state:ok')) {
      if (Date.now() > deadline) throw new Error('the test cluster did not reach cluster_state:ok');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    const cluster = connectProductRedis(`redis://[::1]:${node.port}`, { cluster: true });
    t.teardown(() => cluster.disconnect());
    const answer = await Promise.race([
      cluster.set('redis-url-test', 'ok').then(() => cluster.get('redis-url-test')),
      new Promise((resolve) => setTimeout(() => resolve('no answer in 5 s'), 5000).unref()),
    ]);
    t.is(answer, 'ok');
  },
);
