import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import { SIGNING_ALGS, type SigningAlg, summarize } from '../authorization-server/keys/signing-key-ring.ts';
import { removePasskeysByEmail } from '../authorization-server/second-factor/passkey-factor.ts';
import { TotpFactor } from '../authorization-server/second-factor/totp-factor.ts';
import {
  AUDIT_LIST_DEFAULT,
  AUDIT_LIST_MAX,
  parseAuditLimit,
} from '../authorization-server/storage/audit-log.ts';
import {
  AUTH_METHODS,
  type AuthMethod,
  GRANTS,
  type Grant,
} from '../authorization-server/storage/client-store.ts';
import { parseScope } from '../authorization-server/storage/resource-store.ts';
import { openStore, type Store } from '../authorization-server/storage/store.ts';
import { loadConfig } from '../config/config.ts';
import { AppError } from '../shared/errors.ts';
import { probeRedis } from '../shared/redis.ts';
import { type Check, runDoctor } from './doctor.ts';

/**
 * The admin CLI: the same store as the servers, so a change reaches every running instance
 * (resources and keys through the change feed, clients and users on their next lookup).
 * With --json, exactly one JSON object goes to stdout; errors go to stderr with a non-zero exit.
 */
const program = new Command('admin')
  .description(
    'Administer the authorization server: resources, clients, users, signing keys and the audit trail.',
  )
  .addHelpText(
    'after',
    '\nEvery command accepts --json. Environment: REDIS_URL (required), REDIS_PREFIX, STORE_KEY or keys/store.key.',
  )
  .showHelpAfterError()
  .exitOverride();

// Option values checked as they are parsed, so a mistake is reported against the option that has
// it (commander: "option '--grant <grant>' argument 'x' is invalid. ..."); the store checks the rest.
function absoluteUrl(value: string): string {
  if (!URL.canParse(value))
    throw new InvalidArgumentError('not an absolute URL (like https://api.example.com).');
  return value;
}
const collectUrls = (value: string, previous: string[] = []) => [...previous, absoluteUrl(value)];
function collectGrants(value: string, previous: Grant[] = []): Grant[] {
  if (!(GRANTS as readonly string[]).includes(value))
    throw new InvalidArgumentError(`must be one of ${GRANTS.join(', ')}.`);
  return [...previous, value as Grant];
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

function positiveInteger(value: string): number {
  if (!/^\d+$/.test(value)) throw new AppError('invalid_input', `not a positive integer: ${value}`, 400);
  return Number(value);
}

/** Runs an action against the store and prints its result. */
function run<A extends unknown[]>(
  action: (store: Store, ...args: A) => Promise<{ json: object; text: string }>,
) {
  return async (...args: A) => {
    const command = args.at(-1) as Command;
    const json = Boolean(command.optsWithGlobals().json);
    const config = loadConfig();
    if (!config.redisUrl) {
      throw new AppError(
        'no_store',
        'REDIS_URL is not set: the admin CLI works on the shared Redis store only',
        2,
      );
    }
    // One clear line, within seconds, when Redis is unreachable (not ioredis' retry message).
    await probeRedis(config.redisUrl, { sentinel: config.redis?.sentinel });
    const store = await openStore(config);
    const audit = {
      actor: `cli:${userInfo().username}`,
      action: `${command.parent?.name()}.${command.name()}`,
      target:
        typeof args[0] === 'string'
          ? args[0]
          : ((args[0] as { id?: string; uri?: string; email?: string }).id ??
            (args[0] as { uri?: string }).uri ??
            (args[0] as { email?: string }).email),
      source: 'cli',
    };
    try {
      const result = await action(store, ...args);
      await store.audit.record({ ...audit, outcome: 'ok' });
      process.stdout.write(json ? `${JSON.stringify(result.json)}\n` : `${result.text}\n`);
    } catch (error) {
      await store.audit
        .record({
          ...audit,
          outcome: error instanceof AppError ? 'refused' : 'failed',
        })
        .catch(() => {});
      throw error;
    } finally {
      await store.close();
    }
  };
}

const table = (rows: object[]) => (rows.length ? rows.map((r) => JSON.stringify(r)).join('\n') : '(none)');

const resources = program
  .command('resources')
  .description('APIs (resource servers) that tokens can be issued for');
resources
  .command('add')
  .description('register a resource (RFC 8707 resource indicator) and its scopes')
  .requiredOption('--uri <uri>', "the resource indicator, used as the tokens' aud", absoluteUrl)
  .requiredOption('--scope <scopes>', 'space-separated scopes of this API')
  .option('--token-ttl <seconds>', 'access token lifetime for this API', positiveInteger)
  .addOption(
    new Option(
      '--alg <alg>',
      "this API's access-token signature algorithm (default: ACCESS_TOKEN_ALG, RS256 unless set)",
    ).choices(SIGNING_ALGS),
  )
  .option('--json', 'print JSON')
  .action(
    run(async (store, opts: { uri: string; scope: string; tokenTtl?: number; alg?: SigningAlg }) => {
      const r = await store.resources.add({
        uri: opts.uri,
        scopes: parseScope(opts.scope),
        token_ttl: opts.tokenTtl,
        alg: opts.alg,
      });
      return { json: r, text: `added resource ${r.uri} with scopes ${r.scopes.join(' ')}, tokens ${r.alg}` };
    }),
  );
resources
  .command('list')
  .description('list resources')
  .option('--json', 'print JSON')
  .action(
    run(async (store) => {
      const list = await store.resources.list();
      return { json: { resources: list }, text: table(list) };
    }),
  );
resources
  .command('remove <uri>')
  .description('remove a resource')
  .option('--json', 'print JSON')
  .action(
    run(async (store, uri: string) => {
      await store.resources.remove(uri);
      return { json: { removed: uri }, text: `removed resource ${uri}` };
    }),
  );

const clients = program.command('clients').description('OAuth clients');
clients
  .command('add')
  .description('register a client; prints its secret once')
  .requiredOption('--id <id>', 'client_id')
  .requiredOption(
    '--grant <grant>',
    'authorization_code, refresh_token or client_credentials (repeat)',
    collectGrants,
  )
  .requiredOption(
    '--scope <scopes>',
    'space-separated scopes the client may request (admin:* only with --grant client_credentials alone)',
  )
  .option(
    '--resource <uri>',
    'a resource the client may use; the first is its default (repeat)',
    collectUrls,
    [],
  )
  .option('--redirect-uri <uri>', 'exact redirect URI (repeat)', collectUrls, [])
  .option('--post-logout-redirect-uri <uri>', 'post-logout redirect URI (repeat)', collectUrls, [])
  .addOption(new Option('--auth-method <method>', 'token endpoint authentication').choices(AUTH_METHODS))
  .option('--jwks-file <file>', "JSON Web Key Set with the client's public keys (private_key_jwt)")
  .option('--first-party', 'a first-party client: no consent page')
  .option('--require-mfa', 'every sign-in for this client needs a second factor')
  .option('--json', 'print JSON')
  .action(
    run(
      async (
        store,
        opts: {
          id: string;
          grant: Grant[];
          scope: string;
          resource: string[];
          redirectUri: string[];
          postLogoutRedirectUri: string[];
          authMethod?: AuthMethod;
          jwksFile?: string;
          firstParty?: boolean;
          requireMfa?: boolean;
        },
      ) => {
        let jwks: unknown;
        if (opts.jwksFile) {
          try {
            jwks = JSON.parse(await readFile(opts.jwksFile, 'utf8'));
          } catch (error) {
            throw new AppError('invalid_input', `--jwks-file: ${(error as Error).message}`, 400);
          }
        }
        const created = await store.clients.add({
          id: opts.id,
          grants: opts.grant,
          scope: parseScope(opts.scope),
          resources: opts.resource,
          redirectUris: opts.redirectUri,
          postLogoutRedirectUris: opts.postLogoutRedirectUri,
          authMethod: opts.authMethod,
          jwks,
          firstParty: opts.firstParty,
          requireMfa: opts.requireMfa,
        });
        const secretLine = created.client_secret
          ? `\nclient_secret: ${created.client_secret} (shown once)`
          : '';
        return { json: created, text: `client_id: ${created.client_id}${secretLine}` };
      },
    ),
  );
clients
  .command('list')
  .description('list clients (never their secrets)')
  .option('--json', 'print JSON')
  .action(
    run(async (store) => {
      const list = await store.clients.list();
      return { json: { clients: list }, text: table(list) };
    }),
  );
clients
  .command('show <id>')
  .description('show one client (never its secret)')
  .option('--json', 'print JSON')
  .action(
    run(async (store, id: string) => {
      const client = await store.clients.show(id);
      return { json: client, text: JSON.stringify(client, null, 2) };
    }),
  );
clients
  .command('remove <id>')
  .description('remove a client')
  .option('--json', 'print JSON')
  .action(
    run(async (store, id: string) => {
      await store.clients.remove(id);
      return { json: { removed: id }, text: `removed client ${id}` };
    }),
  );
clients
  .command('rotate-secret <id>')
  .description('issue a new client secret (the old one stops working at once)')
  .option('--json', 'print JSON')
  .action(
    run(async (store, id: string) => {
      const rotated = await store.clients.rotateSecret(id);
      return { json: rotated, text: `client_secret: ${rotated.client_secret} (shown once)` };
    }),
  );

const users = program.command('users').description('end users');
users
  .command('add')
  .description('add a user; the password is read from standard input')
  .requiredOption('--email <email>', 'email address (case-insensitive, unique)')
  .option('--name <name>', 'display name')
  .requiredOption('--password-stdin', 'read the password from standard input')
  .option('--json', 'print JSON')
  .action(
    run(async (store, opts: { email: string; name?: string }) => {
      const user = await store.users.add({ email: opts.email, name: opts.name, password: await readStdin() });
      return { json: { sub: user.sub, email: user.email }, text: `added user ${user.email} (${user.sub})` };
    }),
  );
users
  .command('list')
  .description('list users')
  .option('--json', 'print JSON')
  .action(
    run(async (store) => {
      const list = await store.users.list();
      return { json: { users: list }, text: table(list) };
    }),
  );
users
  .command('remove <email>')
  .description('remove a user')
  .option('--json', 'print JSON')
  .action(
    run(async (store, email: string) => {
      await store.users.remove(email);
      return { json: { removed: email.trim().toLowerCase() }, text: `removed user ${email}` };
    }),
  );
users
  .command('set-password <email>')
  .description("set a user's password, read from standard input")
  .requiredOption('--password-stdin', 'read the password from standard input')
  .option('--json', 'print JSON')
  .action(
    run(async (store, email: string) => {
      const user = await store.users.setPassword(email, await readStdin());
      return { json: { sub: user.sub, email: user.email }, text: `password set for ${user.email}` };
    }),
  );

const totp = users.command('totp').description("a user's authenticator app (RFC 6238 TOTP)");
totp
  .command('enroll <email>')
  .description(
    'enrol an authenticator app for a user (replacing any other): prints the secret, its otpauth:// URI and ten recovery codes, once',
  )
  .option('--json', 'print JSON')
  .action(
    run(async (store, email: string) => {
      const enrolment = await new TotpFactor(store).enrolByEmail(email);
      return {
        json: enrolment,
        text: `secret: ${enrolment.secret}\notpauth_uri: ${enrolment.otpauth_uri}\nrecovery codes (shown once): ${enrolment.recovery_codes.join(' ')}`,
      };
    }),
  );
totp
  .command('remove <email>')
  .description(
    "remove a user's authenticator app and recovery codes (the next sign-in needs the password only)",
  )
  .option('--json', 'print JSON')
  .action(
    run(async (store, email: string) => {
      const user = await store.users.removeTotp(email);
      return {
        json: { sub: user.sub, email: user.email, totp: false },
        text: `authenticator app removed for ${user.email}`,
      };
    }),
  );

const passkeys = users.command('passkeys').description("a user's passkeys (WebAuthn)");
passkeys
  .command('remove <email>')
  .description("remove all of a user's passkeys (an admin reset; the user can register new ones)")
  .option('--json', 'print JSON')
  .action(
    run(async (store, email: string) => {
      const removed = await removePasskeysByEmail(store, email);
      return { json: removed, text: `${removed.passkeys_removed} passkey(s) removed for ${removed.email}` };
    }),
  );

const keys = program.command('keys').description('signing keys');
keys
  .command('list')
  .description('list signing keys and their states (never key material)')
  .option('--json', 'print JSON')
  .action(
    run(async (store) => {
      const list = summarize((await store.keyRing.read()) ?? (await store.keyRing.ensure()));
      return { json: { keys: list }, text: table(list) };
    }),
  );
keys
  .command('rotate')
  .description('next becomes current, current becomes retired, a new next is made')
  .option('--now', 'emergency (leaked key): drop the old current key from the JWKS at once')
  .option('--json', 'print JSON')
  .action(
    run(async (store, opts: { now?: boolean }) => {
      const list = summarize(await store.keyRing.rotate(Boolean(opts.now)));
      return { json: { keys: list }, text: table(list) };
    }),
  );
keys
  .command('retire <kid>')
  .description('take a retired key out of the JWKS (refused for the current key)')
  .option('--json', 'print JSON')
  .action(
    run(async (store, kid: string) => {
      const list = summarize(await store.keyRing.retire(kid));
      return { json: { keys: list }, text: table(list) };
    }),
  );

const audit = program.command('audit').description('the tamper-evident audit trail');
audit
  .command('list')
  .description('audit entries, newest first')
  .option(
    '--limit <n>',
    `how many entries (1-${AUDIT_LIST_MAX}, default ${AUDIT_LIST_DEFAULT})`,
    (value: string) => parseAuditLimit(value, '--limit'),
    AUDIT_LIST_DEFAULT,
  )
  .option('--json', 'print JSON')
  .action(
    run(async (store, opts: { limit: number }) => {
      const entries = await store.audit.recent(opts.limit);
      return { json: { entries }, text: table(entries) };
    }),
  );
audit
  .command('verify')
  .description('check the hash chain; exits non-zero naming the first entry changed, removed or reordered')
  .option('--json', 'print JSON')
  .action(
    run(async (store) => {
      const verdict = await store.audit.verify();
      if (!verdict.ok) process.exitCode = 1;
      return {
        json: verdict,
        text: verdict.ok
          ? `ok: ${verdict.entries} entries chained`
          : `BROKEN: entry ${verdict.first_bad.seq} ${verdict.first_bad.reason}`,
      };
    }),
  );

const storeCommand = program.command('store').description('encryption at rest');
storeCommand
  .command('rotate-data-key')
  .description(
    'make a new data encryption key: it seals new writes in 15 s (every instance learns it first); older values still open and are re-sealed as they are read or rewritten',
  )
  .option('--json', 'print JSON')
  .action(
    run(async (store) => {
      const rotation = await store.rotateDataKey();
      return {
        json: rotation,
        text: `new data key ${rotation.kid}, sealing from ${rotation.active_from}; older keys kept: ${rotation.previous.join(', ')}`,
      };
    }),
  );

program
  .command('doctor')
  .description(
    'check the deployment against the production advice: pass, warn or fail per check, with the fix',
  )
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }, command: Command) => {
    const report = (checks: Check[]) => {
      if (checks.some((c) => c.status === 'fail')) process.exitCode = 1;
      return {
        json: { checks },
        text: checks.map((c) => `${c.status.toUpperCase().padEnd(4)}  ${c.id}: ${c.message}`).join('\n'),
      };
    };
    const config = loadConfig();
    if (config.redisUrl) {
      const inStore = run(async (store, _opts: object, _command: Command) =>
        report(await runDoctor({ config, store })),
      );
      return inStore(opts, command);
    }
    // The in-process demo store lives inside the server: check the configuration alone.
    const { json, text } = report(await runDoctor({ config }));
    process.stdout.write(opts.json ? `${JSON.stringify(json)}\n` : `${text}\n`);
  });

try {
  await program.parseAsync(process.argv);
} catch (error) {
  const code = (error as { code?: string }).code ?? '';
  if (code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help')
    process.exit(0);
  if (code.startsWith('commander.')) process.exit(2);
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`admin: ${message}\n`);
  process.exit(error instanceof AppError && error.status === 2 ? 2 : 1);
}
