#!/usr/bin/env bash
# Upgrades a simulated PAS node from 4.8.0 to 4.9.0 with pasupgrade-cli, as
# an operator would run it on the management node.
#
#   scripts/demo.sh            (or: make demo)
#
# It installs the lab's Debian packages when missing and starts the lab's
# private Docker engine unless one already responds at DOCKER_HOST. Then it
# builds the commands, brings up a single-node lab at 4.8.0 (pas-lab up),
# and runs "pasupgrade-cli upgrade --yes" inside the management node with
# a config file and a password file. It shows the plan, the progress and the summary,
# then brings the lab down, also when a step fails or on Ctrl-C. The engine
# is stopped at the end only when this script started it.
#
# Settings (environment):
#   PASUPGRADE_DEMO_LAB   lab name (default: demo)
#   PASUPGRADE_LAB_DIR    the lab's cache directory (see scripts/lab-engine.sh)
#   PASUPGRADE_DEMO_KEEP  1 leaves the lab running for a look around
set -euo pipefail
cd "$(dirname "$0")/.."

lab_name=${PASUPGRADE_DEMO_LAB:-demo}
lab_dir=${PASUPGRADE_LAB_DIR:-/var/cache/pasupgrade-lab}/labs/$lab_name
started_engine=0
lab_up=0

say() { printf '\n==> %s\n' "$*"; }
fail() { printf 'demo: %s\n' "$*" >&2; exit 1; }

cleanup() {
	local rc=$?
	# A failed "pas-lab up" removes what it created, and leaves no lab.json.
	[[ -f $lab_dir/lab.json ]] || lab_up=0
	if ((lab_up)) && [[ ${PASUPGRADE_DEMO_KEEP:-0} != 1 ]]; then
		say "Bringing the lab down (pas-lab down --name $lab_name)"
		bin/pas-lab down --name "$lab_name" --dir "$lab_dir" || echo "demo: pas-lab down failed; run it again by hand" >&2
	elif ((lab_up)); then
		say "Leaving lab $lab_name running; remove it with: bin/pas-lab down --name $lab_name"
	fi
	if ((started_engine)); then
		say "Stopping the Docker engine this demo started"
		scripts/lab-engine.sh stop || true
	fi
	if ((rc == 130)); then
		printf '\ndemo: interrupted\n' >&2
	elif ((rc != 0)); then
		printf '\ndemo: failed with exit code %d; the output above shows the failed step\n' "$rc" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# engine_answers reports whether a Docker engine responds at DOCKER_HOST.
engine_answers() {
	[[ -n ${DOCKER_HOST:-} ]] && docker version >/dev/null 2>&1
}

say "Checking the lab's dependencies (docker.io, debootstrap, zip, ...)"
if [[ $(id -u) -ne 0 ]]; then
	fail "the lab runs its own Docker engine and debootstrap, which need root; run: sudo $0"
fi
command -v go >/dev/null || fail "the go command is missing; install Go 1.26 or later"
scripts/lab-engine.sh deps

say "Finding a Docker engine for the lab"
if engine_answers; then
	echo "using the engine at DOCKER_HOST=$DOCKER_HOST"
elif env_line=$(scripts/lab-engine.sh env) && [[ -n $env_line ]]; then
	export "${env_line?}"
	echo "using the lab engine already running at $DOCKER_HOST"
else
	env_line=$(scripts/lab-engine.sh start)
	export "${env_line?}"
	started_engine=1
	echo "started the lab engine at $DOCKER_HOST"
fi

say "Building the commands (go build ./cmd/...)"
mkdir -p bin
go build -o bin/ ./cmd/...
# The CLI runs inside the node container, whose libraries are not this
# machine's, so it is built without cgo.
CGO_ENABLED=0 go build -trimpath -o bin/node/pasupgrade-cli ./cmd/pasupgrade-cli

say "Bringing up a single-node lab at PAS 4.8.0 (pas-lab up --name $lab_name)"
echo "the first run builds the Debian node image with debootstrap, which takes a few minutes"
if [[ -f $lab_dir/lab.json ]]; then
	fail "lab $lab_name already exists in $lab_dir; remove it with 'bin/pas-lab down --name $lab_name' or choose another name with PASUPGRADE_DEMO_LAB"
fi
lab_up=1
bin/pas-lab up --name "$lab_name" --dir "$lab_dir" --topology single
[[ -f $lab_dir/lab.json ]] || fail "pas-lab up left no lab record at $lab_dir/lab.json"

# lab_field prints one value of the lab's record, lab.json.
lab_field() {
	python3 -c 'import json,sys
lab = json.load(open(sys.argv[1]))
mgmt = next(n for n in lab["nodes"] if n["name"] == "mgmt")
print(eval(sys.argv[2], {"lab": lab, "mgmt": mgmt}))' "$lab_dir/lab.json" "$1"
}
container=$(lab_field 'mgmt["container"]')
mgmt_url="http://127.0.0.1:$(lab_field 'mgmt["ports"]["mgmt"]')"
core_url="http://127.0.0.1:$(lab_field 'mgmt["ports"]["core"]')/"
tool_image=$(lab_field 'lab["tool_image"]')

# The lab directory is mounted at the same path inside the node, so the
# files placed there are what the operator would have on the node.
install -m 0755 bin/node/pasupgrade-cli "$lab_dir/bin/pasupgrade-cli"
config=$lab_dir/pasupgrade.yaml
cat >"$config" <<EOF
# pasupgrade-cli settings for the demo lab; every key is documented in
# 'pasupgrade-cli upgrade --help'.
topology: single
work-dir: $lab_dir/work
deb-dir: $lab_dir/debs
mgmt-url: $mgmt_url
tool-image: $tool_image
EOF
echo "lab directory: $lab_dir"
echo "management API: $mgmt_url; core proxy: $core_url"
echo "config file ($config):"
sed 's/^/    /' "$config"

in_node() { docker exec "$container" "$@"; }
# core_response prints the response of core's proxy. It runs curl inside the
# node, whose image includes it, because this machine may lack curl. The node
# shares this machine's network.
core_response() {
	echo "core answers: $(in_node curl -fsS --max-time 5 "$core_url" 2>&1 || true)"
}
cli=("$lab_dir/bin/pasupgrade-cli" --config "$config")

say "PAS packages before the upgrade (dpkg-query in the node)"
in_node dpkg-query -W -f '    ${Package} ${Version}\n' 'proxedo-api-security*'
core_response

say "The plan (pasupgrade-cli plan)"
in_node "${cli[@]}" plan

say "Upgrading (pasupgrade-cli upgrade --yes --password-file ...)"
# A terminal gets the progress display; otherwise one line per step.
tty_flag=()
[[ -t 1 ]] && tty_flag=(-t)
docker exec "${tty_flag[@]}" "$container" "${cli[@]}" upgrade --yes \
	--password-file "$lab_dir/admin-password"

say "PAS packages after the upgrade"
in_node dpkg-query -W -f '    ${Package} ${Version}\n' 'proxedo-api-security*'
core_response

say "Status of every node (pasupgrade-cli status)"
in_node "$lab_dir/bin/pasupgrade-cli" status --mgmt-url "$mgmt_url" --password-file "$lab_dir/admin-password"

say "Done: the summary above gives the core downtime and the backup set's path"
