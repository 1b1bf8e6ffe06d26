#!/usr/bin/env bash
# Tests the REST api against its own OpenAPI document (derived by the api from its
# routes and types and served at /api/openapi.json; docs/openapi.json is a checked
# copy) with schemathesis: generated valid and invalid requests, every
# response checked for server errors, undocumented status codes, bodies and headers
# that do not match the schema, ignored auth, and more (see docs/security-tools.md).
#
#   scripts/schemathesis.sh                     (bounded: 50 examples per operation, 300 s)
#
# What it does, in order:
# 1. installs schemathesis from PyPI into ${CHAT_TOOLS_DIR:-~/.cache/edu-chat}/schemathesis-venv
#    (skipped when that version is there);
# 2. copies the work tree as it is now (tracked and untracked files, not target/ or
#    .dev/) to $SCHEMATHESIS_WORK_DIR/src, with its target/ pointing at
#    $SCHEMATHESIS_TARGET_DIR, and starts the whole service there with scripts/run.sh
#    in the background (log: $SCHEMATHESIS_WORK_DIR/run.log). So the build never touches
#    the work tree's target/, every run starts with empty data, and a run.sh a
#    developer already has going keeps its .dev/ (but its ports must be free);
# 3. waits for the api on 127.0.0.1:8080, takes the dev token run.sh prints and mints
#    a second user's token with chatctl; seeds a direct chat, a group and a message;
# 4. runs schemathesis as the first user against 127.0.0.1:8080 only, bounded by
#    --max-examples and --max-time, every check but object-level authorisation;
# 5. runs schemathesis's object-level authorisation check with both users as peers
#    (requests are made as the first user; every successful read of an object is
#    replayed as the second, who must not get it), and a few direct cross-user
#    requests with curl;
# 6. stops the service it started (by the PID of its run.sh, then its process group).
#
# Settings (environment): SCHEMATHESIS_MAX_EXAMPLES (50), SCHEMATHESIS_MAX_TIME (300 s
# for step 4; step 5 gets a third), SCHEMATHESIS_SEED (1), SCHEMATHESIS_WORKERS (1),
# SCHEMATHESIS_TARGET_DIR (/tmp/schemathesis-target), SCHEMATHESIS_WORK_DIR
# (/tmp/schemathesis-run), SCHEMATHESIS_START_TIMEOUT (1800 s: the first build is slow).
# Reports (JUnit XML and a HAR of every request) go to $SCHEMATHESIS_WORK_DIR/report*;
# every failure is printed with a curl command that repeats it against a running service.
#
# Exit status: 0 when both schemathesis runs and the cross-user requests passed, 1 when
# something failed, 2 when the service could not be started.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

CHAT_TOOLS_DIR="${CHAT_TOOLS_DIR:-$HOME/.cache/edu-chat}"
SCHEMATHESIS_VERSION="4.32.5"
VENV="$CHAT_TOOLS_DIR/schemathesis-venv"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-50}"
MAX_TIME="${SCHEMATHESIS_MAX_TIME:-300}"
SEED="${SCHEMATHESIS_SEED:-1}"
WORKERS="${SCHEMATHESIS_WORKERS:-1}"
TARGET_DIR="${SCHEMATHESIS_TARGET_DIR:-/tmp/schemathesis-target}"
WORK="${SCHEMATHESIS_WORK_DIR:-/tmp/schemathesis-run}"
START_TIMEOUT="${SCHEMATHESIS_START_TIMEOUT:-1800}"
API="http://127.0.0.1:8080"
# Every port run.sh's servers listen on: they must be free before we start.
PORTS=(8080 8082 9080 9082 9101 9102 9103 "${CHAT_DEV_NATS_PORT:-14222}" "${CHAT_DEV_REDIS_PORT:-16379}" "${CHAT_DEV_STORE_PORT:-27117}")

# 1. schemathesis
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "version $SCHEMATHESIS_VERSION"; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION (PyPI) into $VENV"
  mkdir -p "$CHAT_TOOLS_DIR"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
st="$VENV/bin/schemathesis"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "${PORTS[@]}"; do
  if listening "$port"; then
    echo "port $port is already in use (another scripts/run.sh?); stop it first" >&2
    exit 2
  fi
done

# 2. a snapshot of the work tree, and the service started from it
case "$WORK" in
  / | "$HOME" | "$ROOT" | "$ROOT"/*) echo "SCHEMATHESIS_WORK_DIR=$WORK: choose a scratch directory" >&2; exit 2 ;;
esac
rm -rf "$WORK"
mkdir -p "$WORK/src" "$TARGET_DIR"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard) \
  | (cd "$ROOT" && rsync -a --from0 --files-from=- --ignore-missing-args ./ "$WORK/src/")
ln -s "$TARGET_DIR" "$WORK/src/target"
profile_dir="$([ "${CHAT_RUN_PROFILE:-dev}" = dev ] && echo debug || echo "${CHAT_RUN_PROFILE}")"
chatctl="$WORK/src/target/$profile_dir/chatctl"

run_pid=""
run_pgid=""
stop_service() {
  [ -n "$run_pid" ] || return 0
  if kill -0 "$run_pid" 2>/dev/null; then
    echo "stopping the service (run.sh pid $run_pid)"
    kill -TERM "$run_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.2; done
  fi
  # run.sh stops its own children; anything left in its process group is ours too.
  if [ -n "$run_pgid" ] && pgrep -g "$run_pgid" >/dev/null 2>&1; then
    kill -TERM -- "-$run_pgid" 2>/dev/null || true
    sleep 2
    kill -KILL -- "-$run_pgid" 2>/dev/null || true
  fi
  run_pid=""
}
trap stop_service EXIT
trap 'exit 130' INT TERM

echo "starting the service from $WORK/src (build into $TARGET_DIR; log $WORK/run.log)"
# setsid: run.sh and everything it starts form one process group, numbered by its PID.
setsid bash "$WORK/src/scripts/run.sh" >"$WORK/run.log" 2>&1 </dev/null &
run_pid=$!

started=$(date +%s)
token=""
while [ -z "$token" ]; do
  if ! kill -0 "$run_pid" 2>/dev/null; then
    echo "run.sh exited before the service was up; the end of $WORK/run.log:" >&2
    tail -n 30 "$WORK/run.log" >&2
    exit 2
  fi
  if [ $(( $(date +%s) - started )) -gt "$START_TIMEOUT" ]; then
    echo "the service was not up after ${START_TIMEOUT}s; see $WORK/run.log" >&2
    exit 2
  fi
  sleep 2
  token="$(awk '/token for user/ { getline; print $1; exit }' "$WORK/run.log")"
done
echo "service up after $(( $(date +%s) - started ))s"
run_pgid="$(ps -o pgid= -p "$run_pid" | tr -d ' ')"
# Only a group of our own (led by our run.sh) may be signalled as a group.
[ "$run_pgid" = "$run_pid" ] || run_pgid=""
listening 8080 || { echo "nothing listens on 8080" >&2; exit 2; }

# 3. two users and some data
token2="$("$chatctl" token second-user --name "Second User" --roles student)"
auth1=(-H "Authorization: Bearer $token")
auth2=(-H "Authorization: Bearer $token2")
api() { curl -sS -o "$WORK/body.json" -w '%{http_code}' -H 'Content-Type: application/json' "$@" || true; }
json_id() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/body.json"; }

api "${auth2[@]}" "$API/api/users/me" >/dev/null
api "${auth1[@]}" "$API/api/users/me" >/dev/null
api "${auth1[@]}" -X POST "$API/api/chats" -d '{"type":"direct","member_id":"second-user"}' >/dev/null
direct_id="$(json_id || true)"
api "${auth1[@]}" -X POST "$API/api/chats" -d '{"type":"group","title":"Shared group","member_ids":["second-user"]}' >/dev/null
shared_id="$(json_id || true)"
api "${auth1[@]}" -X POST "$API/api/chats" -d '{"type":"group","title":"Private group"}' >/dev/null
private_id="$(json_id || true)"
if [ -n "$private_id" ]; then
  api "${auth1[@]}" -X POST "$API/api/chats/$private_id/messages" -d '{"client_msg_id":"seed-1","text":"only for dev-user"}' >/dev/null
fi
echo "seeded: direct chat ${direct_id:-?}, shared group ${shared_id:-?}, private group ${private_id:-?}"

status=0

# The api answers over-long text with 413 too_large, as the document declares for
# those operations; schemathesis counts only 4xx codes other than 413 as
# "rejected" unless told.
checks_toml='[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]'
printf '%s\n' "$checks_toml" >"$WORK/checks.toml"

# 4. every check but object-level authorisation, as the first user
echo
echo "== schemathesis run as dev-user: max ${MAX_EXAMPLES} examples per operation, ${MAX_TIME}s, seed ${SEED}"
run_started=$(date +%s)
set +e
"$st" --config-file "$WORK/checks.toml" run "$API/api/openapi.json" \
  --url "$API" \
  --header "Authorization: Bearer $token" \
  --checks all --exclude-checks object_level_authorization \
  --max-examples "$MAX_EXAMPLES" --max-time "$MAX_TIME" --request-timeout 10 \
  --seed "$SEED" --workers "$WORKERS" \
  --report junit,har --report-dir "$WORK/report" \
  --no-color 2>&1 | tee "$WORK/schemathesis.log"
rc=${PIPESTATUS[0]}
set -e
echo "schemathesis (all checks) exit $rc after $(( $(date +%s) - run_started ))s"
[ "$rc" -eq 0 ] || status=1

# 5a. schemathesis's object-level authorisation check, with both users as peers
cat >"$WORK/wfc-auth.json" <<JSON
{"auth": [
  {"name": "dev-user", "fixedHeaders": [{"name": "Authorization", "value": "Bearer $token"}]},
  {"name": "second-user", "fixedHeaders": [{"name": "Authorization", "value": "Bearer $token2"}]}
]}
JSON
cat >"$WORK/peers.toml" <<TOML
$checks_toml

[auth.wfc]
path = "$WORK/wfc-auth.json"
user = "dev-user"
peers = ["dev-user", "second-user"]
TOML
echo
echo "== schemathesis object-level authorisation: requests as dev-user, reads replayed as second-user"
run_started=$(date +%s)
set +e
"$st" --config-file "$WORK/peers.toml" run "$API/api/openapi.json" \
  --url "$API" \
  --checks object_level_authorization,not_a_server_error \
  --max-examples "$MAX_EXAMPLES" --max-time "$(( MAX_TIME / 3 > 0 ? MAX_TIME / 3 : 1 ))" --request-timeout 10 \
  --seed "$SEED" --workers 1 \
  --report junit --report-dir "$WORK/report-peers" \
  --no-color 2>&1 | tee "$WORK/schemathesis-peers.log"
rc=${PIPESTATUS[0]}
set -e
echo "schemathesis (object-level authorisation) exit $rc after $(( $(date +%s) - run_started ))s"
[ "$rc" -eq 0 ] || status=1

# 5b. direct cross-user requests: second-user must not see or change dev-user's private group
echo
echo "== cross-user requests (second-user on dev-user's private group ${private_id:-?})"
expect_refused() {
  local what="$1"; shift
  local code
  code="$(api "${auth2[@]}" "$@")"
  case "$code" in
    403 | 404) echo "ok      $code  $what" ;;
    *) echo "FAILED  $code  $what: $(head -c 300 "$WORK/body.json")"; status=1 ;;
  esac
}
if [ -n "$private_id" ]; then
  expect_refused "GET the chat" "$API/api/chats/$private_id"
  expect_refused "GET its messages" "$API/api/chats/$private_id/messages"
  expect_refused "POST a message" -X POST "$API/api/chats/$private_id/messages" -d '{"client_msg_id":"x-1","text":"intruder"}'
  expect_refused "PATCH its title" -X PATCH "$API/api/chats/$private_id" -d '{"title":"taken"}'
  expect_refused "POST itself as a participant" -X POST "$API/api/chats/$private_id/participants" -d '{"user_ids":["second-user"]}'
  expect_refused "POST a read mark" -X POST "$API/api/chats/$private_id/read" -d '{"up_to_seq":1}'
  listed="$(api "${auth2[@]}" "$API/api/chats" >/dev/null; grep -c "$private_id" "$WORK/body.json" || true)"
  if [ "$listed" = 0 ]; then echo "ok      200  GET /api/chats does not list it"; else echo "FAILED  GET /api/chats lists it"; status=1; fi
else
  echo "FAILED  the private group could not be created; cross-user requests not made"
  status=1
fi

echo
echo "logs and reports: $WORK (schemathesis.log, schemathesis-peers.log, report/, report-peers/, run.log)"
exit "$status"
