#!/usr/bin/env bash
# Rolling upgrades: the previous release's store — its queries, and the tests that exercise
# them on SQLite and PostgreSQL — run against a database migrated by this release. The previous
# release's source (the commit in crates/store/PREVIOUS_RELEASE) is taken from git, this
# release's migrations are put in its place, and its store tests run. A migration that drops or
# renames what the previous release reads fails here (migrations are expand/contract).
set -euo pipefail
cd "$(dirname "$0")/.."
previous=$(tr -d '[:space:]' < crates/store/PREVIOUS_RELEASE)
git cat-file -e "$previous^{commit}" 2>/dev/null || {
  echo "crates/store/PREVIOUS_RELEASE names $previous, which this clone does not have" >&2
  exit 1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git archive "$previous" | tar -x -C "$work"
rm -rf "$work/crates/store/migrations"
cp -r crates/store/migrations "$work/crates/store/migrations"
echo "previous release $previous: its store tests on this release's $(ls crates/store/migrations | wc -l) migrations"
# The same target directory: the dependencies are shared, only the old crates are built again.
target="${CARGO_TARGET_DIR:-$PWD/target}"
(cd "$work" && CARGO_TARGET_DIR="$target" cargo nextest run -p avb-store --no-fail-fast)
