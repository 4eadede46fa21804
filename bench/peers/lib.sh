# Helpers shared by the scripts in bench/peers. Source it after `set -euo pipefail`, with
# `here` set to this directory:
#   here=$(cd "$(dirname "$0")" && pwd); . "$here/lib.sh"
# It sets root (the source tree), bin (tollgate: $TOLLGATE_BIN or target/release/tollgate),
# bench (tollgate-bench: $TOLLGATE_BENCH_BIN or target/release/tollgate-bench) and tick
# (clock ticks per second), and an EXIT trap that stops everything the helpers started and
# runs what on_exit registered.
# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154 # `here` comes from the script; bench and tick are for it

root=$(cd "$here/../.." && pwd)
bin=${TOLLGATE_BIN:-$root/target/release/tollgate}
bench=${TOLLGATE_BENCH_BIN:-$root/target/release/tollgate-bench}
tick=$(getconf CLK_TCK)

# require_tools HINT TOOL...: exits 1 naming every TOOL missing from PATH and how to install
# them (HINT).
require_tools() {
  local hint=$1 missing=() t; shift
  for t in "$@"; do command -v "$t" > /dev/null || missing+=("$t"); done
  if ((${#missing[@]})); then
    echo "missing on PATH: ${missing[*]}; install: $hint" >&2
    exit 1
  fi
}

# require_built FILE...: exits 1 unless every FILE (tollgate, tollgate-bench) is executable.
require_built() {
  local b
  for b in "$@"; do
    [[ -x $b ]] || { echo "no $b; build: cargo build --release -p tollgate -p tollgate-bench" >&2; exit 1; }
  done
}

# Cleanup. track PID...: kill these background processes on exit; untrack PID...: not any
# more (they were stopped already). on_exit CMD: run the shell command CMD on exit, after the
# tracked processes are killed (the latest registered first).
lib_pids=()
lib_on_exit=()
track() { lib_pids+=("$@"); }
untrack() {
  local keep=() p u drop
  for p in "${lib_pids[@]}"; do
    drop=0; for u in "$@"; do [[ $p == "$u" ]] && drop=1; done
    ((drop)) || keep+=("$p")
  done
  lib_pids=("${keep[@]}")
}
on_exit() { lib_on_exit+=("$1"); }
lib_cleanup() {
  local i
  if ((${#lib_pids[@]})); then kill "${lib_pids[@]}" 2> /dev/null || true; fi
  for ((i = ${#lib_on_exit[@]} - 1; i >= 0; i--)); do eval "${lib_on_exit[i]}" 2> /dev/null || true; done
  return 0
}
trap lib_cleanup EXIT

# render TEMPLATE DIR [ORIGIN_PORT [NGINX_PORT [HAPROXY_PORT]]]: prints the peers template
# TEMPLATE (e.g. nginx-proxy.conf.in) with @DIR@ and the port placeholders filled (ports 9000,
# 8080, 8081 unless given); fails on a placeholder it does not know.
render() {
  local text
  text=$(sed -e "s#@DIR@#$2#g" -e "s#@ORIGIN_PORT@#${3:-9000}#g" -e "s#@NGINX_PORT@#${4:-8080}#g" \
    -e "s#@HAPROXY_PORT@#${5:-8081}#g" "$here/$1")
  if [[ $text =~ @[A-Z_]+@ ]]; then
    echo "$1: unknown placeholder ${BASH_REMATCH[0]}" >&2
    return 1
  fi
  printf '%s\n' "$text"
}

# tollgate_toml PORT ORIGIN_PORT: prints bench/peers/tollgate.toml listening on PORT and
# proxying to the origin on ORIGIN_PORT (the file's own 8090 and 9000 replaced).
tollgate_toml() {
  sed -e "s#127.0.0.1:8090#127.0.0.1:$1#" -e "s#//127.0.0.1:9000/#//127.0.0.1:$2/#" "$here/tollgate.toml"
}

# free_ports N: prints N different loopback ports that were free a moment ago (all bound at
# once, then released).
free_ports() {
  python3 -c '
import socket, sys
s = [socket.socket() for _ in range(int(sys.argv[1]))]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))' "$1"
}

# start_nginx CPU CONF [PREFIX]: nginx (daemonized) pinned to CPU, with CONF and PREFIX
# (default: CONF's directory); stopped on exit.
start_nginx() {
  local conf=$2 prefix=${3:-$(dirname "$2")}
  taskset -c "$1" nginx -c "$conf" -p "$prefix"
  on_exit "$(printf 'nginx -c %q -p %q -s stop' "$conf" "$prefix")"
}

# start_haproxy CPU CFG PIDFILE: HAProxy (daemonized) pinned to CPU, writing PIDFILE (as CFG
# says); stopped on exit.
start_haproxy() {
  taskset -c "$1" haproxy -D -f "$2"
  # shellcheck disable=SC2016 # $(cat PIDFILE) runs on exit, when the file exists
  on_exit "$(printf '[[ -f %q ]] && kill "$(cat %q)"' "$3" "$3")"
}

# start_tollgate LOG CPU|- CONF ARG...: `tollgate run -c CONF ARG...` in the background, pinned
# to CPU (not pinned: -), stderr to LOG; its PID in `started`, killed on exit.
start_tollgate() {
  local log=$1 cpu=$2 conf=$3; shift 3
  if [[ $cpu == - ]]; then
    "$bin" run -c "$conf" "$@" 2> "$log" &
  else
    taskset -c "$cpu" "$bin" run -c "$conf" "$@" 2> "$log" &
  fi
  started=$!
  track "$started"
}

# wait_log FILE PATTERN [TRIES [SECONDS]]: waits until FILE matches the grep PATTERN, checking
# TRIES times (100) every SECONDS (0.1); status 1 if it never did.
wait_log() {
  local _
  for _ in $(seq 1 "${3:-100}"); do
    grep -q "$2" "$1" 2> /dev/null && return 0
    sleep "${4:-0.1}"
  done
  return 1
}

# wait_ready LOG [PATTERN [TRIES [SECONDS]]]: waits for tollgate's start-up line (PATTERN,
# default `ready`) in LOG, as wait_log; exits 1 showing LOG if it never came.
wait_ready() {
  wait_log "$1" "${2:-ready}" "${3:-100}" "${4:-0.1}" && return 0
  echo "tollgate did not start; its log ($1):" >&2
  cat "$1" >&2 || true
  exit 1
}

# cpu_times PID: prints "UTIME STIME" of PID (all its threads) in clock ticks, from
# /proc/PID/stat (the fields after the command name, which may contain spaces).
cpu_times() {
  local stat f
  stat=$(< "/proc/$1/stat")
  read -r -a f <<< "${stat##*) }"
  echo "${f[11]} ${f[12]}"
}

# cpu_ticks PID: utime + stime of PID in clock ticks.
cpu_ticks() {
  local u s
  read -r u s < <(cpu_times "$1")
  echo $((u + s))
}

# wrk_per_cpu NAME PID URL SECONDS: one `wrk -t1 -c64` run on CPU 0 against URL (http or
# https, keep-alive); prints "NAME REQ_PER_CPU_S" of PID (utime+stime over the run).
wrk_per_cpu() {
  local c0 c1 n
  c0=$(cpu_ticks "$2")
  n=$(taskset -c 0 wrk -t1 -c64 -d"$4s" "$3" | awk '/requests in/ {print $1}')
  c1=$(cpu_ticks "$2")
  echo "$1 $((n * tick / (c1 - c0)))"
}

# paired_medians FILE A B: from "NAME VALUE" lines, each name's median and rounds, and the
# median of the per-round ratios B / A.
paired_medians() {
  python3 - "$1" "$2" "$3" << 'PY'
import statistics, sys
path, a, b = sys.argv[1:4]
runs = {}
for name, value in (line.split() for line in open(path)):
    runs.setdefault(name, []).append(int(value))
for name, values in runs.items():
    print(f"{name:<9} median {statistics.median(values):>8.0f} req/CPU-s  rounds {values}")
ratios = [y / x for x, y in zip(runs[a], runs[b])]
print(f"{b} / {a}  median of paired ratios {statistics.median(ratios):.3f}")
PY
}
