# syntax=docker/dockerfile:1
# Multi-stage: dependencies are installed in a throw-away stage; the runtime image has production
# dependencies, the TypeScript sources (Node 24 runs them directly) and the views, and runs as a
# non-root user.
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=optional: the image's own Node 24 runs the sources, so not the `node` package the npm
# scripts bring for older machines.
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
COPY views ./views
# keys/ holds secret files when they are not given through the environment; owned by the app user.
RUN mkdir -p keys && chown node:node keys
USER node
EXPOSE 3000 3001 4000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "src/authorization-server/main.ts"]
