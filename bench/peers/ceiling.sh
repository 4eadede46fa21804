#!/usr/bin/env bash
# The kernel's floor under any proxy: nginx and tollgate (io_uring and epoll) against three byte pumps that relay
# bytes with almost no user-space work (bench/ceiling: epoll, io_uring one-shot, io_uring
# multishot with provided buffers). Interleaved rounds; user and kernel µs per request and
# requests per CPU-second of each (utime+stime from /proc); proxies on CPU 1, wrk and the
# nginx origin on CPU 0; medians at the end. See docs/BENCHMARKS.md §13.
#   bench/peers/ceiling.sh [ROUNDS] [SECONDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rounds=${1:-5}; secs=${2:-5}
require_tools "apt-get install -y nginx-light wrk" nginx wrk
require_built "$bin"
pump=$root/target/ceiling/release/tollgate-ceiling
CARGO_TARGET_DIR=$root/target/ceiling cargo build --quiet --release \
  --manifest-path "$root/bench/ceiling/Cargo.toml"
dir=$(mktemp -d /tmp/tollgate-ceiling.XXXXXX)
read -r origin nginx tollgate tollgate_epoll epoll uring multishot < <(free_ports 7)
for f in origin.conf nginx-proxy.conf; do render "$f.in" "$dir" "$origin" "$nginx" > "$dir/$f"; done
for d in uring epoll; do
  [[ $d == uring ]] && p=$tollgate || p=$tollgate_epoll
  tollgate_toml "$p" "$origin" > "$dir/tollgate-$d.toml"
done
start_nginx 0 "$dir/origin.conf"
start_nginx 1 "$dir/nginx-proxy.conf"
declare -A pid=([nginx]=$(pgrep -P "$(cat "$dir/nginx-proxy.pid")" | head -1))
for d in uring epoll; do
  start_tollgate "$dir/tollgate-$d.log" 1 "$dir/tollgate-$d.toml" --driver "$d"
  pid[tollgate-$d]=$started
  wait_ready "$dir/tollgate-$d.log"
done
declare -A port=([nginx]=$nginx [tollgate-uring]=$tollgate [tollgate-epoll]=$tollgate_epoll
  [epoll]=$epoll [uring]=$uring [uring-multishot]=$multishot)
for mode in epoll uring uring-multishot; do
  taskset -c 1 "$pump" "127.0.0.1:${port[$mode]}" "127.0.0.1:$origin" "$mode" 2> "$dir/$mode.log" &
  pid[$mode]=$!; track "${pid[$mode]}"
done
names=(nginx tollgate-uring tollgate-epoll epoll uring uring-multishot)
for n in "${names[@]}"; do
  mask=$(taskset -p "${pid[$n]}" | awk '{print $NF}')
  [[ $mask == 2 ]] || { echo "pinning failed for $n (mask $mask)" >&2; exit 1; }
done
results=$dir/results
measure() { local name=$1 ua sa ub sb out n
  read -r ua sa < <(cpu_times "${pid[$name]}")
  out=$(taskset -c 0 wrk -t1 -c64 -d"${secs}s" "http://127.0.0.1:${port[$name]}/plain/1k")
  read -r ub sb < <(cpu_times "${pid[$name]}")
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "$out" | grep -q "Non-2xx" && { echo "$name: non-2xx answers" >&2; exit 1; }
  awk -v name="$name" -v n="$n" -v u=$((ub - ua)) -v s=$((sb - sa)) -v t="$tick" -v secs="$secs" 'BEGIN {
    user = u * 1e6 / t / n; kernel = s * 1e6 / t / n; per_cpu = n * t / (u + s)
    printf "%-16s rps=%7.0f user_us=%5.2f kernel_us=%5.2f req_per_cpu_s=%7.0f\n", name, n / secs,
      user, kernel, per_cpu
    printf "%s %f %f %f\n", name, user, kernel, per_cpu >> "/dev/stderr" }' 2>> "$results"
}
taskset -c 0 wrk -t1 -c64 -d1s "http://127.0.0.1:$nginx/plain/1k" > /dev/null
for r in $(seq 1 "$rounds"); do
  echo "# round $r"
  for n in "${names[@]}"; do measure "$n"; done
done
echo "# medians over $rounds rounds (ratio: req/CPU-s over nginx's)"
awk '{ u[$1] = u[$1] " " $2; k[$1] = k[$1] " " $3; v[$1] = v[$1] " " $4 }
  function median(list,   a, n, i, j, x) { n = split(list, a, " ")
    for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  END { base = median(v["nginx"]); n_order = split("nginx tollgate-uring tollgate-epoll epoll uring uring-multishot", order, " ")
    for (i = 1; i <= n_order; i++) { n = order[i]
      printf "%-16s user_us=%5.2f kernel_us=%5.2f req_per_cpu_s=%7.0f ratio=%.2f\n", n,
        median(u[n]), median(k[n]), median(v[n]), median(v[n]) / base } }' "$results"
