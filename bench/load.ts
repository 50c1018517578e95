/**
 * The load generator, in a process of its own (pinned apart from the server by run.ts): autocannon
 * against one URL, printing one JSON line with the figures run.ts needs.
 * Input (argv[2], JSON): { url, connections, seconds, method?, headers?, body? }.
 */
import autocannon from 'autocannon';

interface LoadInput {
  url: string;
  connections: number;
  seconds: number;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
}

export interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  ok: number;
  failed: number;
}

const input = JSON.parse(process.argv[2] ?? '{}') as LoadInput;
const result = await autocannon({
  url: input.url,
  connections: input.connections,
  duration: input.seconds,
  method: input.method ?? 'GET',
  headers: input.headers,
  body: input.body,
});
const ok = result['2xx'];
const out: LoadResult = {
  rps: ok / input.seconds,
  p50: result.latency.p50,
  p99: result.latency.p99,
  ok,
  failed: result.non2xx + result.errors + result.timeouts,
};
console.log(JSON.stringify(out));
