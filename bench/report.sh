#!/bin/bash
# Runs every benchmark of the project against the peers installed here, in one go, and
# writes one report: bench/report/REPORT.md (a table of medians and ratios ccrun/peer,
# with the machine's load next to each benchmark) and bench/report/ratios.svg (the
# ratios as a bar chart, on a log scale; it renders in a browser).
#
#   bench/report.sh [RUNS] [BENCHMARK...]
#       RUNS: runs per measured command (default 20, at least 20 for the report; the
#             throughput cases of net.sh take 2 s each)
#       BENCHMARK: some of start oci run-image exec verbs net pull build push rootless engine
#             (default: every one whose script exists)
#
# Each benchmark is its own script (see bench/README.md) and prints its own summary into
# bench/report/logs/NAME.log; through bench/results.py each also records the comparisons
# it makes, kept in bench/report/results/NAME.tsv (with NAME.run: status, load, time).
# Naming some benchmarks runs those again and keeps the others' last results, so the
# report always shows every benchmark. A benchmark that fails is reported as failed in
# the table (its log says why) and the others still run; the exit status is then 1.
# Needs what scripts/deps.sh installs; run as root.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
if ! [[ $runs =~ ^[0-9]+$ ]] || ((runs < 2)); then
  echo "usage: $0 [RUNS>=2] [BENCHMARK...]" >&2
  exit 2
fi
shift $(($# > 0 ? 1 : 0))
all=(start oci run-image exec verbs net pull build push rootless engine)
wanted=("$@")
((${#wanted[@]})) || wanted=("${all[@]}")
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 1; }

out=bench/report
mkdir -p "$out/logs" "$out/results"
results=$(mktemp /var/tmp/ccrun-report.XXXXXX)
trap 'rm -f "$results"' EXIT

echo "== building ccrun (release)"
cargo build --release -q -p ccrun -p ccrun-oci -p ccrun-monitor || exit 1
CCRUN=$(realpath "${CARGO_TARGET_DIR:-target}/release/ccrun")
export CCRUN CCRUN_BENCH_RESULTS=$results

failed=0
for name in "${wanted[@]}"; do
  script=bench/$name.sh
  if [[ ! -x $script ]]; then
    echo "== $name: no $script, skipped"
    continue
  fi
  case $name in
    net) args=("$runs" 2 "$runs") ;;
    *) args=("$runs") ;;
  esac
  : >"$results"
  load_before=$(cut -d' ' -f1 /proc/loadavg)
  start=$(date +%s)
  echo "== $name: $script ${args[*]} (log: $out/logs/$name.log)"
  if "$script" "${args[@]}" >"$out/logs/$name.log" 2>&1; then
    status=ok
  else
    status="failed ($?)"
    failed=1
    echo "   FAILED, last lines of its log:"
    tail -5 "$out/logs/$name.log" | sed 's/^/   /'
  fi
  cp "$results" "$out/results/$name.tsv"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$load_before" \
    "$(cut -d' ' -f1 /proc/loadavg)" "$(($(date +%s) - start))" "$runs" >"$out/results/$name.run"
done

python3 bench/report.py "$out" "${all[@]}" || exit 1
echo "== wrote $out/REPORT.md and $out/ratios.svg"
exit "$failed"
