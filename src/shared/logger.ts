import { pino } from 'pino';

/**
 * One structured logger for every process. Secrets never reach it: request logging records method,
 * path and status only, and the redact list catches the usual suspects if someone logs an object whole.
 */
export type Logger = pino.Logger;

/** `level` comes from the validated config (LOG_LEVEL); before the config is read, `info`. */
export function createLogger(name: string, level = 'info'): Logger {
  return pino({
    name,
    level,
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
  });
}
