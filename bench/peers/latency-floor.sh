#!/usr/bin/env bash
# Open-loop latency at a fixed rate straight to the origin (no proxy: the floor any proxy's
# latency sits on) and through nginx and tollgate, interleaved. tollgate-bench load (open loop,
# coordinated omission corrected) and the tollgate-bench origin on CPU 0, proxies on CPU 1,
# as `compare`'s latency scenario. See docs/BENCHMARKS.md §13.
#   bench/peers/latency-floor.sh [RATE] [ROUNDS] [SECONDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rate=${1:-32000}; rounds=${2:-3}; secs=${3:-8}
require_tools "apt-get install -y nginx-light" nginx
require_built "$bin" "$bench"
dir=$(mktemp -d /tmp/tollgate-latency.XXXXXX)
read -r origin nginx tollgate < <(free_ports 3)
render nginx-proxy.conf.in "$dir" "$origin" "$nginx" > "$dir/nginx-proxy.conf"
tollgate_toml "$tollgate" "$origin" > "$dir/tollgate.toml"
taskset -c 0 "$bench" origin --listen "127.0.0.1:$origin" --threads 1 > "$dir/origin.log" 2>&1 &
track $!
start_nginx 1 "$dir/nginx-proxy.conf"
start_tollgate "$dir/tollgate.log" 1 "$dir/tollgate.toml"
wait_ready "$dir/tollgate.log"
wait_log "$dir/origin.log" "$origin" || { echo "origin did not start: $dir/origin.log" >&2; exit 1; }
run() {
  taskset -c 0 "$bench" load --url "http://127.0.0.1:$2/plain/1k" --json --threads 1 \
    --connections 64 --duration "${secs}s" --warmup 1s --rate "$rate" |
    python3 -c 'import json, sys
d = json.load(sys.stdin); lat = d["latency_us"]; errors = sum(d["errors"].values())
print("%-9s rps=%7.0f p50=%dus p99=%dus p99.9=%dus errors=%d" % (sys.argv[1], d["rps"],
      lat["p50"], lat["p99"], lat["p999"], errors))' "$1"
}
for r in $(seq 1 "$rounds"); do
  echo "# round $r ($rate req/s)"
  run origin "$origin"; run nginx "$nginx"; run tollgate "$tollgate"
done
