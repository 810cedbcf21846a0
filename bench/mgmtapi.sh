#!/usr/bin/env bash
# Benchmark of the management API client: export and import of a large
# configuration through pasupgrade-cli and through curl, side by side,
# against pas-mgmt-sim on loopback.
#
# Usage: bench/mgmtapi.sh [SIZE_MIB] [RUNS]   (defaults: 512 MiB, 5 runs)
#
# For each direction it alternates curl and the CLI RUNS times, measures
# wall time and peak resident memory with /usr/bin/time -v, and prints the
# medians as a Markdown table. Needs go, curl, python3 and GNU time.
set -euo pipefail

size_mib=${1:-512}
runs=${2:-5}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-mgmtapi.XXXXXX")
sim_pid=""

cleanup() {
	if [[ -n $sim_pid ]]; then
		kill "$sim_pid" 2>/dev/null || true
		wait "$sim_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

for tool in go curl python3 /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done

echo "building into $work" >&2
(cd "$repo" && CGO_ENABLED=0 go build -o "$work/" ./cmd/pas-mgmt-sim ./cmd/pasupgrade-cli)

# A throwaway password for the throwaway simulator. It reaches the tools
# through files only, never through argv.
password="bench-$RANDOM$RANDOM"
printf '%s\n' "$password" >"$work/password"
chmod 600 "$work/password"
python3 - "$work/users.htpass" "$password" <<'EOF'
import base64, hashlib, sys
path, password = sys.argv[1], sys.argv[2]
digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
open(path, "w").write("admin:{SHA}" + digest + "\n")
EOF

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
"$work/pas-mgmt-sim" --listen "127.0.0.1:$port" --htpasswd "$work/users.htpass" \
	--state-dir "$work/state" --enable-control --apply-duration 0s 2>"$work/sim.log" &
sim_pid=$!
for _ in $(seq 100); do
	curl -sf "$url/api/version" -o /dev/null -w '%{http_code}' 2>/dev/null | grep -q 401 && break
	sleep 0.1
done

echo "writing a ${size_mib} MiB configuration" >&2
python3 - "$work/config.yaml" "$size_mib" <<'EOF'
import sys
path, size = sys.argv[1], int(sys.argv[2]) << 20
line = b"  - filler: 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnop\n"
block = b"pas_config_version: 4.8.0\nfiller:\n"
with open(path, "wb") as f:
    f.write(block)
    left = size - len(block)
    chunk = line * (1 << 14)
    while left > 0:
        n = min(left, len(chunk))
        f.write(chunk[:n])
        left -= n
EOF
curl -sf -X PUT --data-binary "@$work/config.yaml" "$url/_sim/running-config"

# curl gets the token through a header file, so it is not in argv either.
python3 - "$url" "$work/password" "$work/auth.header" <<'EOF'
import json, sys, urllib.request
url, pwfile, out = sys.argv[1:]
password = open(pwfile).readline().rstrip("\n")
req = urllib.request.Request(url + "/api/login", data=json.dumps(
    {"username": "admin", "password": password}).encode(), headers={"Content-Type": "application/json"})
token = json.load(urllib.request.urlopen(req))["token"]
open(out, "w").write("Authorization: Bearer " + token + "\n")
EOF

# measure NAME CMD... runs CMD under GNU time and appends
# "NAME seconds max_rss_kib" to results.
measure() {
	local name=$1
	shift
	/usr/bin/time -v -o "$work/time.out" "$@" >/dev/null 2>"$work/cmd.err" || {
		cat "$work/cmd.err" >&2
		exit 1
	}
	python3 - "$name" "$work/time.out" >>"$work/results" <<'EOF'
import sys
name, path = sys.argv[1:]
fields = dict(l.strip().split(": ", 1) for l in open(path) if ": " in l)
parts = [float(p) for p in fields["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":")]
seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
print(name, seconds, fields["Maximum resident set size (kbytes)"])
EOF
}

cli=("$work/pasupgrade-cli" --mgmt-url "$url" --password-file "$work/password")
: >"$work/results"
for i in $(seq "$runs"); do
	echo "run $i of $runs" >&2
	rm -f "$work/out.yaml"
	measure export-curl curl -sf -H "@$work/auth.header" -o "$work/out.yaml" "$url/api/config/export?kind=running"
	rm -f "$work/out.yaml"
	measure export-cli "${cli[0]}" config export "${cli[@]:1}" --out "$work/out.yaml"
	measure import-curl curl -sf -H "@$work/auth.header" -F "file=@$work/config.yaml" "$url/api/config/import"
	measure import-cli "${cli[0]}" config import --yes "${cli[@]:1}" "$work/config.yaml"
done
cmp "$work/config.yaml" "$work/out.yaml"

python3 - "$work/results" "$size_mib" "$runs" <<'EOF'
import statistics, sys
path, size_mib, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = {}
for line in open(path):
    name, secs, rss = line.split()
    rows.setdefault(name, []).append((float(secs), int(rss)))
def med(name):
    secs = statistics.median(s for s, _ in rows[name])
    rss = max(r for _, r in rows[name])
    return size_mib / secs, rss / 1024
print(f"{size_mib} MiB, {runs} runs each, medians of throughput, max of peak RSS")
print()
print("| direction | tool | MiB/s (median) | peak RSS MiB (max) | CLI / curl |")
print("| --- | --- | ---: | ---: | ---: |")
for direction in ("export", "import"):
    curl_tp, curl_rss = med(direction + "-curl")
    cli_tp, cli_rss = med(direction + "-cli")
    print(f"| {direction} | curl | {curl_tp:.0f} | {curl_rss:.1f} | |")
    print(f"| {direction} | pasupgrade-cli | {cli_tp:.0f} | {cli_rss:.1f} | {cli_tp / curl_tp:.2f} |")
EOF
