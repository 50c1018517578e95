type LogMethod = (fields: Record<string, unknown>, message: string) => void;

/** What the module logs through: a pino logger fits, and so does anything with these three methods. */
export interface AuthLogger {
  readonly info: LogMethod;
  readonly warn: LogMethod;
  readonly error: LogMethod;
}

const noop: LogMethod = () => {};

export const silentLogger: AuthLogger = { info: noop, warn: noop, error: noop };
