# Chorus image: build stage runs the README's install (scripts/setup.sh: npm ci, whose postinstall
# leaves a verified mediasoup worker, then npm run build); the runtime stage carries only the
# built server and pages, production node_modules and the worker.
#
#   docker build -t chorus .
#   docker run --rm -p 3000:3000 -p 40000-40999:40000-40999/udp \
#     -e RTC_MIN_PORT=40000 -e RTC_MAX_PORT=40999 -e RTC_ANNOUNCED_ADDRESS=<public ip> chorus

# Node 24 (LTS): Node 20 reached its end of life in April 2026. What runs here on 24 is tested
# outside Docker (README, "Node.js"): scripts/setup.sh and the server with its records process.
FROM node:24-bookworm AS build
WORKDIR /app
# mediasoup's worker is built from source with Chorus's patch series, against Debian's libraries
# (scripts/setup-worker.sh, scripts/mediasoup/README.md), and ends verified in this cache.
ENV CHORUS_CACHE_DIR=/opt/chorus-cache
COPY . .
# The worker is linked from the cache: the binary itself, and the build.json beside it that
# /health/info reports (patches, SRTP crypto, io_uring), go into node_modules for the runtime
# stage; then development dependencies are dropped.
RUN scripts/setup.sh \
 && worker=node_modules/mediasoup/worker/out/Release/mediasoup-worker \
 && built="$(readlink -f "$worker")" \
 && cp --remove-destination "$built" "$worker" \
 && cp "$(dirname "$built")/build.json" "$(dirname "$worker")/build.json" \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf /opt/chorus-cache/build /opt/chorus-cache/meson-venv

FROM node:24-bookworm-slim AS runtime
# Shared libraries of a worker built from source (a prebuilt one needs none of them).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 libuv1 libsrtp2-1 libusrsctp2 libabsl20220623 libnss3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production \
    CHORUS_DATA_DIR=/var/lib/chorus
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN mkdir -p /var/lib/chorus && chown node:node /var/lib/chorus
USER node
# HTTP + signaling; RTC ports (RTC_MIN_PORT..RTC_MAX_PORT, UDP and TCP) must be published too.
EXPOSE 3000
EXPOSE 40000-49999/udp
EXPOSE 40000-49999/tcp
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.CHORUS_PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# `npm start` is `node dist/server/main.js`; node runs as PID 1 itself so SIGTERM reaches it and
# starts the drain (npm in between would not forward it reliably).
STOPSIGNAL SIGTERM
CMD ["node", "dist/server/main.js"]
