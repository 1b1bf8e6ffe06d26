#!/usr/bin/env bash
# Runs the whole chat service locally: installs missing servers, starts NATS
# (JetStream, with the users and permissions of deploy/nats/auth.conf and public
# development passwords), Redis and the MongoDB-compatible store on development ports
# with data under .dev/, builds and starts all five binaries on their default ports,
# each as its own NATS user, builds the web client (clients/web, skipped when
# up to date) for the api to serve at http://127.0.0.1:8080/ with development
# sign-in, and prints the URLs and a development token. Ctrl-C stops everything this script started.
#
# Set CHAT_MONGODB_URI to use an existing MongoDB instead of the local store, and
# CHAT_RUN_PROFILE=release for an optimised build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh

DEV_DIR="$PWD/.dev"
mkdir -p "$DEV_DIR/logs"
# Ports of the development servers; off the defaults so that servers the machine
# already runs (an older NATS on 4222, a Redis on 6379) are left alone.
NATS_PORT="${CHAT_DEV_NATS_PORT:-14222}"
REDIS_PORT="${CHAT_DEV_REDIS_PORT:-16379}"
STORE_PORT="${CHAT_DEV_STORE_PORT:-27117}"

pids=()
stopping=0
stop_all() {
  stopping=1
  trap - INT TERM EXIT
  echo; echo "stopping..."
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped"
}
trap stop_all INT TERM EXIT

wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1; see $DEV_DIR/logs" >&2
  return 1
}

# NATS with the permissions of deploy/nats/auth.conf, each binary on its own user.
# The passwords are DEVELOPMENT ONLY and public (docs/operations.md): dev-only-nats-<user>.
NATS_USERS=(ws-edge api persister notifier presence push-gateway operator)
{
  for user in "${NATS_USERS[@]}"; do
    var="NATS_PASSWORD_$(echo "$user" | tr 'a-z-' 'A-Z_')"
    echo "$var: \"dev-only-nats-$user\""
  done
  cat deploy/nats/auth.conf
} >"$DEV_DIR/nats.conf"
"$CHAT_TEST_NATS_SERVER" -c "$DEV_DIR/nats.conf" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$DEV_DIR/nats" >"$DEV_DIR/logs/nats.log" 2>&1 &
pids+=($!)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$DEV_DIR" >"$DEV_DIR/logs/redis.log" 2>&1 &
pids+=($!)
if [ -z "${CHAT_MONGODB_URI:-}" ]; then
  "$CHAT_TEST_SECANTUSD" --host 127.0.0.1 --port "$STORE_PORT" --storage-path "$DEV_DIR/store" \
    --cache-size 256M --log-file-max 32MB >"$DEV_DIR/logs/store.log" 2>&1 &
  pids+=($!)
  export CHAT_MONGODB_URI="mongodb://127.0.0.1:$STORE_PORT/?directConnection=true"
  wait_port "$STORE_PORT"
fi
wait_port "$NATS_PORT"
wait_port "$REDIS_PORT"

# The web client: rebuilt when a source of it or of the SDK is newer than its build.
web_dist="$PWD/clients/web/dist"
if [ ! -f "$web_dist/index.html" ] || [ -n "$(find clients/web/src clients/web/index.html clients/web/vite.config.ts \
    clients/web/package-lock.json clients/typescript/src -newer "$web_dist/index.html" -print -quit)" ]; then
  echo "building the web client (clients/web)"
  (cd clients/web && npm run build --silent >"$DEV_DIR/logs/web-build.log" 2>&1) \
    || { echo "the web client did not build; see $DEV_DIR/logs/web-build.log" >&2; exit 1; }
fi

profile="${CHAT_RUN_PROFILE:-dev}"
cargo build --profile "$profile" --bins
target_dir="target/$([ "$profile" = dev ] && echo debug || echo "$profile")"

export CHAT_NATS_URL="nats://127.0.0.1:$NATS_PORT"
export CHAT_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
export CHAT_LOG_FORMAT="${CHAT_LOG_FORMAT:-pretty}"
export CHAT_JWT_SECRET="dev-only-secret-change-me-0123456789"
export CHAT_JWT_ISSUER="edu-platform"
export CHAT_JWT_AUDIENCE="chat"
export CHAT_ALLOWED_ORIGINS="${CHAT_ALLOWED_ORIGINS:-http://localhost:8080,http://127.0.0.1:8080}"

for bin in persister api notifier presence ws-edge; do
  # Only the api serves the web client and its development sign-in (POST /api/dev/token,
  # which works only with the public development secret above).
  web=()
  [ "$bin" = api ] && web=(CHAT_WEB_DIR="$web_dist" CHAT_DEV_TOKENS=true)
  env "${web[@]}" CHAT_NATS_USER="$bin" CHAT_NATS_PASSWORD="dev-only-nats-$bin" "$target_dir/$bin" >"$DEV_DIR/logs/$bin.log" 2>&1 &
  pids+=($!)
done
wait_port 8080
wait_port 8082

token=$("$target_dir/chatctl" token dev-user --name "Dev User" --roles student)
cat <<INFO

  chat service is running (DEVELOPMENT SETTINGS: HS256 secret "dev-only-secret-change-me-0123456789",
  NATS passwords "dev-only-nats-<user>")

  web client   http://127.0.0.1:8080/            (development sign-in: any user id and name)
  REST API     http://127.0.0.1:8080/api        (OpenAPI: /api/openapi.json)
  WebSocket    ws://127.0.0.1:8082/ws
  admin        api :9080  ws-edge :9082  persister :9101  notifier :9102  presence :9103
  NATS         $CHAT_NATS_URL   (each binary its own user; the NATS CLI:
               nats --server nats://operator:dev-only-nats-operator@127.0.0.1:$NATS_PORT ...)
  Redis        $CHAT_REDIS_URL
  MongoDB      $CHAT_MONGODB_URI
  logs         $DEV_DIR/logs/

  token for user "dev-user" (24 h):
  $token

  more tokens: $target_dir/chatctl token <user-id> --name "Name"
  Ctrl-C stops everything.
INFO
wait -n "${pids[@]}" || true
[ "$stopping" = 1 ] || echo "a process exited; see $DEV_DIR/logs" >&2
