import { loadDemoClientConfig } from '../config/demo-client-config.ts';
import { ConfigError } from '../shared/errors.ts';
import { createListener, ListenError, listen } from '../shared/listen.ts';
import { createLogger } from '../shared/logger.ts';
import { buildDemoClientApp } from './app.ts';

/** `npm run demo-client`: the demo web app on http://localhost:8080 (DEMO_CLIENT_PORT). */
function fatal(error: unknown): never {
  if (error instanceof ConfigError || error instanceof ListenError) {
    createLogger('demo-client').fatal(error.message);
    process.exit(1);
  }
  throw error;
}

let config: ReturnType<typeof loadDemoClientConfig>;
try {
  config = loadDemoClientConfig();
} catch (error) {
  fatal(error);
}
const logger = createLogger('demo-client', config.logLevel);
const server = createListener(buildDemoClientApp({ config, logger }).callback());
await listen(server, config.port, 'localhost', 'DEMO_CLIENT_PORT').catch(fatal);
logger.info(
  { url: `${config.baseUrl}/`, issuer: config.issuer, client_id: config.clientId, api: config.apiUrl },
  'demo client listening: open it in a browser',
);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
