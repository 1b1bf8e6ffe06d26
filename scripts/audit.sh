#!/usr/bin/env bash
# Checks the dependency tree with cargo-deny against deny.toml: licences, bans
# (duplicates are warnings), sources (crates.io only) and RustSec advisories.
#
# Licences, bans and sources need only the crates.io index, which cargo reaches. The
# advisories check needs the RustSec advisory database, which cargo-deny clones from
# GitHub; where GitHub is unreachable the check cannot run. Then this script uses a
# copy left in $CARGO_HOME/advisory-dbs by an earlier run, if there is one (and says
# how old it is), and otherwise says plainly that advisories were NOT checked.
#
# Duplicate versions are listed without their inclusion graphs; `cargo deny check bans`
# shows who pulls each one in.
#
# Exit status: 0 when every check that could run passed; 1 when one failed (a licence,
# a ban, a source or a known advisory). Set AUDIT_REQUIRE_ADVISORIES=1 to exit 2 when
# the advisories could not be checked at all.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DENY_VERSION="0.20.2"

if ! cargo deny --version >/dev/null 2>&1; then
  echo "installing cargo-deny $CARGO_DENY_VERSION (cargo install --locked; takes a few minutes once)"
  cargo install --locked cargo-deny --version "=$CARGO_DENY_VERSION"
fi
echo "$(cargo deny --version)"

status=0

echo
echo "== licences, bans, sources (need only the crates.io index)"
if cargo deny check --hide-inclusion-graph licenses bans sources; then
  graph="passed"
else
  graph="FAILED"
  status=1
fi

echo
echo "== advisories (RustSec database)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
advisories="not checked"
if cargo deny check advisories 2>"$log"; then
  advisories="passed (database fetched now)"
elif grep -q "advisories FAILED" "$log"; then
  cat "$log" >&2
  advisories="FAILED"
  status=1
elif grep -q "failed to fetch advisory database" "$log"; then
  echo "the RustSec advisory database could not be fetched:"
  grep -m1 -E "Could not resolve host|unable to access" "$log" || grep -m1 "failed to" "$log" || true
  db_dir="$(find "${CARGO_HOME:-$HOME/.cargo}/advisory-dbs" -maxdepth 2 -name .git -printf '%h\n' 2>/dev/null | head -1)"
  if [ -n "$db_dir" ]; then
    db_date="$(git -C "$db_dir" log -1 --format=%cI 2>/dev/null || echo unknown)"
    echo "using the local copy $db_dir (last commit $db_date)"
    if cargo deny --offline check advisories 2>"$log"; then
      advisories="passed against a local database of $db_date"
    else
      cat "$log" >&2
      advisories="FAILED against a local database of $db_date"
      status=1
    fi
  fi
else
  cat "$log" >&2
  advisories="FAILED (cargo-deny error)"
  status=1
fi

echo
echo "== summary"
echo "licences, bans, sources: $graph"
if [ "$advisories" = "not checked" ]; then
  echo "advisories: NOT CHECKED - the RustSec advisory database is unreachable from this machine" \
    "and no local copy exists. Known vulnerabilities in dependencies were not looked for." >&2
  if [ "${AUDIT_REQUIRE_ADVISORIES:-0}" = 1 ]; then
    exit 2
  fi
else
  echo "advisories: $advisories"
fi
exit "$status"
