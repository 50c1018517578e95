import test from 'ava';
import { addressBucket } from '../../../src/authorization-server/rate-limit/address-bucket.ts';

test('IPv4 addresses are their own bucket', (t) => {
  t.is(addressBucket('192.0.2.7'), '192.0.2.7');
  t.not(addressBucket('192.0.2.7'), addressBucket('192.0.2.8'));
});

test('issue 9 #14: IPv6 addresses count by their /64, whatever the spelling', (t) => {
  const bucket = addressBucket('2001:db8:1:2::1');
  t.is(bucket, '2001:db8:1:2::/64');
  for (const same of [
    '2001:db8:1:2:ffff:ffff:ffff:ffff',
    '2001:0DB8:0001:0002:0000:0000:0000:0009',
    '2001:db8:1:2:a:b:c:d%eth0',
    '2001:db8:1:2::192.0.2.1',
  ])
    t.is(addressBucket(same), bucket, same);
  t.not(addressBucket('2001:db8:1:3::1'), bucket);
  t.is(addressBucket('::1'), '0:0:0:0::/64');
  t.is(addressBucket('fe80::1'), 'fe80:0:0:0::/64');
});

test('IPv4-mapped IPv6 (a dual-stack socket) counts as the IPv4 address', (t) => {
  t.is(addressBucket('::ffff:192.0.2.7'), '192.0.2.7');
  t.is(addressBucket('::ffff:c000:207'), '192.0.2.7');
});

test('anything else is kept as it is', (t) => {
  t.is(addressBucket(''), '');
  t.is(addressBucket('not an address'), 'not an address');
});
