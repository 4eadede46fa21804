#!/usr/bin/env bash
# Priority shedding under overload: two customers through one tollgate worker to an origin
# that answers after 2 ms: `gold` (tier 0, 50 keep-alive connections, closed loop) and
# `bronze` (tier 5, 400 connections, open loop at BRONZE_RATE req/s, more than the worker can
# proxy). Without `[overload]` bronze's backlog starves gold; with `in_flight_max` (default
# 100: bronze is shed from 50 admitted requests in flight, gold only at 100) bronze gets
# quick 503s and gold keeps its throughput.
#   bench/peers/priority.sh [SECONDS]    (env: BRONZE_RATE=70000 IN_FLIGHT_MAX=100 DELAY_MS=2
#                                         GOLD_CONNS=50 BRONZE_CONNS=400)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); . "$here/lib.sh"
secs=${1:-10}
require_built "$bin" "$bench"
dir=$(mktemp -d /tmp/tollgate-priority.XXXXXX)
origin=$(free_ports 1)
"$bench" origin --listen "127.0.0.1:$origin" --delay-ms "${DELAY_MS:-2}" --threads 1 > "$dir/origin.out" 2>&1 & track $!
echo gold-key-value-0123456789 > "$dir/gold.txt"; echo bronze-key-value-0123456789 > "$dir/bronze.txt"
run() { local name=$1 overload=$2 port; port=$(free_ports 1)
  cat > "$dir/$name.toml" <<CFG
[server]
workers = 1
[upstream]
idle_per_upstream_max = 512
$overload
[[api_keys.keys]]
id = "gold"
value = "gold-key-value-0123456789"
[[api_keys.keys]]
id = "bronze"
value = "bronze-key-value-0123456789"
[[usage_plans]]
id = "gold"
tier = 0
keys = ["gold"]
[[usage_plans.stages]]
api = "bench"
[[usage_plans]]
id = "bronze"
tier = 5
keys = ["bronze"]
[[usage_plans.stages]]
api = "bench"
[[listeners]]
name = "bench"
bind = "127.0.0.1:$port"
backlog = 65535
[[apis]]
id = "bench"
api_key_required = true
[[apis.routes]]
route = "GET /{proxy+}"
integration = "origin"
[apis.integrations.origin]
type = "http"
url = "http://127.0.0.1:$origin/{proxy}"
CFG
  start_tollgate "$dir/$name.log" - "$dir/$name.toml"; local gw=$started
  wait_ready "$dir/$name.log" ready 100 0.05
  local loads=()
  for tier in gold bronze; do
    "$bench" load --url "http://127.0.0.1:$port/x" -c "$([[ $tier == gold ]] && echo "${GOLD_CONNS:-50}" || echo "${BRONZE_CONNS:-400}")" -t 1 -d "${secs}s" --warmup 1s $([[ $tier == bronze ]] && echo "--rate ${BRONZE_RATE:-70000}") \
      --header-list "x-api-key:$dir/$tier.txt" --json > "$dir/$name-$tier.json" & loads+=($!)
  done
  wait "${loads[@]}"
  for tier in gold bronze; do
    python3 - "$dir/$name-$tier.json" "$name" "$tier" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ok = r["status"].get("200", 0) / r["duration_s"]
shed = r["status"].get("503", 0) / r["duration_s"]
print(f'{sys.argv[2]:<12} {sys.argv[3]:<7} served/s={ok:8.0f} shed(503)/s={shed:8.0f} p50={r["latency_us"]["p50"]/1000:6.1f} ms p99={r["latency_us"]["p99"]/1000:6.1f} ms')
PY
  done
  kill "$gw"; wait "$gw" 2> /dev/null || true; untrack "$gw"
}
run no-shedding ""
run shedding "[overload]
in_flight_max = ${IN_FLIGHT_MAX:-100}"
echo "configs and logs: $dir"
