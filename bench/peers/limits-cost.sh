#!/usr/bin/env bash
# What limits cost per request: proxy CPU time (user + kernel, /proc/PID/stat) per proxied
# 1 KiB GET, and requests per proxy CPU-second, with API keys + a usage plan, and with
# per-client-address limiting in tollgate, nginx (limit_req) and HAProxy (stick table), both
# never rejecting and rejecting almost everything. Then the accuracy of a plan throttle.
# Proxies on CPU 1 (one worker/thread each); the load generator and the origin on CPU 0.
# CPU per request is printed split into user and kernel time, as cpu-split.sh does.
# Interleaved rounds, same load (tollgate-bench load: 100 connections, 1 thread, no warm-up,
# so the CPU window and the counted window are the same run).
#   a plain     tollgate, no limits
#   b keys      api_key_required, 100 keys (one per connection, --header-list), one plan with
#               a throttle and a quota that never refuse          goal: ≥ 0.90 × a's req/CPU-s
#   c-*         per-client-address limit that never refuses, 50 source addresses (--bind-count)
#   d-*         the same limits refusing almost everything (429/CPU-s)  goal: tollgate ≥ 1.5 × nginx
#   d-floor     no limit at all: a zero-work responder (tollgate-bench origin, 128-byte body, on
#               CPU 1) answering the same load, the floor under any server's answers per CPU-s
#   e accuracy  tollgate --workers 2 (not pinned), plan throttle 2000/s burst 200, open loop
#               8000 req/s with that key: accepted vs 2000 × seconds + 200
# The origin is `tollgate-bench origin` (1 thread, 1 KiB body), not the nginx origin.
#   bench/peers/limits-cost.sh [ROUNDS] [SECONDS] [DRIVER]     (accuracy run: E_SECS, 10)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); . "$here/lib.sh"
rounds=${1:-5}; secs=${2:-10}; driver=${3:-uring}; e_secs=${E_SECS:-10}
require_tools "apt-get install -y nginx-light haproxy util-linux python3" nginx haproxy taskset python3
require_built "$bin" "$bench"
dir=$(mktemp -d /tmp/tollgate-limits.XXXXXX)
# Free ports from the OS, all bound at once so they differ.
read -r po pf tg_plain tg_keys tg_many tg_one tg_acc ng_many ng_one hp_many hp_one < <(free_ports 11)
taskset -c 0 "$bench" origin --listen "127.0.0.1:$po" --threads 1 --body-bytes 1024 > "$dir/origin.out" & track $!
taskset -c 1 "$bench" origin --listen "127.0.0.1:$pf" --threads 1 --body-bytes 128 > "$dir/floor.out" & track $!
floor_pid=$!

# tollgate configs: bench/peers/tollgate.toml on its own port, the origin's port, plus $2 in
# the API's table and $3 at the end.
tg_config() { local port=$1 api=$2 top=$3
  tollgate_toml "$port" "$po" | sed "s/^id = \"bench\"\$/id = \"bench\"\n$api/"
  printf '\n%s\n' "$top"
}
keys=(); key_ids=()
for i in $(seq 0 99); do
  keys+=("$(printf 'bench-key-%020d' "$i")"); key_ids+=("\"k$i\"")
done
printf '%s\n' "${keys[@]}" > "$dir/keys.txt"
key_tables=$(for i in $(seq 0 99); do printf '[[api_keys.keys]]\nid = "k%d"\nvalue = "%s"\n\n' "$i" "${keys[$i]}"; done)
plan_keys=$(IFS=,; echo "${key_ids[*]}")
tg_config "$tg_plain" "" "" > "$dir/plain.toml"
tg_config "$tg_keys" "api_key_required = true" "[state]
dir = \"$dir/state\"

$key_tables
[[usage_plans]]
id = \"bench\"
keys = [$plan_keys]
throttle = { rate_per_s = 1000000, burst = 1000000 }
quota = { limit = 4000000000, period = \"MONTH\" }
[[usage_plans.stages]]
api = \"bench\"" > "$dir/keys.toml"
tg_config "$tg_many" "client_throttle = { rate_per_s = 1000000, burst = 1000000 }" "" > "$dir/client-many.toml"
tg_config "$tg_one" "client_throttle = { rate_per_s = 1, burst = 1 }" "" > "$dir/client-one.toml"
tg_config "$tg_acc" "api_key_required = true" "[[api_keys.keys]]
id = \"acc\"
value = \"${keys[0]}\"
[[usage_plans]]
id = \"acc\"
keys = [\"acc\"]
throttle = { rate_per_s = 2000, burst = 200 }
[[usage_plans.stages]]
api = \"bench\"" > "$dir/accuracy.toml"

# nginx and HAProxy: bench/peers/nginx-proxy.conf.in and haproxy.cfg.in (1 worker / thread,
# keep-alive upstream, no logs), each instance in its own directory, plus the limit. nginx
# logs each refusal at `error` by default, one error-log line per 429; at `info` (below the
# config's `warn`) nothing is written, as tollgate and HAProxy write nothing.
peer_configs() { local name=$1 nport=$2 hport=$3 zone=$4 req=$5 rate=$6
  mkdir -p "$dir/ng-$name" "$dir/hp-$name"
  render nginx-proxy.conf.in "$dir/ng-$name" "$po" "$nport" | sed \
      -e "s#^  server {#  $zone\n  limit_req_status 429;\n  limit_req_log_level info;\n  server {#" \
      -e "s#location /plain/ {#location /plain/ { $req#" \
      -e "s#nginx-proxy.pid#nginx.pid#" > "$dir/ng-$name/nginx.conf"
  render haproxy.cfg.in "$dir/hp-$name" "$po" "" "$hport" | sed \
      -e "s#^  bind .*#&\n  stick-table type ip size 100k expire 30s store http_req_rate(1s)\n  http-request track-sc0 src\n  http-request deny deny_status 429 if { sc_http_req_rate(0) gt $rate }#" \
      > "$dir/hp-$name/haproxy.cfg"
}
# shellcheck disable=SC2016 # $binary_remote_addr is nginx's, not the shell's
peer_configs many "$ng_many" "$hp_many" \
  'limit_req_zone $binary_remote_addr zone=z:10m rate=1000000r/s;' 'limit_req zone=z burst=1000000 nodelay;' 100000000
# shellcheck disable=SC2016
peer_configs one "$ng_one" "$hp_one" \
  'limit_req_zone $binary_remote_addr zone=z:10m rate=1r/s;' 'limit_req zone=z;' 1

wait_log "$dir/origin.out" listening || { echo "origin did not start" >&2; exit 1; }
wait_log "$dir/floor.out" listening || { echo "zero-work responder did not start" >&2; exit 1; }
declare -A pid=([floor]=$floor_pid)
for v in plain keys client-many client-one; do
  start_tollgate "$dir/$v.log" 1 "$dir/$v.toml" --driver "$driver" --workers 1
  pid[$v]=$started
done
start_tollgate "$dir/accuracy.log" - "$dir/accuracy.toml" --driver "$driver" --workers 2
for v in plain keys client-many client-one accuracy; do
  wait_ready "$dir/$v.log"
done
for n in many one; do
  start_nginx 1 "$dir/ng-$n/nginx.conf"
  start_haproxy 1 "$dir/hp-$n/haproxy.cfg" "$dir/hp-$n/haproxy.pid"
done
for n in many one; do
  for _ in $(seq 1 100); do [[ -s $dir/ng-$n/nginx.pid && -s $dir/hp-$n/haproxy.pid ]] && break; sleep 0.1; done
  master=$(cat "$dir/ng-$n/nginx.pid")
  for _ in $(seq 1 100); do p=$(pgrep -P "$master" | head -1); [[ -n $p ]] && break; sleep 0.1; done
  [[ -n $p && -s $dir/hp-$n/haproxy.pid ]] || { echo "nginx or HAProxy ($n) did not start" >&2; exit 1; }
  pid[nginx-$n]=$p; pid[haproxy-$n]=$(cat "$dir/hp-$n/haproxy.pid")
done
declare -A port=([floor]=$pf [plain]=$tg_plain [keys]=$tg_keys [client-many]=$tg_many [client-one]=$tg_one
  [nginx-many]=$ng_many [nginx-one]=$ng_one [haproxy-many]=$hp_many [haproxy-one]=$hp_one)

# Formatting and aggregation of load's JSON: `line TICK` (one "NAME USER SYS JSON" line),
# `summary TICK` (all of them: medians over rounds, ratios), `accuracy RATE BURST SECS` (JSON).
py=$(cat << 'PY'
import json, math, statistics, sys
mode, args = sys.argv[1], sys.argv[2:]
def row(line, tick):
    name, user, sys_, js = line.split(" ", 3)
    r = json.loads(js); n = r["requests"]; st = r.get("status", {})
    cpu = (int(user) + int(sys_)) / tick
    per = lambda x: x / cpu if cpu else math.nan
    us = lambda t: int(t) / tick * 1e6 / n if n else math.nan
    errs = {k: v for k, v in r["errors"].items() if v and not k.startswith("status")}
    return name, dict(rps=r["rps"], us=us(user) + us(sys_), user=us(user), sys=us(sys_), rcs=per(n),
                      r429=per(st.get("429", 0)), status=st, errors=errs)
def fmt(name, f):
    st = " ".join(f"{k}:{v}" for k, v in sorted(f["status"].items()))
    er = " errors=" + ",".join(f"{k}:{v}" for k, v in f["errors"].items()) if f["errors"] else ""
    return (f"{name:<11} rps={f['rps']:6.0f} cpu_us_per_req={f['us']:5.2f} "
            f"(user {f['user']:5.2f} sys {f['sys']:5.2f}) "
            f"req_per_cpu_s={f['rcs']:8.0f} 429_per_cpu_s={f['r429']:8.0f} status {st}{er}")
if mode == "line":
    print(fmt(*row(sys.stdin.readline(), int(args[0]))))
elif mode == "summary":
    groups = {}
    for line in sys.stdin:
        name, f = row(line, int(args[0])); groups.setdefault(name, []).append(f)
    print("medians over rounds (status and errors summed):")
    med = {}
    for name, fs in groups.items():
        m = {k: statistics.median(f[k] for f in fs) for k in ("rps", "us", "user", "sys", "rcs", "r429")}
        m["status"], m["errors"] = {}, {}
        for f in fs:
            for key in ("status", "errors"):
                for k, v in f[key].items(): m[key][k] = m[key].get(k, 0) + v
        med[name] = m; print(fmt(name, m))
    ratio = lambda a, b, k: med[a][k] / med[b][k] if med[b][k] else math.nan
    print(f"b-keys / a-plain req/CPU-s          = {ratio('b-keys', 'a-plain', 'rcs'):.3f}  (goal >= 0.90)")
    for peer in ("nginx", "haproxy"):
        print(f"c-tollgate / c-{peer:<7} req/CPU-s     = {ratio('c-tollgate', 'c-' + peer, 'rcs'):.3f}")
    for peer in ("nginx", "haproxy"):
        print(f"d-tollgate / d-{peer:<7} 429/CPU-s     = {ratio('d-tollgate', 'd-' + peer, 'r429'):.3f}"
              + ("  (goal >= 1.5)" if peer == "nginx" else ""))
    print(f"d-floor answers / d-nginx 429s per CPU-s = {med['d-floor']['rcs'] / med['d-nginx']['r429']:.3f}"
          "  (a zero-work responder: the most any server reaches)")
elif mode == "accuracy":
    rate, burst, secs = float(args[0]), float(args[1]), float(args[2])
    r = json.loads(sys.stdin.read()); st = r.get("status", {})
    ok = sum(v for k, v in st.items() if k.startswith("2")); ideal = rate * secs + burst
    print(f"sent {r['requests']} responses in {r['duration_s']}s (target {r.get('target_rps')}/s), "
          f"status {' '.join(f'{k}:{v}' for k, v in sorted(st.items()))}, errors {r['errors']}")
    print(f"accepted (2xx) {ok}, ideal {rate:.0f} x {secs:g} + {burst:.0f} = {ideal:.0f}, "
          f"relative error {(ok - ideal) / ideal * 100:+.2f} %")
PY
)
# One run: proxy CPU ticks around a load run; appends "NAME USER SYS JSON" and prints the line.
measure() { local name=$1 proc=$2; shift 2; local ua sa ub sb out
  read -r ua sa < <(cpu_times "${pid[$proc]}")
  out=$(taskset -c 0 "$bench" load --url "http://127.0.0.1:${port[$proc]}/plain/1k" \
    -c 100 -t 1 -d "${secs}s" --warmup 0s --json "$@")
  read -r ub sb < <(cpu_times "${pid[$proc]}")
  echo "$name $((ub - ua)) $((sb - sa)) $out" >> "$dir/results"
  tail -1 "$dir/results" | python3 -c "$py" line "$tick"
}
bind=(--bind-count 50)
for r in $(seq 1 "$rounds"); do
  echo "round $r/$rounds"
  measure a-plain plain
  measure b-keys keys --header-list "x-api-key:$dir/keys.txt"
  measure c-tollgate client-many "${bind[@]}"
  measure c-nginx nginx-many "${bind[@]}"
  measure c-haproxy haproxy-many "${bind[@]}"
  measure d-tollgate client-one "${bind[@]}"
  measure d-nginx nginx-one "${bind[@]}"
  measure d-haproxy haproxy-one "${bind[@]}"
  measure d-floor floor "${bind[@]}"
done
python3 -c "$py" summary "$tick" < "$dir/results"

# e: a fresh bucket (no request has used the key), no warm-up: the counted window is the whole
# run, from the first request on, so the burst is inside it.
echo "e accuracy: tollgate --workers 2, plan throttle 2000/s burst 200, open loop 8000 req/s, ${e_secs}s"
out=$("$bench" load --url "http://127.0.0.1:$tg_acc/plain/1k" -H "x-api-key: ${keys[0]}" \
  -c 16 -t 1 --rate 8000 -d "${e_secs}s" --warmup 0s --json)
echo "$out" | python3 -c "$py" accuracy 2000 200 "$e_secs"
echo "configs and logs: $dir"
for v in plain keys client-many client-one accuracy; do
  if grep -qiE 'error|panic|warn' "$dir/$v.log"; then echo "tollgate $v log:"; grep -iE 'error|panic|warn' "$dir/$v.log" | head -20; fi
done
