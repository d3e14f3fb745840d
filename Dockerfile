# wattpool: multi-stage build of the one binary, run as a non-root user on a
# distroless base (no shell, no package manager: nothing to exploit but us).
#
#   docker build -t wattpool .
#   docker run --rm wattpool version
#
# docker-compose.yml wires it to PostgreSQL and a Bitcoin Core node.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Dependencies first, so code edits do not re-download modules.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
ARG VERSION=docker
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/usr/local/bin/wattpool ./cmd/wattpool \
 && mkdir -p /out/var/lib/wattpool/spool

FROM gcr.io/distroless/static-debian12:nonroot
# distroless' nonroot user is uid/gid 65532; the spool folder must be its own
# so a named volume mounted on /var/lib/wattpool starts out writable.
COPY --from=build /out/usr/local/bin/wattpool /usr/local/bin/wattpool
COPY --from=build --chown=65532:65532 /out/var/lib/wattpool /var/lib/wattpool
COPY wattpool.example.toml /etc/wattpool/wattpool.example.toml
USER 65532:65532
WORKDIR /var/lib/wattpool
ENV WATTPOOL_SPOOL_DIR=/var/lib/wattpool/spool \
    WATTPOOL_STRATUM_ADDR=0.0.0.0:3333 \
    WATTPOOL_HTTP_ADDR=0.0.0.0:8080 \
    WATTPOOL_LOG_FORMAT=json
# 3333: stratum (miners). 8080: /metrics, /api/v1/status, /healthz, /readyz.
EXPOSE 3333 8080
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/wattpool", "healthcheck", "--ready"]
ENTRYPOINT ["/usr/local/bin/wattpool"]
CMD ["serve"]
