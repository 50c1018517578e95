/** The sample resource server, built by its own app factory, verifying tokens from the AS at ISSUER. */

import { loadResourceServerConfig } from '../../src/config/resource-server-config.ts';
import { buildResourceServerApp, createBearerAuthFromConfig } from '../../src/resource-server/app.ts';
import { createInMemoryInsuranceRepository } from '../../src/resource-server/insurance/in-memory-repository.ts';
import { createLogger } from '../../src/shared/logger.ts';

const config = loadResourceServerConfig();
const logger = createLogger('bench-resource-server', config.logLevel);
const bearerAuth = createBearerAuthFromConfig({ config, logger });
const app = buildResourceServerApp({
  config,
  logger,
  bearerAuth,
  repository: createInMemoryInsuranceRepository(),
});
const server = app.listen(config.port, '127.0.0.1', () => {
  console.log(`READY ${JSON.stringify({ url: `http://127.0.0.1:${config.port}` })}`);
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
