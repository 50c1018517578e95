import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { loadConfig } from '../../src/config/config.ts';
import { loadResourceServerConfig } from '../../src/config/resource-server-config.ts';
import { ConfigError } from '../../src/shared/errors.ts';
import { createListener, ListenError, listen } from '../../src/shared/listen.ts';
import { httpsRequest, makeTestCa, type TestCa } from '../support/tls.ts';

let ca: TestCa;
test.before(() => {
  ca = makeTestCa();
});
test.after.always(() => ca?.remove());

async function occupy(): Promise<{ blocker: Server; port: number }> {
  const blocker = createServer();
  blocker.listen(0);
  await once(blocker, 'listening');
  return { blocker, port: (blocker.address() as { port: number }).port };
}

test('a port in use is one line naming the variable and the fix, not an EADDRINUSE stack', async (t) => {
  const { blocker, port } = await occupy();
  try {
    const server = createListener((_req, res) => res.end());
    const error = await t.throwsAsync(listen(server, port, undefined, 'PORT'), { instanceOf: ListenError });
    t.is(
      error?.message,
      `PORT=${port}: the port is already in use on this machine (is another instance running? stop it, or set PORT to a free port)`,
    );
  } finally {
    blocker.close();
  }
});

test('with TLS files the listener serves HTTPS, trusted by a client that knows the CA and by no other', async (t) => {
  const server = createListener((_req, res) => res.end('over tls'), {
    tls: { certFile: ca.certFile, keyFile: ca.keyFile },
  });
  const port = await listen(server, 0, '127.0.0.1', 'PORT');
  try {
    const response = await httpsRequest(`https://localhost:${port}/`, ca.ca);
    t.is(response.body, 'over tls');
    await t.throwsAsync(httpsRequest(`https://localhost:${port}/`, undefined), {
      message: /self-signed|unable to (get|verify)/i,
    });
  } finally {
    server.close();
  }
});

test('an unreadable TLS file is a ConfigError naming the variable', (t) => {
  t.throws(
    () => createListener(() => {}, { tls: { certFile: '/nonexistent/cert.pem', keyFile: ca.keyFile } }),
    {
      instanceOf: ConfigError,
      message: 'TLS_CERT_FILE: cannot read /nonexistent/cert.pem (ENOENT)',
    },
  );
});

test('TLS files come in pairs, and with them the default URLs are https', (t) => {
  for (const load of [loadConfig, loadResourceServerConfig]) {
    t.throws(() => load({ TLS_CERT_FILE: ca.certFile }), {
      message: 'TLS_KEY_FILE: required with TLS_CERT_FILE',
    });
    t.throws(() => load({ TLS_KEY_FILE: ca.keyFile }), {
      message: 'TLS_CERT_FILE: required with TLS_KEY_FILE',
    });
  }
  const tls = { TLS_CERT_FILE: ca.certFile, TLS_KEY_FILE: ca.keyFile };
  const as = loadConfig({ ...tls, PORT: '3443', ADMIN_PORT: '3444' });
  t.deepEqual(as.tls, { certFile: ca.certFile, keyFile: ca.keyFile });
  t.is(as.issuer, 'https://localhost:3443');
  t.is(as.adminAudience, 'https://localhost:3444');
  const rs = loadResourceServerConfig({ ...tls, PORT: '3443', RS_PORT: '4443' });
  t.is(rs.issuer, 'https://localhost:3443');
  t.is(rs.audience, 'https://localhost:4443');
  t.is(loadConfig({}).tls, undefined);
});

/** `npm start` / `npm run resource-server` as processes, started on a port already taken. */
for (const [what, main, variable] of [
  ['npm start', '../../src/authorization-server/main.ts', 'PORT'],
  ['npm run resource-server', '../../src/resource-server/main.ts', 'RS_PORT'],
] as const) {
  test(`${what} on a busy port ends at once with one fatal line naming ${variable}`, async (t) => {
    const { blocker, port } = await occupy();
    try {
      const child = spawn(process.execPath, [fileURLToPath(new URL(main, import.meta.url))], {
        env: { PATH: process.env.PATH ?? '', [variable]: String(port), KEYS_DIR: ca.dir },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk) => {
        stdout += chunk;
      });
      child.stderr.on('data', (chunk) => {
        stderr += chunk;
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 50_000);
      const [code] = await once(child, 'exit');
      clearTimeout(timer);
      t.is(code, 1);
      t.is(stderr, '', 'nothing on stderr: no stack trace');
      const fatal = stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { level: number; msg: string })
        .filter((line) => line.level === 60);
      t.is(fatal.length, 1);
      t.regex(
        fatal[0]?.msg ?? '',
        new RegExp(`^cannot listen: ${variable}=${port}: the port is already in use`),
      );
    } finally {
      blocker.close();
    }
  });
}
