#!/usr/bin/env bash
# Runs each cargo-fuzz target in fuzz/ for a bounded time and prints what it did.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]     (default: 60 s, every target)
#
# Installs cargo-fuzz (cargo install --locked) when it is missing. cargo-fuzz needs
# nightly compiler flags (-Zsanitizer=address, sanitizer coverage); on the stable
# toolchain they are unlocked with RUSTC_BOOTSTRAP=1, set here for the fuzz build only.
# The build goes to fuzz/target (not the workspace's target/), the growing corpus to
# fuzz/corpus/<target>, started from the committed seeds in fuzz/seeds/<target>; any
# crash is written to fuzz/artifacts/<target>/. Logs: fuzz/logs/<target>.log.
#
# Exit status: 0 when no target crashed, 1 when one did (the summary names the input),
# 2 on a build or setup error. Not part of CI: it is slow by design.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-60}"
shift || true
case "$seconds" in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [seconds-per-target] [target...]" >&2; exit 2 ;;
esac
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(ws_command jwt_verify text_rules)
fi

CARGO_FUZZ_VERSION="0.13.2"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION (cargo install --locked)"
  cargo install cargo-fuzz --locked --version "=$CARGO_FUZZ_VERSION"
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target}"

echo "building ${targets[*]} (release, ASan, sanitizer coverage) into $CARGO_TARGET_DIR"
for target in "${targets[@]}"; do
  if ! cargo fuzz build -O "$target" >/dev/null 2>logs.build.tmp; then
    cat logs.build.tmp >&2; rm -f logs.build.tmp
    echo "build of $target failed" >&2
    exit 2
  fi
done
rm -f logs.build.tmp

mkdir -p logs
crashed=()
summary=()
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  dict=()
  [ -f "dicts/$target.dict" ] && dict=("-dict=dicts/$target.dict")
  log="logs/$target.log"
  before=$(find "corpus/$target" -type f | wc -l)
  echo
  echo "== $target: ${seconds}s (corpus corpus/$target, $before inputs; seeds seeds/$target)"
  started=$(date +%s)
  touch "$log.start"
  set +e
  cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -max_len=8192 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="artifacts/$target/" "${dict[@]}" >"$log" 2>&1
  rc=$?
  set -e
  elapsed=$(( $(date +%s) - started ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  added=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
  corpus=$(find "corpus/$target" -type f | wc -l)
  artifacts=$(find "artifacts/$target" -type f -newer "$log.start" | tr '\n' ' ')
  rm -f "$log.start"
  line="$target: ${execs:-?} executions in ${elapsed}s (${rate:-?} runs/s), ${cov:-cov ?}, corpus $before -> $corpus inputs (+${added:-?} new), peak RSS ${rss:-?} MB"
  if [ "$rc" -ne 0 ]; then
    crashed+=("$target")
    line="$line, CRASH (exit $rc): ${artifacts:-see $log}"
    echo "$line"
    grep -m1 -E "^(==[0-9]+==ERROR|thread '.*' panicked|ERROR: libFuzzer)" "$log" || true
    grep -A3 -m1 "panicked at" "$log" || true
  else
    line="$line, no crash"
    echo "$line"
  fi
  summary+=("$line")
done

echo
echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
if [ "${#crashed[@]}" -gt 0 ]; then
  echo "crashed: ${crashed[*]}. Reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run -O <target> <artifact>;" \
    "minimise with: RUSTC_BOOTSTRAP=1 cargo fuzz tmin -O <target> <artifact> (in fuzz/)" >&2
  exit 1
fi
