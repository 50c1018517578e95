import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './auth-server.ts';
import { connectRedis } from './redis.ts';

export interface ExtraRedis {
  url: string;
  port: number;
  dir: string;
  /** SIGTERM by default; SIGKILL is Redis dying with commands in flight. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  start(): Promise<void>;
}

/**
 * A redis-server of the test's own on a free loopback port, with append-only persistence fsynced
 * on every write, so a test can stop and restart it and check that nothing acknowledged is lost.
 */
export async function startExtraRedis(extraArgs: string[] = []): Promise<ExtraRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'idp-redis-'));
  let child: ChildProcess | undefined;
  const url = `redis://127.0.0.1:${port}`;
  const start = async () => {
    child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--save',
        '',
        ...extraArgs,
      ],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        const probe = await connectRedis(url);
        probe.disconnect();
        return;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  };
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child?.once('exit', resolve));
    child.kill(signal);
    await exited;
  };
  await start();
  return { url, port, dir, start, stop };
}
