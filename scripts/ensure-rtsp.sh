#!/usr/bin/env bash
# Make sure an RTSP server binary (mediamtx, pinned) exists for the ingest tests; idempotent.
#
# mediamtx is built from its Go module source. `go install github.com/bluenviron/mediamtx@V`
# does not work on its own: two files it embeds (the hls.js player and a VERSION file) are
# fetched by `go generate` at release time and are not in the module zip. Neither matters for
# RTSP, so we build from the module cache with a placeholder player and the pinned VERSION.
# Nothing is downloaded at run time by the product; this runs at CI/setup time only.
#
#   scripts/ensure-rtsp.sh          # prints the binary's path
#   EVIDENCE_VAULT_MEDIAMTX_BIN=... # an existing binary wins; nothing is built
set -euo pipefail

MEDIAMTX_VERSION="${MEDIAMTX_VERSION:-v1.12.3}"
BIN_DIR="${EVIDENCE_VAULT_BIN_DIR:-$HOME/.cache/evidence-vault/bin}"
TARGET="$BIN_DIR/mediamtx"

if [[ -n "${EVIDENCE_VAULT_MEDIAMTX_BIN:-}" && -x "${EVIDENCE_VAULT_MEDIAMTX_BIN}" ]]; then
    echo "$EVIDENCE_VAULT_MEDIAMTX_BIN"
    exit 0
fi
# The build carries one upstream fix (below); the marker names it, so older builds are redone.
BUILD_ID="$MEDIAMTX_VERSION+playback-auth-fix"
if [[ -x "$TARGET" ]] && [[ "$(cat "$TARGET.version" 2>/dev/null)" == "$BUILD_ID" ]]; then
    echo "$TARGET"
    exit 0
fi

GO="$(command -v go || true)"
if [[ -z "$GO" && -x /usr/local/go/bin/go ]]; then
    GO=/usr/local/go/bin/go
fi
if [[ -z "$GO" ]]; then
    echo "ensure-rtsp: Go is needed to build mediamtx $MEDIAMTX_VERSION (install Go >= 1.24)" >&2
    exit 1
fi

module="github.com/bluenviron/mediamtx@$MEDIAMTX_VERSION"
src="$("$GO" mod download -json "$module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [[ -z "$src" || ! -d "$src" ]]; then
    echo "ensure-rtsp: could not download $module" >&2
    exit 1
fi

work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$src/." "$work/"
chmod -R u+w "$work"
# The files `go generate` would fetch: the HLS web player (unused for RTSP) and the version.
[[ -f "$work/internal/servers/hls/hls.min.js" ]] || echo "/* hls.js not bundled */" \
    > "$work/internal/servers/hls/hls.min.js"
[[ -f "$work/internal/core/VERSION" ]] || echo "$MEDIAMTX_VERSION" > "$work/internal/core/VERSION"
# Upstream fix bluenviron/mediamtx#4966 (issue #4960), released after v1.12.3 in versions the
# Go proxy here does not serve: the playback server (NVR pull tests, ingest/nvr/mediamtx.py)
# panicked and exited on a request with wrong credentials instead of answering 401.
sed -i 's/err\.(\*auth\.Error)\.Message/err.(auth.Error).Message/' "$work/internal/playback/server.go"

mkdir -p "$BIN_DIR"
(cd "$work" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false "$GO" build -trimpath -o "$TARGET.tmp" .)
mv "$TARGET.tmp" "$TARGET"
echo "$BUILD_ID" > "$TARGET.version"
echo "$TARGET"
