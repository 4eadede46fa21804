#!/usr/bin/env bash
# User-space PSS of one tollgate worker process holding N idle keep-alive connections
# (each used once), for N in the arguments; prints KB per connection against the baseline.
# TLS=1: the listener terminates TLS (an ECDSA P-256 certificate made here) and the clients
# hold TLS 1.3 connections.
#   [TLS=1] bench/peers/idle-memory.sh DRIVER N...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); . "$here/lib.sh"
driver=$1; shift
require_built "$bin"
dir=$(mktemp -d /tmp/tollgate-idle.XXXXXX)
cat > "$dir/idle.toml" <<TOML
[server]
workers = 1
[limits]
idle_timeout_ms = 600000
connections_per_worker_max = 19000
[[listeners]]
name = "main"
bind = "127.0.0.1:0"
$(if [[ ${TLS:-} == 1 ]]; then echo 'tls = { certificates = ["idle"], default_certificate = "idle" }'; fi)
[[apis]]
id = "idle"
[[apis.routes]]
route = "GET /"
integration = "ok"
[apis.integrations.ok]
type = "mock"
body = "ok"
TOML
if [[ ${TLS:-} == 1 ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" -subj /CN=idle.example.com \
    -addext subjectAltName=DNS:idle.example.com 2> /dev/null
  printf '[[certificates]]\nid = "idle"\ncert = "%s/cert.pem"\nkey = "%s/key.pem"\n' "$dir" "$dir" >> "$dir/idle.toml"
  export IDLE_TLS=1
fi
start_tollgate "$dir/log" - "$dir/idle.toml" --driver "$driver"; pid=$started
wait_ready "$dir/log"
port=$(grep -o 'addr=127.0.0.1:[0-9]*' "$dir/log" | head -1 | cut -d: -f2)
pss() { awk '/^Pss:/ {print $2}' /proc/$pid/smaps_rollup; }
# warm up the buffer pools with one request
python3 "$here/idle.py" 127.0.0.1 "$port" / 1 0 >/dev/null
base=$(pss)
echo "driver=$driver baseline_pss_kb=$base"
for n in "$@"; do
  fifo="$dir/hold-$n"; mkfifo "$fifo"
  python3 "$here/idle.py" 127.0.0.1 "$port" / "$n" 600 > "$fifo" &
  holder=$!
  read -r line < "$fifo"
  sleep 3   # past the 1 s busy linger: connections are in their idle state
  now=$(pss)
  printf "n=%-6s %s pss_kb=%-8s per_conn_kb=%.3f\n" "$n" "$line" "$now" "$(echo "($now-$base)/$n" | bc -l)"
  kill $holder; wait $holder 2>/dev/null || true
done
