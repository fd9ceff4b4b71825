#!/usr/bin/env bash
# A deployment of two nodes on loopback, as the seed's stack runs in
# production: a real Redis (Debian's redis-server), two python-socketio nodes
# sharing it (python_cluster.py, AsyncRedisManager) -- or, with
# REFERENCE_SERVER=path/to/server-under-test, two reference nodes (--redis,
# --node-id; DEFECT is then a --bug switch) -- and a real HAProxy in front,
# sticky by cookie as socket.io's docs recommend, or not.
#
#   interop/cluster.sh [sticky|roundrobin] [DEFECT] -- COMMAND...
#
# Starts everything on free ports, runs COMMAND with PUBLIC, NODE_A and
# NODE_B set to the three URLs (and NODE_A_PID, NODE_B_PID to the nodes'
# PIDs, for a --kill-node-cmd; RELAY_B_PID to the relay between node b and
# Redis, for --adapter-cut-cmd), then ends what it started (by PID).
# Needs redis-server, haproxy and python3 with interop/requirements.txt.
set -euo pipefail
cd "$(dirname "$0")"
balance=${1:-sticky}
defect=${2:-none}
shift 2 || true
[ "${1:-}" = "--" ] && shift
work=$(mktemp -d -t harness-cluster-XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

# Each node is started from this shell (not inside $(…), whose PIDs would be
# lost with its subshell and the nodes left running).
# Node b reaches Redis through a relay, so a check can cut it off from the
# shared state (N4): kill -USR1 $RELAY_B_PID, and heal: kill -USR2.
relay_port=$(free_port)
python3 tcp_relay.py "$relay_port" "$redis_port" >"$work/relay.log" 2>&1 &
pids+=($!)
RELAY_B_PID=$!
for _ in $(seq 50); do grep -q "^relay" "$work/relay.log" && break; sleep 0.1; done

start_node() { # id redis-port
  if [ -n "${REFERENCE_SERVER:-}" ]; then
    bug=()
    [ "$defect" != none ] && bug=(--bug "$defect")
    "$REFERENCE_SERVER" --addr 127.0.0.1:0 --redis "redis://127.0.0.1:$2/0" --node-id "$1" \
      --ping-interval-ms 1000 --ping-timeout-ms 1000 --ack-timeout-ms 1000 "${bug[@]}" \
      >"$work/node-$1.log" 2>&1 &
  else
    python3 python_cluster.py --redis "redis://127.0.0.1:$2/0" --node-id "$1" \
      --port 0 --ping-interval 1 --ping-timeout 1 --ack-timeout 1 --defect "$defect" \
      >"$work/node-$1.log" 2>&1 &
  fi
  pids+=($!)
  eval "NODE_$(echo "$1" | tr a-z A-Z)_PID=$!"
}
url_of() { # id: waits for the node's URL and prints it
  for _ in $(seq 100); do grep -q "listening on" "$work/node-$1.log" && break; sleep 0.1; done
  grep -o "http://[0-9.:]*" "$work/node-$1.log" | head -1
}
start_node a "$redis_port"
start_node b "$relay_port"
NODE_A=$(url_of a)
NODE_B=$(url_of b)

public_port=$(free_port)
sticky_line=""
cookie_a=""
cookie_b=""
if [ "$balance" = sticky ]; then
  sticky_line="cookie SERVERID insert indirect nocache"
  cookie_a="cookie a"
  cookie_b="cookie b"
fi
cat >"$work/haproxy.cfg" <<CFG
global
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout tunnel 1h
frontend public
  bind 127.0.0.1:$public_port
  default_backend nodes
backend nodes
  balance roundrobin
  $sticky_line
  server a ${NODE_A#http://} $cookie_a
  server b ${NODE_B#http://} $cookie_b
CFG
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
pids+=($!)
PUBLIC="http://127.0.0.1:$public_port"
up() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/health", timeout=1)' "$1" 2>/dev/null; }
for _ in $(seq 50); do up "$PUBLIC" && break; sleep 0.1; done
echo "cluster: $balance, defect $defect: public $PUBLIC, nodes $NODE_A $NODE_B, redis :$redis_port" >&2
export PUBLIC NODE_A NODE_B NODE_A_PID NODE_B_PID RELAY_B_PID
"$@"
