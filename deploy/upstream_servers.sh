#!/usr/bin/env bash
# Installs the reference MCP servers the aggregator's tests mount as upstreams (npm
# @modelcontextprotocol/server-everything and server-filesystem, pinned) into the cache, once,
# and prints the node_modules directory that holds them. Runs on the machine's Node (>= 18).
set -euo pipefail
VERSION=2026.8.31
CACHE="${AVB_CACHE_DIR:-$HOME/.cache/avb}"
DIR="$CACHE/mcp-upstreams-$VERSION"
log() { echo "[upstream-servers] $*" >&2; }
mkdir -p "$CACHE"
# Tests run in parallel: one installs, the others wait for it.
exec 9>"$CACHE/.mcp-upstreams.lock"
flock 9

if [[ ! -f $DIR/node_modules/@modelcontextprotocol/server-everything/dist/index.js ||
      ! -f $DIR/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js ]]; then
    command -v npm >/dev/null || { log "npm not found (deploy/install-deps.sh installs it)"; exit 2; }
    tmp=$(mktemp -d "$CACHE/.install.XXXXXX")
    log "npm install server-everything and server-filesystem $VERSION into $DIR"
    # Into a temp dir, then moved into place: an interrupted install leaves nothing half-done.
    if ! npm install --prefix "$tmp" --save-exact --no-audit --no-fund --loglevel=error \
        "@modelcontextprotocol/server-everything@$VERSION" \
        "@modelcontextprotocol/server-filesystem@$VERSION" >&2; then
        rm -rf "$tmp"
        log "npm install failed"
        exit 2
    fi
    rm -rf "$DIR"
    mv "$tmp" "$DIR"
fi
echo "$DIR/node_modules"
