# syntax=docker/dockerfile:1
# Build: a static binary (no cgo: the embedded SQLite driver is pure Go).
FROM golang:1.26-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/usersync ./cmd/usersync

# Run: CA certificates (Clerk and Neon are reached over TLS), a non-root user,
# and a writable working directory for the embedded database and dev secret.
FROM alpine:3.22
RUN apk add --no-cache ca-certificates tzdata \
 && addgroup -S usersync && adduser -S -G usersync -h /var/lib/usersync usersync
COPY --from=build /out/usersync /usr/local/bin/usersync
USER usersync
WORKDIR /var/lib/usersync
ENV PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD wget -q -O /dev/null "http://127.0.0.1:${PORT}/healthz" || exit 1
ENTRYPOINT ["usersync"]
CMD ["serve"]
