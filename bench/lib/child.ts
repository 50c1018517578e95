import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Is `taskset` here? Then servers run on CPU 0 and load generators on the other CPUs. */
export const HAS_TASKSET = (() => {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

export type Cpus = 'server' | 'load' | 'all';

function cpuList(cpus: Cpus, count: number): string | undefined {
  if (!HAS_TASKSET || cpus === 'all' || count < 2) return undefined;
  return cpus === 'server' ? '0' : `1-${count - 1}`;
}

export interface Child {
  process: ChildProcess;
  /** What the child printed on its READY line. */
  info: Record<string, unknown>;
  stop(): Promise<void>;
}

export const benchFile = (name: string) => fileURLToPath(new URL(`../${name}`, import.meta.url));

/**
 * Starts `node <file>` pinned to `cpus`, waits for its `READY {json}` line on stdout and returns
 * it. Anything else on stdout is dropped (server request logs), stderr is passed through.
 */
export function startChild(
  file: string,
  { cpus, env = {}, args = [] }: { cpus: Cpus; env?: Record<string, string>; args?: string[] },
  cpuCount: number,
): Promise<Child> {
  const list = cpuList(cpus, cpuCount);
  const command = list ? 'taskset' : process.execPath;
  const argv = list ? ['-c', list, process.execPath, file, ...args] : [file, ...args];
  const child = spawn(command, argv, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`${file} did not start in 60 s`)), 60_000);
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('READY ')) continue;
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve({
          process: child,
          info: JSON.parse(line.slice(6)),
          stop: () =>
            new Promise<void>((done) => {
              if (child.exitCode !== null) return done();
              child.once('exit', () => done());
              child.kill('SIGTERM');
              setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
            }),
        });
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${file} exited with ${code} before it was ready`));
    });
  });
}

/** Runs `node <file>` pinned to `cpus` to completion and parses the JSON it prints last. */
export function runChild<T>(file: string, cpus: Cpus, cpuCount: number, input: unknown): Promise<T> {
  const list = cpuList(cpus, cpuCount);
  const args = [file, JSON.stringify(input)];
  const child = list
    ? spawn('taskset', ['-c', list, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
    });
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`${file} exited with ${code}`));
      const last = out.trim().split('\n').at(-1) ?? '';
      try {
        resolve(JSON.parse(last) as T);
      } catch (error) {
        reject(error);
      }
    });
  });
}

/** CPU seconds (user + system) a process and its children have used, from /proc. */
export function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime, stime, cutime, cstime are fields 14-17 (1-based) of the whole line.
      ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
    } catch {
      // the process is gone
    }
  }
  return ticks / 100;
}

/** The pids of a process and its direct children (a cluster primary and its workers). */
export function processGroup(pid: number): number[] {
  try {
    const children = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean)
      .map(Number);
    return [pid, ...children];
  } catch {
    return [pid];
  }
}
