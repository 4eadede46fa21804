#!/usr/bin/env bash
# Plain 1 KiB keep-alive proxying: tollgate vs nginx vs HAProxy, interleaved rounds, requests
# per CPU-second of each proxy (utime+stime from /proc), following the benchmarking method:
# proxies pinned to CPU 1, wrk and the origin on CPU 0.
#   bench/peers/compare-plain.sh [ROUNDS] [SECONDS] [DRIVER...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rounds=${1:-5}; secs=${2:-8}; shift 2 || true
drivers=("$@"); [ ${#drivers[@]} -gt 0 ] || drivers=(uring epoll)
for tool in nginx haproxy wrk; do
  command -v $tool >/dev/null || { echo "missing $tool: apt-get install -y nginx-light haproxy wrk"; exit 1; }
done
bin=${TOLLGATE_BIN:-$root/target/release/tollgate}
[ -x "$bin" ] || { echo "build first: cargo build --release -p tollgate"; exit 1; }
dir=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
for f in origin.conf nginx-proxy.conf haproxy.cfg; do sed -e "s#@DIR@#$dir#g" -e "s#@ORIGIN_PORT@#9000#g" -e "s#@NGINX_PORT@#8080#g" -e "s#@HAPROXY_PORT@#8081#g" "$here/$f.in" > "$dir/$f"; done
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  nginx -c "$dir/origin.conf" -p "$dir" -s stop 2>/dev/null || true
  nginx -c "$dir/nginx-proxy.conf" -p "$dir" -s stop 2>/dev/null || true
  [ -f "$dir/haproxy.pid" ] && kill "$(cat "$dir/haproxy.pid")" 2>/dev/null || true; }
trap cleanup EXIT
taskset -c 0 nginx -c "$dir/origin.conf" -p "$dir"
taskset -c 1 nginx -c "$dir/nginx-proxy.conf" -p "$dir"
taskset -c 1 haproxy -D -f "$dir/haproxy.cfg"
declare -A tg_pid
port=8090
for d in "${drivers[@]}"; do
  sed "s#127.0.0.1:8090#127.0.0.1:$port#" "$here/tollgate.toml" > "$dir/tollgate-$d.toml"
  taskset -c 1 "$bin" run -c "$dir/tollgate-$d.toml" --driver "$d" 2> "$dir/tollgate-$d.log" &
  tg_pid[$d]=$!; pids+=($!); port=$((port+1))
done
for _ in $(seq 1 100); do
  ok=1; for d in "${drivers[@]}"; do grep -q ready "$dir/tollgate-$d.log" || ok=0; done
  [ $ok -eq 1 ] && break; sleep 0.1
done
ngx_worker=$(pgrep -P "$(cat "$dir/nginx-proxy.pid")" | head -1)
hap=$(cat "$dir/haproxy.pid")
for p in $ngx_worker $hap "${tg_pid[@]}"; do
  mask=$(taskset -p "$p" | awk '{print $NF}'); [ "$mask" = "2" ] || { echo "pinning failed for $p (mask $mask)"; exit 1; }
done
tick=$(getconf CLK_TCK)
cpu() { local s=0; for p in $1; do for t in /proc/$p/task/*/stat; do read -r -a f < "$t"; s=$((s+f[13]+f[14])); done; done; echo $s; }
run() { local name=$1 url=$2 pids=$3
  local c0 t0 out c1 t1 rps util
  c0=$(cpu "$pids"); t0=$(date +%s.%N)
  out=$(taskset -c 0 wrk -t1 -c64 -d"${secs}s" --latency "$url" 2>&1)
  c1=$(cpu "$pids"); t1=$(date +%s.%N)
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}'); p99=$(echo "$out" | awk '/ 99%/ {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}'); non2xx=${non2xx:-0}
  util=$(echo "($c1-$c0)/$tick/($t1-$t0)" | bc -l)
  printf "%-16s rps=%8.0f p99=%-8s non2xx=%s cores=%4.2f req_per_cpu_s=%8.0f\n" "$name" "$rps" "$p99" "$non2xx" "$util" "$(echo "$rps/$util" | bc -l)"
}
taskset -c 0 wrk -t1 -c64 -d2s http://127.0.0.1:8080/plain/ >/dev/null
for r in $(seq 1 "$rounds"); do
  echo "# round $r"
  run nginx http://127.0.0.1:8080/plain/1k "$ngx_worker"
  run haproxy http://127.0.0.1:8081/plain/1k "$hap"
  port=8090
  for d in "${drivers[@]}"; do run "tollgate-$d" "http://127.0.0.1:$port/plain/1k" "${tg_pid[$d]}"; port=$((port+1)); done
done
