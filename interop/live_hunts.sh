#!/usr/bin/env bash
# The README's live-hunt table (#12), one row per run:
#   interop/live_hunts.sh NAME PORT BUDGET
# NAME: a bug switch of the reference server (never_push, last_sid_wins,
# stale_presence, register_anonymous, no_ack_fallback), `correct`, or
# `python_seed` (interop/python_server.py --seed); CLAUSE=M5 hunts for one
# clause, CONC=K overrides --concurrency. Servers run with 1 s timers and a 1 s
# ack timeout on 127.0.0.1:PORT; the hunt's output lands in target/live-hunts/.
# Build first: cargo build --release -p harness -p server-under-test
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
H=$root/target/release/harness
S=$root/target/release/server-under-test
name=$1 port=$2 budget=$3
label=$name${CLAUSE:+-$CLAUSE}
out=$root/target/live-hunts
mkdir -p "$out"
timers=(--ping-interval-ms 1000 --ping-timeout-ms 1000 --ack-timeout-ms 1000)
case $name in
  python_seed) python3 "$root/interop/python_server.py" --port "$port" --ping-interval 1 --ping-timeout 1 --ack-timeout 1 --seed ;;
  correct) "$S" --addr "127.0.0.1:$port" "${timers[@]}" ;;
  *) "$S" --addr "127.0.0.1:$port" "${timers[@]}" --bug "$name" ;;
esac > "$out/$label.server.log" 2>&1 &
server=$!
sleep 3
start=$(date +%s)
"$H" hunt --target "http://127.0.0.1:$port" --budget "$budget" --users 4 --duration 10s \
  ${CONC:+--concurrency "$CONC"} --confirmations 5 --shrink-budget 40 --timeout-scale 2 \
  --ack-timeout-ms 1000 --out "$out/$label.json" ${CLAUSE:+--clause "$CLAUSE"} \
  > "$out/$label.out" 2> "$out/$label.err"
code=$?
echo "exit $code wall $(( $(date +%s) - start )) s" >> "$out/$label.out"
kill "$server"
cat "$out/$label.out"
