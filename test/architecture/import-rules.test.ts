import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

/**
 * Imports point inward (issue 8 §5). Each rule names the files it governs and the modules they may
 * not import, as repository paths (folders end in `/`) or npm package names. Paths are resolved, so
 * `../x` and `../../a/x` are judged by where they land, type-only imports included.
 */
interface Rule {
  why: string;
  files: string[];
  forbidden: string[];
  /** Also follow the governed files' own imports through src/ (the CLI must not reach HTTP code at all). */
  transitive?: boolean;
}

const AS = 'src/authorization-server/';
/** Code that exists to serve HTTP: apps, the provider, the pages, the admin API, the resource server. */
const HTTP_LAYERS = [
  `${AS}app.ts`,
  `${AS}authorization-server.ts`,
  `${AS}main.ts`,
  `${AS}admin-api/`,
  `${AS}interactions/`,
  `${AS}provider/`,
  'src/resource-server/',
];
const SERVER_CODE = ['src/authorization-server/', 'src/resource-server/', 'src/cli/'];

const RULES: Rule[] = [
  {
    why: 'the CLI never imports an HTTP layer',
    files: ['src/cli/'],
    forbidden: [...HTTP_LAYERS, 'koa', '@koa/router', '@koa/bodyparser', 'oidc-provider'],
    transitive: true,
  },
  {
    why: 'the resource server never imports the authorization server (it knows it by issuer URL only)',
    files: ['src/resource-server/'],
    forbidden: ['src/authorization-server/', 'src/cli/', 'oidc-provider'],
  },
  {
    why: 'the demo client knows the servers by URL only, as any relying party',
    files: ['src/demo-client/'],
    forbidden: [...SERVER_CODE, 'oidc-provider'],
  },
  { why: 'shared/ imports no server code', files: ['src/shared/'], forbidden: SERVER_CODE },
  { why: 'config/ imports no server code', files: ['src/config/'], forbidden: SERVER_CODE },
  {
    why: 'storage/ imports no provider/, interactions/ or admin-api/',
    files: [`${AS}storage/`],
    forbidden: [`${AS}provider/`, `${AS}interactions/`, `${AS}admin-api/`],
  },
  {
    why: 'keys/ is pure logic: no storage, no HTTP',
    files: [`${AS}keys/`],
    forbidden: [`${AS}storage/`, ...HTTP_LAYERS],
  },
];

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const IMPORT =
  /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

/** The module specifiers a source file imports, static, re-exported and dynamic. */
function specifiers(source: string): string[] {
  return [...source.matchAll(IMPORT)].map((m) => (m[1] ?? m[2]) as string);
}

/** A specifier as a repository path (relative imports) or a package name (bare imports). */
function target(fromFile: string, specifier: string): string {
  if (specifier.startsWith('.')) return relative(ROOT, resolve(ROOT, dirname(fromFile), specifier));
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] as string);
}

const under = (path: string, entry: string) =>
  entry.endsWith('/') ? path.startsWith(entry) : path === entry;

/** Every broken rule in a set of files given as path → source. */
function violations(sources: Map<string, string>, rules: Rule[] = RULES): string[] {
  const found: string[] = [];
  for (const rule of rules) {
    for (const file of [...sources.keys()].filter((f) => rule.files.some((e) => under(f, e)))) {
      const seen = new Set<string>();
      const walk = (current: string, via: string[]) => {
        if (seen.has(current)) return;
        seen.add(current);
        for (const specifier of specifiers(sources.get(current) ?? '')) {
          const to = target(current, specifier);
          if (rule.forbidden.some((e) => under(to, e))) {
            found.push(`${[...via, current].join(' → ')} imports ${specifier}: ${rule.why}`);
          } else if (rule.transitive && specifier.startsWith('.') && sources.has(to)) {
            walk(to, [...via, current]);
          }
        }
      };
      walk(file, []);
    }
  }
  return [...new Set(found)];
}

function sourceFiles(folder: string): string[] {
  return readdirSync(join(ROOT, folder), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

test('imports in src/ point inward', (t) => {
  const files = sourceFiles('src');
  t.true(files.length > 50, `found ${files.length} source files`);
  const sources = new Map(files.map((f) => [f, readFileSync(join(ROOT, f), 'utf8')]));
  t.deepEqual(violations(sources), []);
});

test('a wrong import is caught, directly or through another module, whatever its spelling', (t) => {
  const sources = new Map([
    ['src/cli/main.ts', "import { openStore } from '../authorization-server/storage/store.ts';\n"],
    [
      'src/authorization-server/storage/store.ts',
      "import type { X } from '../provider/accounts.ts';\nimport { y } from './kv.ts';\n",
    ],
    ['src/authorization-server/storage/kv.ts', "export { buildApp } from '../app.ts';\n"],
    ['src/resource-server/app.ts', "const m = await import('../authorization-server/keys/x.ts');\n"],
    ['src/shared/logger.ts', "import {\n  a,\n} from '../cli/main.ts';\n"],
    ['src/config/config.ts', "import Koa from 'koa';\nimport { z } from 'zod';\n"],
    ['src/authorization-server/keys/ring.ts', "import { Kv } from '../storage/kv.ts';\n"],
  ]);
  const found = violations(sources);
  const has = (text: string) =>
    t.true(
      found.some((v) => v.includes(text)),
      `${text} in ${found.join('\n')}`,
    );
  has('src/authorization-server/storage/store.ts imports ../provider/accounts.ts: storage/');
  has('src/cli/main.ts → src/authorization-server/storage/store.ts imports ../provider/accounts.ts: the CLI');
  has(
    'src/cli/main.ts → src/authorization-server/storage/store.ts → src/authorization-server/storage/kv.ts imports ../app.ts',
  );
  has('src/resource-server/app.ts imports ../authorization-server/keys/x.ts');
  has('src/shared/logger.ts imports ../cli/main.ts');
  has('src/authorization-server/keys/ring.ts imports ../storage/kv.ts');
  // Libraries are not server code: config/ may use koa's types as long as it imports no server module.
  t.false(found.some((v) => v.startsWith('src/config/')));
});

test('the import scanner reads every import form', (t) => {
  t.deepEqual(
    specifiers(
      [
        "import a from 'a';",
        "import type { B } from '../b.ts';",
        "import { c,\n  d } from './c.ts';",
        "export { e } from './e.ts';",
        "export * from './f.ts';",
        "import './g.ts';",
        "const h = await import('./h.ts');",
      ].join('\n'),
    ),
    ['a', '../b.ts', './c.ts', './e.ts', './f.ts', './g.ts', './h.ts'],
  );
});
