#!/usr/bin/env bash
# Installs the lab's Debian packages and starts or stops a private Docker
# engine for the lab and the tests.
#
#   scripts/lab-engine.sh deps    install what the lab needs when missing
#   scripts/lab-engine.sh start   start the engine; prints DOCKER_HOST=...
#   scripts/lab-engine.sh stop    stop the engine started by "start"
#   scripts/lab-engine.sh env     print DOCKER_HOST=... for a running engine
#
# The engine listens only on its own Unix socket and keeps its data under
# PASUPGRADE_LAB_DIR (default /var/cache/pasupgrade-lab), so images survive
# between runs and a Docker engine the machine already runs is never touched.
set -euo pipefail

lab_dir=${PASUPGRADE_LAB_DIR:-/var/cache/pasupgrade-lab}
# Unix socket paths are limited to 108 bytes, so the socket and the exec
# root live under /run with a short name derived from lab_dir.
run_dir=/run/pasupgrade-lab-$(printf '%s' "$lab_dir" | cksum | cut -d' ' -f1)
sock=$run_dir/docker.sock
pidfile=$run_dir/dockerd.pid

deps() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v zip >/dev/null || missing+=(zip)
  command -v unzip >/dev/null || missing+=(unzip)
  command -v htpasswd >/dev/null || missing+=(apache2-utils)
  [[ -x /usr/bin/docker-registry ]] || missing+=(docker-registry)
  command -v python3 >/dev/null || missing+=(python3)
  if ((${#missing[@]})); then
    echo "lab-engine: installing ${missing[*]}" >&2
    if ! apt-get update -qq || ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; then
      echo "lab-engine: installing ${missing[*]} failed; check that Debian's package mirror is reachable" >&2
      exit 1
    fi
  fi
}

running() {
  [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start() {
  if running; then
    echo "DOCKER_HOST=unix://$sock"
    return
  fi
  mkdir -p "$lab_dir/docker" "$run_dir"
  rm -f "$sock" "$pidfile"
  dockerd \
    --data-root "$lab_dir/docker" \
    --exec-root "$run_dir/exec" \
    --host "unix://$sock" \
    --pidfile "$pidfile" \
    --storage-driver vfs \
    --iptables=false --ip6tables=false --bridge=none \
    --insecure-registry 127.0.0.0/8 \
    >"$lab_dir/dockerd.log" 2>&1 &
  for _ in $(seq 1 120); do
    if DOCKER_HOST=unix://$sock docker version >/dev/null 2>&1; then
      echo "DOCKER_HOST=unix://$sock"
      return
    fi
    sleep 0.5
  done
  echo "lab-engine: dockerd did not answer on $sock within 60 s; its log follows" >&2
  tail -n 30 "$lab_dir/dockerd.log" >&2
  exit 1
}

stop() {
  if ! running; then
    return
  fi
  local pid
  pid=$(cat "$pidfile")
  kill "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  echo "lab-engine: dockerd ($pid) did not stop within 30 s; killing it" >&2
  kill -9 "$pid" 2>/dev/null || true
}

case ${1:-} in
  deps) deps ;;
  start) start ;;
  stop) stop ;;
  env) running && echo "DOCKER_HOST=unix://$sock" ;;
  *) echo "usage: $0 deps|start|stop|env" >&2; exit 2 ;;
esac
