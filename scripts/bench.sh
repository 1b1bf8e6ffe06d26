#!/usr/bin/env bash
# Runs `chatctl bench` against a whole stack of its own: builds the release binaries,
# starts NATS (JetStream), Redis, the MongoDB-compatible store and the five services on
# free ports of 127.0.0.1 with throw-away data in a temporary directory, raises the
# per-user limits that the generator exceeds on purpose, passes every PID to the
# generator for the CPU figures, and stops everything it started when it ends (or on
# Ctrl-C). Arguments go to `chatctl bench` unchanged, e.g.
#
#   scripts/bench.sh --only A --duration 10
#   scripts/bench.sh --scenarios my-scenarios.toml
#
# Results (JSON lines, Markdown, the sweep's SVG) and logs stay in the temporary
# directory, whose path is printed; the servers' data is deleted at the end.
# CHAT_BENCH_TIMEOUT_S bounds the benchmark (default 3600); CHAT_BENCH_NO_BUILD=1 skips
# the build; CHAT_BENCH_INJECT=1 publishes the load scenarios' messages straight to the
# stack's NATS (`--inject-nats-url`), measuring the edge's fan-out without the write path.
# CHAT_BENCH_BIN_DIR runs the binaries of another directory (default target/release), so
# two builds can be compared run by run on the same machine (implies no build).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh

if [ "${CHAT_BENCH_NO_BUILD:-0}" != 1 ] && [ -z "${CHAT_BENCH_BIN_DIR:-}" ]; then
  cargo build --release -p ws-edge -p api -p persister -p notifier -p presence -p chatctl
fi
bin="${CHAT_BENCH_BIN_DIR:-target/release}"

work="$(mktemp -d "${TMPDIR:-/tmp}/chat-bench.XXXXXX")"
mkdir -p "$work/logs" "$work/data"
echo "bench directory: $work"

# Ten distinct free ports, none of those other services here use.
read -r -a ports < <(python3 - <<'PY'
import socket
avoid = {4222, 6379, 27017, 8080, 8082}
held, ports = [], []
while len(ports) < 10:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    held.append(s)
    port = s.getsockname()[1]
    if port not in avoid:
        ports.append(port)
print(*ports)
PY
)
nats_port=${ports[0]} redis_port=${ports[1]} store_port=${ports[2]}
api_port=${ports[3]} edge_port=${ports[4]}
api_admin=${ports[5]} edge_admin=${ports[6]} persister_admin=${ports[7]}
notifier_admin=${ports[8]} presence_admin=${ports[9]}

names=()
pids=()
stop_all() {
  trap - INT TERM EXIT
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  for _ in $(seq 1 100); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work/data"
  echo "stopped; logs and results in $work"
}
trap stop_all INT TERM EXIT

started() {
  names+=("$1")
  pids+=("$2")
  echo "$1=$2" >>"$work/pids"
}

wait_port() {
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1 ($2) after 30 s; see $work/logs" >&2
  exit 1
}

# More connections than the default 1,024 descriptors: the idle scenario opens 10,000.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

"$CHAT_TEST_NATS_SERVER" -a 127.0.0.1 -p "$nats_port" -js -sd "$work/data/nats" >"$work/logs/nats.log" 2>&1 &
started nats-server $!
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no --dir "$work/data" \
  >"$work/logs/redis.log" 2>&1 &
started redis-server $!
"$CHAT_TEST_SECANTUSD" --host 127.0.0.1 --port "$store_port" --storage-path "$work/data/store" \
  --cache-size 256M --log-file-max 32MB >"$work/logs/store.log" 2>&1 &
started store $!
wait_port "$nats_port" nats-server
wait_port "$redis_port" redis-server
wait_port "$store_port" store

export CHAT_NATS_URL="nats://127.0.0.1:$nats_port"
export CHAT_REDIS_URL="redis://127.0.0.1:$redis_port"
export CHAT_MONGODB_URI="mongodb://127.0.0.1:$store_port/?directConnection=true"
export CHAT_MONGODB_DB="chat_bench"
export CHAT_LOG="${CHAT_LOG:-warn}"
export CHAT_LOG_FORMAT=json
export CHAT_JWT_SECRET="dev-only-secret-change-me-0123456789"
export CHAT_JWT_ISSUER="edu-platform"
export CHAT_JWT_AUDIENCE="chat"
export CHAT_SHUTDOWN_GRACE_S=5
# The generator sends more than a person would: lift the per-user and per-connection
# budgets far above what it sends, so that their code still runs.
export CHAT_MESSAGES_PER_USER_PER_S=1000000
export CHAT_WS_COMMANDS_PER_S=100000
export CHAT_WS_COMMANDS_BURST=100000

CHAT_ADMIN_ADDR="127.0.0.1:$persister_admin" "$bin/persister" >"$work/logs/persister.log" 2>&1 &
started persister $!
CHAT_ADMIN_ADDR="127.0.0.1:$api_admin" CHAT_LISTEN_ADDR="127.0.0.1:$api_port" "$bin/api" \
  >"$work/logs/api.log" 2>&1 &
started api $!
CHAT_ADMIN_ADDR="127.0.0.1:$notifier_admin" "$bin/notifier" >"$work/logs/notifier.log" 2>&1 &
started notifier $!
CHAT_ADMIN_ADDR="127.0.0.1:$presence_admin" "$bin/presence" >"$work/logs/presence.log" 2>&1 &
started presence $!
CHAT_ADMIN_ADDR="127.0.0.1:$edge_admin" CHAT_LISTEN_ADDR="127.0.0.1:$edge_port" "$bin/ws-edge" \
  >"$work/logs/ws-edge.log" 2>&1 &
started ws-edge $!
for port in "$persister_admin" "$api_port" "$notifier_admin" "$presence_admin" "$edge_port"; do
  wait_port "$port" service
done
echo "stack up: api http://127.0.0.1:$api_port, edge ws://127.0.0.1:$edge_port/ws (PIDs in $work/pids)"

[ "${CHAT_BENCH_INJECT:-0}" = 1 ] && export CHAT_BENCH_INJECT_NATS_URL="$CHAT_NATS_URL"

outputs=()
case " $* " in *" --markdown "*) ;; *) outputs+=(--markdown "$work/results.md") ;; esac
case " $* " in *" --plot "*) ;; *) outputs+=(--plot "$work/sweep.svg") ;; esac
pid_args=()
for ((i=0; i<${#pids[@]}; i++)); do pid_args+=(--pid "${names[i]}=${pids[i]}"); done

status=0
timeout "${CHAT_BENCH_TIMEOUT_S:-3600}" "$bin/chatctl" bench \
  --api-url "http://127.0.0.1:$api_port" --ws-url "ws://127.0.0.1:$edge_port/ws" \
  "${pid_args[@]}" "${outputs[@]}" "$@" | tee "$work/results.jsonl" || status=$?
[ -f "$work/results.md" ] && cat "$work/results.md"
exit "$status"
