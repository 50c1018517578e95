import { pino } from 'pino';

/**
 * One structured logger for every process. Secrets never reach it: request logging records method,
 * path and status only, and the redact list catches the usual suspects if someone logs an object whole.
 */
export type Logger = pino.Logger;

export function createLogger(name: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
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
