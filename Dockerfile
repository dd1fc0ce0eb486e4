# The storage-node image (`s3dfs-storage-node`); the same image runs any s3dfs command.
#
# Default target `runtime`: builds from source (npm ci + tsc) in an official Node image, then
# copies dist/ and production node_modules onto BASE_IMAGE. Needs BuildKit (the default of
# `docker build`), which skips the `prebuilt` stage below.
#   docker build -t s3dfs-storage-node .
#
# Target `prebuilt`: no npm or shell needed in any image; copies an already built tree (DIST_DIR,
# node_modules with production dependencies, package.json) onto BASE_IMAGE. This is what
# `node dist/manager/runtime/docker-image.js` sends, and how CI builds from a local base image:
#   node dist/manager/runtime/docker-image.js   (S3DFS_DOCKER_BASE_IMAGE=s3dfs-node-base:local)
ARG BASE_IMAGE=node:20-bookworm-slim
ARG BUILD_IMAGE=node:20-bookworm-slim

FROM ${BASE_IMAGE} AS prebuilt
ARG DIST_DIR=dist
ENV NODE_ENV=production PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /app
COPY package.json ./
COPY node_modules ./node_modules
COPY ${DIST_DIR} ./dist
VOLUME /data
ENTRYPOINT ["node", "--initial-old-space-size=64", "/app/dist/bin/s3dfs.js"]
CMD ["node"]

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --no-audit --no-fund
COPY bin ./bin
COPY lib ./lib
COPY migrations ./migrations
COPY gateway ./gateway
COPY manager ./manager
COPY storage-node ./storage-node
COPY console ./console
RUN npx tsc -p tsconfig.json && node console/build.mjs && npm prune --omit=dev

FROM ${BASE_IMAGE} AS runtime
ENV NODE_ENV=production PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
VOLUME /data
ENTRYPOINT ["node", "--initial-old-space-size=64", "/app/dist/bin/s3dfs.js"]
CMD ["node"]
