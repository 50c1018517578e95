import cluster, { type Worker } from 'node:cluster';
import type { Logger } from './logger.ts';
import { serveClusterMetrics } from './metrics.ts';

/** A worker that dies this many times within RESTART_WINDOW_MS stops the group: it will not get better. */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 30_000;
/** After SIGTERM, workers get this long to finish their in-flight requests before they are killed. */
const GROUP_SHUTDOWN_MS = 20_000;

export interface WorkerGroup {
  /** Resolves when every worker is up (listening), rejects when the group gives up. */
  ready: Promise<void>;
}

/**
 * True in the process that should serve requests: the only process when `workers` is 1, a worker
 * otherwise. Call `superviseWorkers` in the other one (the cluster primary).
 */
export function servesRequests(workers: number): boolean {
  return workers <= 1 || !cluster.isPrimary;
}

/**
 * The cluster primary: forks `workers` copies of this program, restarts one that dies unexpectedly,
 * and on SIGTERM/SIGINT passes the signal to every worker, waits for all of them to finish their
 * in-flight requests, then exits (0 when every worker stopped cleanly).
 */
export function superviseWorkers(workers: number, logger: Logger): WorkerGroup {
  let stopping = false;
  const exitCodes: number[] = [];
  const restarts: number[] = [];
  const listening = new Set<number>();
  let markReady: () => void = () => {};
  let markFailed: (error: Error) => void = () => {};
  const ready = new Promise<void>((resolve, reject) => {
    markReady = resolve;
    markFailed = reject;
  });
  ready.catch(() => {});

  const fork = (): Worker => cluster.fork();
  cluster.on('listening', (worker) => {
    listening.add(worker.id);
    if (listening.size >= workers) markReady();
  });
  cluster.on('exit', (worker, code, signal) => {
    listening.delete(worker.id);
    if (stopping) {
      exitCodes.push(code ?? 1);
      const alive = Object.values(cluster.workers ?? {}).filter(
        (w) => w && w.id !== worker.id && !w.isDead(),
      );
      if (alive.length === 0) {
        logger.info('all workers stopped');
        process.exit(exitCodes.some((c) => c !== 0) ? 1 : 0);
      }
      return;
    }
    const now = Date.now();
    restarts.push(now);
    while (restarts.length && (restarts[0] as number) < now - RESTART_WINDOW_MS) restarts.shift();
    if (restarts.length > MAX_RESTARTS) {
      logger.fatal({ code, signal }, `workers keep dying (${restarts.length} in 30 s); stopping the group`);
      markFailed(new Error('workers keep dying'));
      void stop('worker failures', 1);
      return;
    }
    logger.error({ pid: worker.process.pid, code, signal }, 'a worker died; starting a new one');
    fork();
  });

  async function stop(reason: string, exitCode = 0): Promise<void> {
    if (stopping) return;
    stopping = true;
    if (exitCode) exitCodes.push(exitCode);
    logger.info({ reason }, 'stopping every worker');
    const alive = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    if (alive.length === 0) process.exit(exitCode);
    for (const worker of alive) worker.process.kill('SIGTERM');
    setTimeout(() => {
      logger.error('workers did not stop in time; killing them');
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
      process.exit(1);
    }, GROUP_SHUTDOWN_MS).unref();
  }
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  serveClusterMetrics(); // one scrape reaching any worker answers for the whole group
  logger.info({ workers }, 'starting workers');
  for (let i = 0; i < workers; i++) fork();
  return { ready };
}
