#!/usr/bin/env bash
# Plain 1 KiB keep-alive proxying: tollgate vs nginx vs HAProxy, interleaved rounds, requests
# per CPU-second of each proxy (utime+stime from /proc), following the benchmarking method:
# proxies pinned to CPU 1, wrk and the origin on CPU 0.
#   bench/peers/compare-plain.sh [ROUNDS] [SECONDS] [DRIVER...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rounds=${1:-5}; secs=${2:-8}; shift 2 || true
drivers=("$@"); [ ${#drivers[@]} -gt 0 ] || drivers=(uring epoll)
require_tools "apt-get install -y nginx-light haproxy wrk" nginx haproxy wrk
require_built "$bin"
dir=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
read -r origin nginx haproxy tg_ports < <(free_ports $((3 + ${#drivers[@]})))
read -r -a tg_ports <<< "$tg_ports"
for f in origin.conf nginx-proxy.conf haproxy.cfg; do
  render "$f.in" "$dir" "$origin" "$nginx" "$haproxy" > "$dir/$f"
done
start_nginx 0 "$dir/origin.conf"
start_nginx 1 "$dir/nginx-proxy.conf"
start_haproxy 1 "$dir/haproxy.cfg" "$dir/haproxy.pid"
declare -A tg_pid tg_port
for i in "${!drivers[@]}"; do
  d=${drivers[$i]}; port=${tg_ports[$i]}; tg_port[$d]=$port
  tollgate_toml "$port" "$origin" > "$dir/tollgate-$d.toml"
  start_tollgate "$dir/tollgate-$d.log" 1 "$dir/tollgate-$d.toml" --driver "$d"
  tg_pid[$d]=$started
done
for d in "${drivers[@]}"; do wait_ready "$dir/tollgate-$d.log"; done
ngx_worker=$(pgrep -P "$(cat "$dir/nginx-proxy.pid")" | head -1)
hap=$(cat "$dir/haproxy.pid")
for p in $ngx_worker $hap "${tg_pid[@]}"; do
  mask=$(taskset -p "$p" | awk '{print $NF}'); [ "$mask" = "2" ] || { echo "pinning failed for $p (mask $mask)"; exit 1; }
done
run() { local name=$1 url=$2 pid=$3
  local c0 t0 out c1 t1 rps util
  c0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
  out=$(taskset -c 0 wrk -t1 -c64 -d"${secs}s" --latency "$url" 2>&1)
  c1=$(cpu_ticks "$pid"); t1=$(date +%s.%N)
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}'); p99=$(echo "$out" | awk '/ 99%/ {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}'); non2xx=${non2xx:-0}
  util=$(echo "($c1-$c0)/$tick/($t1-$t0)" | bc -l)
  printf "%-16s rps=%8.0f p99=%-8s non2xx=%s cores=%4.2f req_per_cpu_s=%8.0f\n" "$name" "$rps" "$p99" "$non2xx" "$util" "$(echo "$rps/$util" | bc -l)"
}
taskset -c 0 wrk -t1 -c64 -d2s "http://127.0.0.1:$nginx/plain/" >/dev/null
for r in $(seq 1 "$rounds"); do
  echo "# round $r"
  run nginx "http://127.0.0.1:$nginx/plain/1k" "$ngx_worker"
  run haproxy "http://127.0.0.1:$haproxy/plain/1k" "$hap"
  for d in "${drivers[@]}"; do run "tollgate-$d" "http://127.0.0.1:${tg_port[$d]}/plain/1k" "${tg_pid[$d]}"; done
done
