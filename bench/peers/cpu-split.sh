#!/usr/bin/env bash
# User and kernel CPU time per proxied request: nginx vs tollgate, interleaved, same load.
# Proxies on CPU 1, wrk and the nginx origin on CPU 0.
#   bench/peers/cpu-split.sh [ROUNDS] [SECONDS] [DRIVER]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/../.." && pwd)
rounds=${1:-3}; secs=${2:-6}; driver=${3:-uring}
bin=${TOLLGATE_BIN:-$root/target/release/tollgate}
dir=$(mktemp -d /tmp/tollgate-split.XXXXXX)
for f in origin.conf nginx-proxy.conf; do sed -e "s#@DIR@#$dir#g" -e "s#@ORIGIN_PORT@#9000#g" -e "s#@NGINX_PORT@#8080#g" -e "s#@HAPROXY_PORT@#8081#g" "$here/$f.in" > "$dir/$f"; done
taskset -c 0 nginx -c "$dir/origin.conf" -p "$dir"
taskset -c 1 nginx -c "$dir/nginx-proxy.conf" -p "$dir"
taskset -c 1 "$bin" run -c "$here/tollgate.toml" --driver "$driver" 2> "$dir/tollgate.log" & tg=$!
trap 'kill $tg 2>/dev/null; nginx -c "$dir/origin.conf" -p "$dir" -s stop; nginx -c "$dir/nginx-proxy.conf" -p "$dir" -s stop' EXIT
for _ in $(seq 1 100); do grep -q ready "$dir/tollgate.log" && break; sleep 0.1; done
ng=$(pgrep -P "$(cat "$dir/nginx-proxy.pid")" | head -1)
tick=$(getconf CLK_TCK)
measure() { local name=$1 pid=$2 port=$3 a b out rps n
  read -r -a a < "/proc/$pid/stat"
  out=$(taskset -c 0 wrk -t1 -c64 -d"${secs}s" "http://127.0.0.1:$port/plain/1k")
  read -r -a b < "/proc/$pid/stat"
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}'); n=$(echo "$rps*$secs" | bc)
  printf "%-9s rps=%6.0f user_us=%5.2f sys_us=%5.2f total_us=%5.2f\n" "$name" "$rps" \
    "$(echo "(${b[13]}-${a[13]})*1000000/$tick/$n" | bc -l)" \
    "$(echo "(${b[14]}-${a[14]})*1000000/$tick/$n" | bc -l)" \
    "$(echo "(${b[13]}+${b[14]}-${a[13]}-${a[14]})*1000000/$tick/$n" | bc -l)"
}
for _ in $(seq 1 "$rounds"); do measure nginx "$ng" 8080; measure tollgate "$tg" 8090; done
