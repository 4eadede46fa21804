#!/usr/bin/env bash
# User and kernel CPU time per proxied request: nginx vs tollgate, interleaved, same load.
# Proxies on CPU 1, wrk and the nginx origin on CPU 0.
#   bench/peers/cpu-split.sh [ROUNDS] [SECONDS] [DRIVER]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); . "$here/lib.sh"
rounds=${1:-3}; secs=${2:-6}; driver=${3:-uring}
require_built "$bin"
dir=$(mktemp -d /tmp/tollgate-split.XXXXXX)
read -r origin nginx tollgate < <(free_ports 3)
for f in origin.conf nginx-proxy.conf; do render "$f.in" "$dir" "$origin" "$nginx" > "$dir/$f"; done
tollgate_toml "$tollgate" "$origin" > "$dir/tollgate.toml"
start_nginx 0 "$dir/origin.conf"
start_nginx 1 "$dir/nginx-proxy.conf"
start_tollgate "$dir/tollgate.log" 1 "$dir/tollgate.toml" --driver "$driver"; tg=$started
wait_ready "$dir/tollgate.log"
ng=$(pgrep -P "$(cat "$dir/nginx-proxy.pid")" | head -1)
measure() { local name=$1 pid=$2 port=$3 ua sa ub sb out rps n
  read -r ua sa < <(cpu_times "$pid")
  out=$(taskset -c 0 wrk -t1 -c64 -d"${secs}s" "http://127.0.0.1:$port/plain/1k")
  read -r ub sb < <(cpu_times "$pid")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}'); n=$(echo "$rps*$secs" | bc)
  printf "%-9s rps=%6.0f user_us=%5.2f sys_us=%5.2f total_us=%5.2f\n" "$name" "$rps" \
    "$(echo "($ub-$ua)*1000000/$tick/$n" | bc -l)" \
    "$(echo "($sb-$sa)*1000000/$tick/$n" | bc -l)" \
    "$(echo "($ub+$sb-$ua-$sa)*1000000/$tick/$n" | bc -l)"
}
for _ in $(seq 1 "$rounds"); do measure nginx "$ng" "$nginx"; measure tollgate "$tg" "$tollgate"; done
