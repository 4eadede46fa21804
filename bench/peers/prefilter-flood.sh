#!/usr/bin/env bash
# What refusing a flood of new connections from deny-listed sources costs, with the XDP
# program and with userspace refusal, and what the flood does to a legitimate client.
#
# A network namespace made here holds the flood sender (10.202.0.2, deny-listed) behind a veth
# pair; the gateway listens on the host end (10.202.0.1) with `[prefilter] deny` for the
# sender and XDP attached to the host end (mode auto) or not (mode userspace). The sender
# opens new connections at a fixed rate (open loop, 100 ms timeout: with XDP its SYNs are
# dropped and the attempts time out; in userspace they are accepted and closed at once).
# XDP runs in softirq, which is not charged to the gateway's utime/stime, so the cost is the
# whole machine's busy CPU from /proc/stat (softirq included) minus the sender's own CPU,
# per refused connection. The legitimate client (on the host, keep-alive GETs to the same
# listener, not through the veth) runs alone and under each flood.
#   sudo bench/peers/prefilter-flood.sh [FLOOD_RATE] [SECONDS] [ROUNDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); . "$here/lib.sh"
rate=${1:-20000}; secs=${2:-10}; rounds=${3:-3}
[[ $(id -u) -eq 0 ]] || { echo "needs root (network namespace, XDP)" >&2; exit 1; }
require_built "$bin" "$bench"
dir=$(mktemp -d /tmp/tollgate-flood.XXXXXX)
ns=tgflood$$; host_if=tgfh$$; peer_if=tgfp$$
on_exit "ip netns del $ns"
on_exit "ip link del $host_if"
ip netns add "$ns"
ip link add "$host_if" type veth peer name "$peer_if"
ip link set "$peer_if" netns "$ns"
ip addr add 10.202.0.1/24 dev "$host_if"; ip link set "$host_if" up
ip netns exec "$ns" ip addr add 10.202.0.2/24 dev "$peer_if"
ip netns exec "$ns" ip link set "$peer_if" up
ip netns exec "$ns" ip link set lo up

admin_port=$(free_ports 1)
start_gateway() { local mode=$1 port=$2
  cat > "$dir/$mode.toml" <<CFG
[server]
workers = 1
[limits]
idle_timeout_ms = 300000
requests_per_connection_max = 0
[admin]
bind = "127.0.0.1:$admin_port"
[prefilter]
mode = "$mode"
interfaces = ["$host_if"]
deny = ["10.202.0.2"]
[[listeners]]
name = "public"
bind = "10.202.0.1:$port"
backlog = 65535
[[apis]]
id = "bench"
[[apis.routes]]
route = "GET /hello"
integration = "hello"
[apis.integrations.hello]
type = "mock"
body = "hello"
CFG
  start_tollgate "$dir/$mode.log" 1 "$dir/$mode.toml"; gw=$started
  wait_ready "$dir/$mode.log" '"ready"\|ready generation' 100 0.05
}
busy_jiffies() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9}' /proc/stat; }
proc_user() { local u s; read -r u s < <(cpu_times "$1"); echo "$u"; }
# The kernel's own accounting of the XDP program (run count and time), on while this runs.
xdp_runs() { curl -s "http://127.0.0.1:$admin_port/prefilter" |
  python3 -c 'import json,sys; r=json.load(sys.stdin).get("xdpRuns") or {}; print(r.get("count",0), r.get("timeNs",0))'; }
refused_count() { local mode=$1
  if [[ $mode == auto ]]; then
    curl -s "http://127.0.0.1:$admin_port/prefilter" | python3 -c 'import json,sys; print(json.load(sys.stdin)["xdpStats"]["dropDeny"])'
  else
    curl -s "http://127.0.0.1:$admin_port/metrics" | awk '/^tollgate_prefilter_refused_total\{reason="deny"\}/ {print $2}'
  fi
}
legit() { taskset -c 0 "$bench" load --url "http://10.202.0.1:$1/hello" -c 64 -t 1 -d "${secs}s" --warmup 0s --json |
  python3 -c 'import json,sys; print(int(json.load(sys.stdin)["rps"]))'; }
flood_start() { ip netns exec "$ns" taskset -c 0 "$bench" load --url "http://10.202.0.1:$1/hello" \
  --new-connection-per-request --rate "$rate" -c 4000 -t 1 -d "$((secs + 2))s" --warmup 0s --timeout 100ms \
  > "$dir/flood.out" 2>&1 & flood=$!; track "$flood"; }

stats_before=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -qw kernel.bpf_stats_enabled=1
on_exit "sysctl -qw kernel.bpf_stats_enabled=$stats_before"
for round in $(seq 1 "$rounds"); do
  for mode in auto userspace; do
    port=$(free_ports 1); start_gateway "$mode" "$port"
    # The pre-filter thread attaches XDP just after start-up: wait for its verdict.
    for _ in $(seq 1 100); do grep -q "XDP attached\|XDP not attached\|pre-filter active" "$dir/$mode.log" && break; sleep 0.05; done
    att=$(grep "XDP attached" "$dir/$mode.log" | grep -o 'mode=[a-z]*' | head -1 | sed 's/mode=/xdp-/' || true)
    [[ -n $att ]] || att=no-xdp
    base=$(legit "$port")
    # The flood alone: what refusing it costs the machine.
    flood_start "$port"
    sleep 1   # the sender ramps up before the window opens
    b0=$(busy_jiffies); f0=$(cpu_ticks "$flood"); u0=$(proc_user "$flood"); r0=$(refused_count "$mode")
    read -r n0 t0 < <(xdp_runs)
    sleep "$((secs - 1))"
    b1=$(busy_jiffies); f1=$(cpu_ticks "$flood"); u1=$(proc_user "$flood"); r1=$(refused_count "$mode")
    read -r n1 t1 < <(xdp_runs)
    xdp_ns=$(python3 -c "print(f'{($t1-$t0)/max($n1-$n0,1):.0f}' if $n1 > $n0 else '-')")
    wait "$flood" || true; untrack "$flood"
    refused=$((r1 - r0)); window=$((secs - 1))
    cost=$(python3 -c "print(f'{(($b1-$b0)-($f1-$f0))/$tick*1e6/max($refused,1):.2f}')")
    # The same with the sender's kernel time counted as cost: on a veth pair the receiving
    # side (XDP included) runs in the sender's softirq context and is charged to it.
    cost_k=$(python3 -c "print(f'{(($b1-$b0)-($u1-$u0))/$tick*1e6/max($refused,1):.2f}')")
    # The legitimate client under the same flood.
    flood_start "$port"
    sleep 1
    under=$(legit "$port")
    wait "$flood" || true; untrack "$flood"
    printf "round %d %-9s %-11s refused=%7d (%5.0f/s) us_per_refused: machine-sender=%6s machine-sender_user=%6s xdp_ns_per_packet=%4s legit_rps alone=%7d under_flood=%7d ratio=%.3f\n" \
      "$round" "$mode" "$att" "$refused" "$(python3 -c "print($refused/$window)")" "$cost" "$cost_k" "$xdp_ns" "$base" "$under" \
      "$(python3 -c "print($under/$base)")"
    kill "$gw" 2> /dev/null; wait "$gw" 2> /dev/null || true; untrack "$gw"
  done
done
echo "configs and logs: $dir"
