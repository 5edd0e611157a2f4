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

# Pinned version (Node: deploy/lib/node.sh).
INSPECTOR_VERSION=2.12.0

die() {
    printf 'inspector.sh: %s\n' "$*" >&2
    exit 2
}

# shellcheck source=lib/node.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/node.sh"
INSPECTOR_DIR=$CACHE/inspector-$INSPECTOR_VERSION
ensure_node
ensure_package "$INSPECTOR_DIR" @modelcontextprotocol/inspector "$INSPECTOR_VERSION"
# The Inspector's launcher starts `node` from PATH: make it ours.
export PATH="$(dirname "$NODE"):$PATH"
exec "$NODE" "$INSPECTOR_DIR/node_modules/.bin/mcp-inspector" --cli "$@"
