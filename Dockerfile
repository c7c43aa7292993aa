# Courier's image: the CLI, so one image runs the sidecar, the Sentry and the injector
# (`courier sidecar`, `courier sentry`, `courier injector`). Built and run as documented in docs/kubernetes.md#image.

# Build: the full Node.js image has python3, make and g++ for better-sqlite3's native binding.
FROM node:24 AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: "prepare" would build before the sources are here; only the native binding needs its script.
RUN npm ci --ignore-scripts && npm rebuild better-sqlite3
COPY binding.gyp ./
COPY native ./native
RUN npm run install
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --ignore-scripts

# Runtime: the same Debian and Node.js as the build (the native binding is built against them), without the toolchain.
FROM node:24-slim
ENV NODE_ENV=production
# The launcher's allocator setting and Node flags (src/runtime/heap-flags.ts), as the `courier` executable's
# interpreter line gives them, which an ENTRYPOINT that runs `node` itself bypasses.
ENV MALLOC_MMAP_THRESHOLD_=32768
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/build/Release/courier_native.node ./build/Release/courier_native.node
COPY proto ./proto
COPY dashboard ./dashboard
# The image's `node` user, by number so that Kubernetes can check runAsNonRoot.
USER 1000:1000
ENTRYPOINT ["node", "--max-semi-space-size=2", "--single-threaded-gc", "--initial-old-space-size=8", "--no-maglev", "--heap-growing-percent=30", "/app/dist/cli/main.js"]
