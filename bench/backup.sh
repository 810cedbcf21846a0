#!/usr/bin/env bash
# Benchmark "pasupgrade-cli backup create" and "backup restore-files"
# against Info-ZIP's zip and unzip on the same trees, runs interleaved.
#
# usage: bench/backup.sh [RUNS] [SCALES...]
#   RUNS    runs per command and tree (default 7); medians are reported
#   SCALES  gen_tree.py scales (default "20 60": about 4,200 files and
#           65 MB, and a tree three times larger)
#
# Needs python3, zip, unzip and GNU time (/usr/bin/time). Set GEN_TREE to
# the tree generator (default ../shared/bench/gen_tree.py beside the repo)
# and BENCH_DIR to a scratch directory with about 1 GB free.
set -euo pipefail

runs=${1:-7}
shift || true
scales=${*:-20 60}
repo=$(cd "$(dirname "$0")/.." && pwd)
gen_tree=${GEN_TREE:-$repo/../shared/bench/gen_tree.py}
work=${BENCH_DIR:-/tmp/pasupgrade-bench-backup}
cli=$work/pasupgrade-cli
results=$work/results.tsv

mkdir -p "$work"
(cd "$repo" && go build -o "$cli" ./cmd/pasupgrade-cli)
: >"$results"

# measure LABEL SCALE CMD...: runs CMD under GNU time and appends
# "label scale wall_seconds max_rss_kib cpu_seconds" to the results, where
# cpu_seconds is user plus system time, less sensitive than wall time to
# other load on the machine.
measure() {
	local label=$1 scale=$2
	shift 2
	local log=$work/time.log
	/usr/bin/time -v -o "$log" "$@" >/dev/null
	local wall rss
	wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log" |
		awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
	rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
	cpu=$(awk -F': ' '/(User|System) time \(seconds\)/ {sum += $2} END {print sum}' "$log")
	printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$scale" "$wall" "$rss" "$cpu" >>"$results"
}

guide_paths=(opt/balasys/.ssh/ opt/balasys/etc/
	opt/balasys/usr/share/automation/deploy-core.yml
	opt/balasys/usr/share/automation/host_vars
	opt/balasys/usr/share/automation/inventory.yml
	opt/balasys/usr/share/automation/roles/deploy-core/vars/main.yml)

for scale in $scales; do
	tree=$work/tree-$scale
	if [ ! -d "$tree/opt/balasys/etc" ]; then
		python3 "$gen_tree" "$tree" "$scale"
	fi
	sets=$work/sets-$scale
	rm -rf "$sets" "$work/zip-$scale.zip"
	mkdir -p "$sets"
	# One set to restore from in every run.
	"$cli" --root "$tree" backup create --no-running-config --topology multi --backup-dir "$sets/ref" >/dev/null
	ref_zip=$(echo "$sets"/ref/pas-backup-*/bootstrap.zip)

	for i in $(seq "$runs"); do
		rm -rf "$sets/run" "$work/zip-$scale.zip" "$work/dest-ours" "$work/dest-unzip"
		mkdir -p "$work/dest-ours" "$work/dest-unzip"
		# Alternate which tool goes first, so neither always meets a warmer cache.
		if [ $((i % 2)) -eq 1 ]; then
			measure create-ours "$scale" "$cli" --root "$tree" backup create --no-running-config --topology multi --backup-dir "$sets/run"
			measure create-zip "$scale" bash -c "cd '$tree' && zip -q --recurse-paths --symlinks '$work/zip-$scale.zip' ${guide_paths[*]}"
			measure restore-ours "$scale" "$cli" --root "$work/dest-ours" backup restore-files --yes "$ref_zip"
			measure restore-unzip "$scale" unzip -q -o "$ref_zip" -d "$work/dest-unzip"
		else
			measure create-zip "$scale" bash -c "cd '$tree' && zip -q --recurse-paths --symlinks '$work/zip-$scale.zip' ${guide_paths[*]}"
			measure create-ours "$scale" "$cli" --root "$tree" backup create --no-running-config --topology multi --backup-dir "$sets/run"
			measure restore-unzip "$scale" unzip -q -o "$ref_zip" -d "$work/dest-unzip"
			measure restore-ours "$scale" "$cli" --root "$work/dest-ours" backup restore-files --yes "$ref_zip"
		fi
	done
	files=$(find "$tree/opt/balasys" | wc -l)
	bytes=$(du -sb "$tree/opt/balasys" | cut -f1)
	printf 'size\t%s\t%s\t%s\t%s\t%s\n' "$scale" "$(stat -c %s "$ref_zip")" \
		"$(stat -c %s "$work/zip-$scale.zip")" "$files" "$bytes" >>"$results"
done

python3 - "$results" "$runs" <<'PY'
import statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
runs = sys.argv[2]
times, sizes = {}, {}
for row in rows:
    if row[0] == "size":
        sizes[row[1]] = row[2:]
        continue
    label, scale, wall, rss, cpu = row
    times.setdefault((label, scale), []).append((float(wall), int(rss), float(cpu)))
def med(label, scale, i):
    return statistics.median(v[i] for v in times[(label, scale)])
print(f"Medians of {runs} interleaved runs.\n")
print("Wall time in seconds, ratio ours / Info-ZIP; CPU is user + system seconds.\n")
print("| tree | files | MB | create ours | zip | ratio | CPU ratio | restore ours | unzip | ratio | CPU ratio | archive ours / zip | peak RSS create / restore MiB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for scale, (ours_size, zip_size, files, nbytes) in sizes.items():
    co, cz = med("create-ours", scale, 0), med("create-zip", scale, 0)
    ro, ru = med("restore-ours", scale, 0), med("restore-unzip", scale, 0)
    rss_c = max(v[1] for v in times[("create-ours", scale)]) / 1024
    rss_r = max(v[1] for v in times[("restore-ours", scale)]) / 1024
    cpu_c = med("create-ours", scale, 2) / med("create-zip", scale, 2)
    cpu_r = med("restore-ours", scale, 2) / med("restore-unzip", scale, 2)
    print(f"| gen_tree {scale} | {files} | {int(nbytes)/1e6:.0f} | {co:.2f} | {cz:.2f} | {co/cz:.2f} | {cpu_c:.2f} | "
          f"{ro:.2f} | {ru:.2f} | {ro/ru:.2f} | {cpu_r:.2f} | {int(ours_size)/int(zip_size):.3f} | {rss_c:.0f} / {rss_r:.0f} |")
PY
