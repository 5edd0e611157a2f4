#!/usr/bin/env bash
# Runs the test authorization server (tests/oauth/authorization_server.mjs: npm oidc-provider,
# an OpenID-certified OAuth 2.1 / OIDC server) with the Node it needs, installing both into the
# cache first. `--install` only installs.
#
#   PORT=9400 RESOURCE=http://127.0.0.1:8080/mcp deploy/oauth_server.sh
#
# Environment: AVB_CACHE_DIR (default ~/.cache/avb); PORT, RESOURCE, TENANT for the server.
set -euo pipefail

# Pinned version (Node: deploy/lib/node.sh).
OIDC_PROVIDER_VERSION=9.13.3

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() {
    printf 'oauth_server.sh: %s\n' "$*" >&2
    exit 2
}

# shellcheck source=lib/node.sh
source "$ROOT/deploy/lib/node.sh"
PROVIDER_DIR=$CACHE/oidc-provider-$OIDC_PROVIDER_VERSION
ensure_node
ensure_package "$PROVIDER_DIR" oidc-provider "$OIDC_PROVIDER_VERSION"
[[ ${1:-} == --install ]] && exit 0
export OIDC_PROVIDER_DIR=$PROVIDER_DIR/node_modules
exec "$NODE" "$ROOT/tests/oauth/authorization_server.mjs"
