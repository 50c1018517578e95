import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { ConfigError } from './errors.ts';

/**
 * Every listener of every server (public, admin, resource server) is made and opened here: plain
 * HTTP, or HTTPS when TLS files are configured, with the same timeouts, and a port already in use
 * reported as one clear line instead of a stack.
 */

/** TLS_CERT_FILE / TLS_KEY_FILE: PEM files; the certificate file may carry the chain after the leaf. */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface ListenerOptions {
  /** Unset: plain HTTP. */
  readonly tls?: TlsFiles | undefined;
  /** Largest request head accepted (bytes); Node's default 16 KiB when unset. */
  readonly maxHeaderSize?: number;
}

/** Thrown when a listener cannot open: one line for the operator, no stack. */
export class ListenError extends Error {
  override readonly name = 'ListenError';
}

function readPem(variable: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new ConfigError(`${variable}: cannot read ${file} (${(error as NodeJS.ErrnoException).code})`);
  }
}

/** An HTTP or HTTPS server for `handler`, with bounded header and request times (slowloris). */
export function createListener(handler: RequestListener, options: ListenerOptions = {}): Server {
  const common = {
    requestTimeout: 30_000,
    headersTimeout: 10_000,
    keepAliveTimeout: 5_000,
    ...(options.maxHeaderSize ? { maxHeaderSize: options.maxHeaderSize } : {}),
  };
  if (!options.tls) return createHttpServer(common, handler);
  return createHttpsServer(
    {
      ...common,
      cert: readPem('TLS_CERT_FILE', options.tls.certFile),
      key: readPem('TLS_KEY_FILE', options.tls.keyFile),
      minVersion: 'TLSv1.2',
    },
    handler,
  ) as unknown as Server;
}

/**
 * Opens `server` on `port` (0: any free one) and `host` (unset: every interface) and resolves with
 * the port it got. `variable` names the setting the operator would change, e.g. `PORT`.
 */
export async function listen(server: Server, port: number, host: string | undefined, variable: string) {
  server.listen(port, host);
  try {
    await once(server, 'listening');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const where = `${host ?? 'every interface'} port ${port}`;
    if (code === 'EADDRINUSE')
      throw new ListenError(
        `${variable}=${port}: the port is already in use on ${host ?? 'this machine'} (is another instance running? stop it, or set ${variable} to a free port)`,
      );
    if (code === 'EACCES')
      throw new ListenError(
        `${variable}=${port}: not allowed to listen on ${where} (ports below 1024 need privileges)`,
      );
    if (code === 'EADDRNOTAVAIL')
      throw new ListenError(`${variable}: ${host} is not an address of this machine`);
    throw error;
  }
  return (server.address() as AddressInfo).port;
}
