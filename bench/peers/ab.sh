#!/usr/bin/env bash
# A/B of two tollgate builds: both pinned to CPU 1 on the bench config, the nginx origin and
# the load on CPU 0, interleaved rounds (A, B, A, B, …); requests per CPU-second of each
# (utime+stime from /proc) per round, then the medians and the median of the paired ratios.
# MODE keepalive: wrk -t1 -c64 (and nginx as a reference); newconn: tollgate-bench load
# --new-connection-per-request -c 64 -t 1.
# A_EXTRA / B_EXTRA: a TOML file appended to that side's config (two configs of one build).
#   bench/peers/ab.sh ROUNDS SECONDS BUILD_A BUILD_B [keepalive|newconn]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rounds=$1; secs=$2; build_a=$3; build_b=$4; mode=${5:-keepalive}
require_tools "apt-get install -y nginx-light wrk" nginx wrk
require_built "$build_a" "$build_b" "$bench"
dir=$(mktemp -d /tmp/tollgate-ab.XXXXXX)
read -r origin nginx port_a port_b < <(free_ports 4)
for f in origin.conf nginx-proxy.conf; do render "$f.in" "$dir" "$origin" "$nginx" > "$dir/$f"; done
tollgate_toml "$port_a" "$origin" > "$dir/a.toml"
tollgate_toml "$port_b" "$origin" > "$dir/b.toml"
if [[ -n ${A_EXTRA:-} ]]; then cat "$A_EXTRA" >> "$dir/a.toml"; fi
if [[ -n ${B_EXTRA:-} ]]; then cat "$B_EXTRA" >> "$dir/b.toml"; fi
start_nginx 0 "$dir/origin.conf"
start_nginx 1 "$dir/nginx-proxy.conf"
bin=$build_a start_tollgate "$dir/a.log" 1 "$dir/a.toml"; pid_a=$started
bin=$build_b start_tollgate "$dir/b.log" 1 "$dir/b.toml"; pid_b=$started
wait_ready "$dir/a.log"; wait_ready "$dir/b.log"
ngx=$(pgrep -P "$(cat "$dir/nginx-proxy.pid")" | head -1)
# measure NAME PID PORT: one run; prints "NAME REQ_PER_CPU_S".
measure() { local c0 c1 n url="http://127.0.0.1:$3/plain/1k"
  if [[ $mode != newconn ]]; then wrk_per_cpu "$1" "$2" "$url" "$secs"; return; fi
  c0=$(cpu_ticks "$2")
  n=$(taskset -c 0 "$bench" load --url "$url" --new-connection-per-request -c 64 -t 1 \
    -d "${secs}s" --warmup 0s --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["requests"])')
  c1=$(cpu_ticks "$2")
  echo "$1 $((n * tick / (c1 - c0)))"
}
for r in $(seq 1 "$rounds"); do
  [[ $mode == newconn ]] || measure nginx "$ngx" "$nginx"
  measure A "$pid_a" "$port_a"
  measure B "$pid_b" "$port_b"
done | tee "$dir/results"
paired_medians "$dir/results" A B
