/**
 * This product's authorization server, built by the same composition root as `npm start`
 * (src/authorization-server/authorization-server.ts), on real Redis, with the production token
 * limiter on. Settings come from the environment (run.ts passes them), as for `npm start`.
 */
import { buildAuthorizationServer } from '../../src/authorization-server/authorization-server.ts';
import { loadConfig } from '../../src/config/config.ts';
import { createLogger } from '../../src/shared/logger.ts';

const config = loadConfig();
const logger = createLogger('bench-authorization-server', config.logLevel);
const { app, close } = await buildAuthorizationServer(config, { logger });
const server = app.listen(config.port, '127.0.0.1', () => {
  console.log(`READY ${JSON.stringify({ url: config.issuer })}`);
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => void close().then(() => process.exit(0)));
});
