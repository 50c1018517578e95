/**
 * The load generator, in a process of its own (pinned apart from the server by run.ts): autocannon
 * against one URL, printing one JSON line with the figures run.ts needs.
 * Input (argv[2], JSON): { url, connections, seconds, method?, headers?, body?, bearerFile? }.
 * With `bearerFile` (one token per line) every request carries the next token, each used once: the
 * run ends when they are all spent, and the rate is over the time it took.
 */
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

interface LoadInput {
  url: string;
  connections: number;
  seconds: number;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  bearerFile?: string;
}

export interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  ok: number;
  failed: number;
}

const input = JSON.parse(process.argv[2] ?? '{}') as LoadInput;
const tokens = input.bearerFile
  ? readFileSync(input.bearerFile, 'utf8').split('\n').filter(Boolean)
  : undefined;
let next = 0;
const result = await autocannon({
  url: input.url,
  connections: input.connections,
  ...(tokens ? { amount: tokens.length } : { duration: input.seconds }),
  method: input.method ?? 'GET',
  headers: input.headers,
  body: input.body,
  ...(tokens
    ? {
        requests: [
          {
            setupRequest: (request: autocannon.Request) => ({
              ...request,
              headers: { ...request.headers, authorization: `Bearer ${tokens[next++ % tokens.length]}` },
            }),
          },
        ],
      }
    : {}),
});
const ok = result['2xx'];
const out: LoadResult = {
  rps: ok / (tokens ? result.duration : input.seconds),
  p50: result.latency.p50,
  p99: result.latency.p99,
  ok,
  failed: result.non2xx + result.errors + result.timeouts,
};
console.log(JSON.stringify(out));
