#!/usr/bin/env bash
# What the edge features cost per request: tollgate's CPU time (user + kernel) per proxied
# 1 KiB request with the access log off and on (to a file), and behind HAProxy with and
# without a PROXY protocol v2 header on its connections. Interleaved rounds, same load.
# tollgate on CPU 1; wrk, the nginx origin and HAProxy on CPU 0.
#   bench/peers/edge-cost.sh [ROUNDS] [SECONDS] [DRIVER]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); . "$here/lib.sh"
rounds=${1:-3}; secs=${2:-6}; driver=${3:-uring}
require_built "$bin"
dir=$(mktemp -d /tmp/tollgate-edge.XXXXXX)
read -r origin plain logged proxied hap_plain hap_proxied < <(free_ports 6)
render origin.conf.in "$dir" "$origin" > "$dir/origin.conf"
# Three tollgates from the bench config: plain, access log to a file, PROXY protocol required
# from loopback.
base=$(tollgate_toml @BIND@ "$origin" | sed 's/127.0.0.1:@BIND@/@BIND@/')
echo "${base//@BIND@/127.0.0.1:$plain}" > "$dir/plain.toml"
{ echo "${base//@BIND@/127.0.0.1:$logged}"; printf '\n[access_log]\npath = "%s/access.log"\n' "$dir"; } > "$dir/logged.toml"
echo "${base//@BIND@/127.0.0.1:$proxied}" | sed 's/^backlog = 65535$/backlog = 65535\nproxy_protocol = "required"\nproxy_protocol_from = ["127.0.0.1"]/' > "$dir/proxied.toml"
cat > "$dir/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 9500
  pidfile $dir/haproxy.pid
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  option http-keep-alive
  http-reuse always
frontend plain
  bind 127.0.0.1:$hap_plain
  default_backend plain
frontend proxied
  bind 127.0.0.1:$hap_proxied
  default_backend proxied
backend plain
  server t 127.0.0.1:$plain maxconn 1024
backend proxied
  server t 127.0.0.1:$proxied maxconn 1024 send-proxy-v2
CFG
start_nginx 0 "$dir/origin.conf"
pids=()
for v in plain logged proxied; do
  start_tollgate "$dir/$v.log" 1 "$dir/$v.toml" --driver "$driver"; pids+=("$started")
done
for v in plain logged proxied; do wait_ready "$dir/$v.log"; done
start_haproxy 0 "$dir/haproxy.cfg" "$dir/haproxy.pid"
measure() { local name=$1 pid=$2 port=$3 a b out rps n
  a=$(cpu_ticks "$pid")
  out=$(taskset -c 0 wrk -t1 -c64 -d"${secs}s" "http://127.0.0.1:$port/plain/1k")
  b=$(cpu_ticks "$pid")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}'); n=$(echo "$rps*$secs" | bc)
  printf "%-16s rps=%6.0f tollgate_cpu_us_per_req=%5.2f req_per_cpu_s=%6.0f\n" "$name" "$rps" \
    "$(echo "($b-$a)*1000000/$tick/$n" | bc -l)" \
    "$(echo "$n/(($b-$a)/$tick)" | bc -l)"
}
for _ in $(seq 1 "$rounds"); do
  measure log-off "${pids[0]}" "$plain"
  measure log-on "${pids[1]}" "$logged"
  measure haproxy-plain "${pids[0]}" "$hap_plain"
  measure haproxy-pp2 "${pids[2]}" "$hap_proxied"
done
echo "access log lines written: $(wc -l < "$dir/access.log")"
