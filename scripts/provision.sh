#!/usr/bin/env bash
# Provide every real server and tool the test suite starts, so that a newcomer's run of the
# README's test command skips nothing that CI runs (issue #16). Idempotent: what is present is
# left alone. MinIO and mediamtx are built from source with Go (scripts/ensure-servers.sh,
# scripts/ensure-rtsp.sh); the rest comes from Debian (apt-get, when run as root) and npm.
# Whatever cannot be provided is named on stderr; the tests that need it then skip and the
# run's last lines say which (CI=true turns those skips into failures).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-servers.sh
bash scripts/ensure-rtsp.sh
# docker-compose validates docker-compose.yml offline (there is no Docker engine on CI).
if ! command -v docker-compose >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq docker-compose) >/dev/null 2>&1 \
        || echo "warning: could not install docker-compose from Debian" >&2
fi
# Scale-out engines the deploy tests start on loopback: Redis (job queue), SoftHSM2 (PKCS#11),
# nginx (the balancer in front of two API instances), Caddy (the TLS proxy, deploy/Caddyfile).
if ! command -v redis-server >/dev/null 2>&1 || ! command -v softhsm2-util >/dev/null 2>&1 \
        || [ ! -x /usr/sbin/nginx ] || ! command -v caddy >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq redis-server softhsm2 nginx-light caddy) >/dev/null 2>&1 \
        || echo "warning: could not install redis-server, softhsm2, nginx-light or caddy from Debian" >&2
fi
# ONVIF replay tests (tests/ingest/test_pull_onvif_replay.py) run GStreamer's ONVIF RTSP server
# with Debian's python3 (its GObject bindings are not on PyPI as wheels).
if ! /usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0')" 2>/dev/null \
        || ! command -v gst-inspect-1.0 >/dev/null 2>&1 \
        || ! gst-inspect-1.0 rtponviftimestamp >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq python3-gi gir1.2-gst-rtsp-server-1.0 \
        gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
        gstreamer1.0-plugins-bad) >/dev/null 2>&1 \
        || echo "warning: could not install GStreamer's RTSP server from Debian" >&2
fi
# The web app's browser tests drive Debian's Chromium (never a downloaded one) and inject
# axe-core from a local npm cache (never fetched while the tests run).
if [ ! -x /usr/bin/chromium ]; then
    (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 \
        || echo "warning: could not install chromium from Debian" >&2
fi
npm_cache="${HOME}/.cache/evidence-vault/npm"
if [ ! -f "$npm_cache/node_modules/axe-core/axe.min.js" ] \
        || [ ! -f "$npm_cache/node_modules/oidc-provider/lib/index.js" ]; then
    # axe-core checks accessibility; oidc-provider (OpenID Certified) is the tests' real
    # identity provider for web sign-in.
    npm install --silent --no-audit --no-fund --prefix "$npm_cache" axe-core@4.14.1 \
        oidc-provider@9.13.3 || echo "warning: could not install axe-core or oidc-provider with npm" >&2
fi
