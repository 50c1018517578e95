import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import test from 'ava';

const LOGGER = join(import.meta.dirname, '..', '..', 'src', 'shared', 'logger.ts');

/** Runs `script` in a fresh Node process (this one's binary) and collects its standard output lines. */
async function run(script: string): Promise<{ lines: Record<string, unknown>[]; signal: string | null }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString('utf8');
  });
  const [, signal] = (await once(child, 'exit')) as [number | null, string | null];
  const lines = out
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { lines, signal };
}

test('warnings and errors are written before a process killed outright dies', async (t) => {
  const { lines, signal } = await run(`
    const { createLogger } = await import(${JSON.stringify(LOGGER)});
    const logger = createLogger('crash-test');
    logger.warn('about to fail');
    logger.error('failing');
    process.kill(process.pid, 'SIGKILL');
  `);
  t.is(signal, 'SIGKILL');
  t.deepEqual(
    lines.map((line) => line.msg),
    ['about to fail', 'failing'],
  );
});

test('info lines are written in blocks, every one of them and in order by the time the process exits', async (t) => {
  const { lines } = await run(`
    const { createLogger } = await import(${JSON.stringify(LOGGER)});
    const logger = createLogger('block-test');
    for (let i = 0; i < 1000; i++) logger.info({ i }, 'line');
    logger.info('last');
    process.exit(0);
  `);
  t.is(lines.length, 1001);
  t.is(lines.at(-1)?.msg, 'last');
  t.deepEqual(
    lines.slice(0, 1000).map((line) => line.i),
    Array.from({ length: 1000 }, (_, i) => i),
  );
});
