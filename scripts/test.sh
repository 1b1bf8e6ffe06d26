#!/usr/bin/env bash
# Installs what the tests need, then runs every check and test: formatting, clippy,
# the deployment checks (manifests, configs, dashboard), and the unit, integration and
# end-to-end tests (which start their own servers).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/install-deps.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
scripts/check-deploy.sh
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
