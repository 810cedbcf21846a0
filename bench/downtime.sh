#!/usr/bin/env bash
# Measures core's downtime and the upgrade tool's own overhead over several
# single-node upgrades in the lab, and prints the medians as a Markdown
# table for docs/benchmarks.md.
#
#   bench/downtime.sh [RUNS]      (default 5 runs)
#
# Each run brings up a fresh lab, upgrades it with pasupgrade-cli inside the
# node while a prober on this machine sends a request through core's proxy
# every 10 ms, and reads the step times from the run's journal. The runs go
# one after another so that they do not compete for the CPUs. It needs the
# lab's Docker engine at DOCKER_HOST (see scripts/lab-engine.sh) and root.
# The raw figures of every run are kept in bench/downtime-results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-5}
out=bench/downtime-results.jsonl

if [[ -z ${DOCKER_HOST:-} ]]; then
	echo "downtime: DOCKER_HOST is not set; start the lab engine with 'make lab-engine-start'" >&2
	exit 2
fi

# The test writes the raw figures and its log to temporary files. The
# figures replace $out only after every run succeeded, so a failed
# benchmark leaves the recorded figures as they were.
new_out=$(mktemp)
log=$(mktemp)
trap 'rm -f "$new_out" "$log"' EXIT

echo "downtime: measuring $runs upgrades; each takes about a minute" >&2
if ! PASUPGRADE_BENCH_RUNS=$runs PASUPGRADE_BENCH_OUT=$new_out \
	go test -count=1 -timeout 60m -run '^TestUpgradeDowntimeBenchmark$' -v ./e2e/ >"$log" 2>&1; then
	echo "downtime: the benchmark failed, and $out is unchanged; the end of the test's output follows" >&2
	tail -n 40 "$log" >&2
	exit 1
fi
awk '/Medians of/ {table = 1} table && /^ *(\||Medians)/ {sub(/^ +/, ""); print} table && /^ *$/ {print ""}' "$log"
cp "$new_out" "$out"
echo "downtime: raw figures in $out" >&2
echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')" >&2
