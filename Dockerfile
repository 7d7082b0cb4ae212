# The image: a static usersync on an empty base (scratch), non-root, with CA
# certificates and its own time-zone data. Builds with no network beyond the
# base image and the Go module download:
#   docker build --build-arg VERSION=v1.2.3 -t usersync .

FROM golang:1.26-alpine AS modules
WORKDIR /src
# No cgo (the embedded SQLite driver is pure Go), so the binary runs on scratch.
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
# Modules first: this layer is reused until go.mod or go.sum change. The zips
# are not read again once extracted; without them every later layer is smaller.
COPY go.mod go.sum ./
RUN go mod download && find "$(go env GOMODCACHE)/cache/download" -name '*.zip' -exec rm {} +

# The third-party packages the binary imports, one per line: this changes only
# when an import does, so the build stage below can keep their compiled form
# in a layer of its own and recompile only usersync's packages after an edit.
FROM modules AS imports
COPY . .
RUN go list -deps -f '{{if not .Standard}}{{if ne .Module.Path "github.com/usersync/usersync"}}{{.ImportPath}}{{end}}{{end}}' ./cmd/usersync >/imports.txt

FROM modules AS build
COPY --from=imports /imports.txt /imports.txt
RUN go build -tags timetzdata $(cat /imports.txt)
COPY . .
ARG VERSION=dev
# timetzdata embeds Go's zone database (about 450 kB), so the binary needs no
# /usr/share/zoneinfo, which scratch does not have. The runtime
# tree is assembled under /out: the CA bundle (Clerk and hosted Postgres are
# reached over TLS), a passwd line for the numeric user (so runAsNonRoot can
# verify it) and its working directory for the embedded database and the
# development secret.
RUN go build -tags timetzdata -ldflags "-s -w -X main.version=${VERSION}" -o /out/usr/local/bin/usersync ./cmd/usersync \
 && mkdir -p /out/etc/ssl/certs /out/var/lib/usersync /out/tmp \
 && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ \
 && echo 'usersync:x:10001:10001:usersync:/var/lib/usersync:/sbin/nologin' >/out/etc/passwd \
 && echo 'usersync:x:10001:' >/out/etc/group \
 && chown 10001:10001 /out/var/lib/usersync && chmod 700 /out/var/lib/usersync && chmod 1777 /out/tmp

FROM scratch
COPY --from=build /out/ /
USER 10001:10001
# The default database (sqlite usersync.db) and the development secret land
# here: mount a volume on it to keep them.
WORKDIR /var/lib/usersync
ENV PATH=/usr/local/bin PORT=8080
EXPOSE 8080
# No shell in the image: the binary probes itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["usersync", "healthcheck"]
ENTRYPOINT ["usersync"]
CMD ["serve"]
