import { pino } from 'pino';

/**
 * One structured logger for every process. Secrets never reach it: request logging records method,
 * path and status only, and the redact list catches the usual suspects if someone logs an object whole.
 */
export type Logger = pino.Logger;

/**
 * Standard output, shared by every logger of the process and written asynchronously in blocks of
 * about 4 KB (a write per line cost the token endpoint 6% of its time), at the latest
 * FLUSH_INTERVAL_MS after a line is logged. Warnings and errors are written at once, synchronously,
 * so the lines that explain a crash are out before it; pino flushes the rest when the process exits.
 * A process killed outright (SIGKILL, abort) can lose the info lines of its last FLUSH_INTERVAL_MS.
 * If standard output stops draining, lines beyond MAX_BUFFERED_BYTES are dropped rather than held.
 */
let stdout: ReturnType<typeof pino.destination> | undefined;
const FLUSH_INTERVAL_MS = 250;
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;
const WARN = 40;

function sharedStdout(): ReturnType<typeof pino.destination> {
  if (!stdout) {
    const destination = pino.destination({
      dest: 1,
      sync: false,
      minLength: 4096,
      maxLength: MAX_BUFFERED_BYTES,
    });
    setInterval(() => destination.flush(), FLUSH_INTERVAL_MS).unref();
    stdout = destination;
  }
  return stdout;
}

function flushNow(): void {
  try {
    stdout?.flushSync();
  } catch {
    stdout?.flush();
  }
}

/** `level` comes from the validated config (LOG_LEVEL); before the config is read, `info`. */
export function createLogger(name: string, level = 'info'): Logger {
  return pino(
    {
      name,
      level,
      hooks: {
        logMethod(args, method, lineLevel) {
          method.apply(this, args);
          if (lineLevel >= WARN) flushNow();
        },
      },
      redact: {
        paths: [
          'password',
          '*.password',
          'client_secret',
          '*.client_secret',
          'authorization',
          '*.authorization',
          'headers.authorization',
          'headers.cookie',
          'access_token',
          'refresh_token',
          'id_token',
          'token',
          '*.token',
        ],
        censor: '[redacted]',
      },
    },
    sharedStdout(),
  );
}
