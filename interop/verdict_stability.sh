#!/usr/bin/env bash
# Verdict stability (issue 29): `harness check --repeat N` against independent
# correct servers (the Rust reference, python-socketio, Node's socket.io) and
# their planted defects, all with 1 s timers, on loopback. A correct server
# must PASS on every seed; a defect must FAIL on every seed with the same
# clauses. Prints one line per server and level; the full tables are in
# target/stability/.
#
#   interop/verdict_stability.sh [CORE_SEEDS=50] [ROBUST_SEEDS=10] [FIRST_SEED=1]
#
# Needs a built harness and server-under-test (cargo build -p harness -p
# server-under-test), python-socketio (interop/requirements.txt) and
# interop/node_modules (npm ci). Servers are started here and ended by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
core_n=${1:-50}
robust_n=${2:-10}
first=${3:-1}
harness=${HARNESS:-./target/debug/harness}
out=target/stability
mkdir -p "$out"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

start() { # name, command...: starts a server (from this shell, so its PID is kept)
  local name=$1; shift
  "$@" >"$out/$name.server.log" 2>&1 &
  pids+=($!)
}
url_of() { # name: waits for the server's URL
  for _ in $(seq 100); do
    grep -q "listening on" "$out/$1.server.log" && break
    sleep 0.1
  done
  grep -o "http://[0-9.:]*" "$out/$1.server.log" | head -1
}

ref=(./target/debug/server-under-test --addr 127.0.0.1:0 --ping-interval-ms 1000 --ping-timeout-ms 1000 --ack-timeout-ms 1000)
py=(python3 interop/python_server.py --port 0 --ping-interval 1 --ping-timeout 1 --ack-timeout 1)
node=(node interop/node_server.mjs --port 0 --ping-interval 1 --ping-timeout 1 --ack-timeout 1)

servers=(
  "reference|${ref[*]}"
  "python|${py[*]}"
  "node|${node[*]}"
  "reference+last_sid_wins|${ref[*]} --bug last_sid_wins"
  "reference+extra_args|${ref[*]} --bug extra_args"
  "python+seed|${py[*]} --seed"
  "node+one_sid_per_user|${node[*]} --defect one_sid_per_user"
  "node+accept_extra_args|${node[*]} --defect accept_extra_args"
)

run() { # name, level, n
  local name=$1 level=$2 n=$3 cmd url
  cmd=$(printf '%s\n' "${servers[@]}" | grep "^$name|" | cut -d'|' -f2)
  # shellcheck disable=SC2086
  start "$name.$level" $cmd
  local server=$!
  url=$(url_of "$name.$level")
  "$harness" check "$url" --level "$level" --seed "$first" --repeat "$n" \
    >"$out/$name.$level.txt" 2>"$out/$name.$level.log" || true
  local fails unstable
  # The stability table (N > 1), or the single report's FAIL lines (N = 1).
  fails=$({ grep -E '^[A-Z][0-9] +[0-9]+ +[1-9]' "$out/$name.$level.txt" | awk '$3>0 {print $1"×"$3}'
            grep -E '^[A-Z][0-9] +FAIL ' "$out/$name.$level.txt" | awk '{print $1"×1"}'; } | tr '\n' ' ' || true)
  unstable=$(grep -c UNSTABLE "$out/$name.$level.txt" || true)
  printf '%-26s %-6s %3s seeds  FAIL: %-20s unstable clauses: %s\n' "$name" "$level" "$n" "${fails:-none}" "$unstable"
  # run() goes in the background, in a subshell the EXIT trap does not see.
  kill "$server" 2>/dev/null || true
}

# The checks of the eight servers side by side (each waits on its server's
# timers, not on a core), one level after the other. A count of 0 skips
# that level.
if [ "$core_n" -gt 0 ]; then
  for entry in "${servers[@]}"; do
    name=${entry%%|*}
    run "$name" core "$core_n" &
  done
  wait
fi
if [ "$robust_n" -gt 0 ]; then
  for entry in "${servers[@]}"; do
    name=${entry%%|*}
    run "$name" robust "$robust_n" &
  done
  wait
fi
