#!/usr/bin/env bash
# HTTPS keep-alive against nginx: both terminate TLS with the same ECDSA P-256 certificate
# (generated here with openssl) and proxy 1 KiB responses from the nginx origin; each pinned to
# CPU 1, the origin and wrk (-t1 -c64, https, keep-alive) on CPU 0; interleaved rounds,
# requests per CPU-second (utime+stime from /proc) of each, the medians and the median of the
# per-round ratios tollgate / nginx. TLS version and cipher are whatever both negotiate with
# wrk's OpenSSL (TLS 1.3, AES-128-GCM or AES-256-GCM; printed).
#   bench/peers/tls-compare.sh [ROUNDS] [SECONDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rounds=${1:-9}; secs=${2:-5}
require_tools "apt-get install -y nginx-light wrk openssl" nginx wrk openssl
require_built "$bin"
dir=$(mktemp -d /tmp/tollgate-tls.XXXXXX)
on_exit "rm -rf $dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" -subj /CN=bench.example.com \
  -addext subjectAltName=DNS:bench.example.com 2> /dev/null
read -r origin nginx port < <(free_ports 3)
render origin.conf.in "$dir" "$origin" > "$dir/origin.conf"
render nginx-tls.conf.in "$dir" "$origin" "$nginx" > "$dir/nginx-tls.conf"
{
  printf '[[certificates]]\nid = "bench"\ncert = "%s/cert.pem"\nkey = "%s/key.pem"\n\n' "$dir" "$dir"
  tollgate_toml "$port" "$origin" |
    sed -e 's#^name = "bench"$#name = "bench"\ntls = { certificates = ["bench"], default_certificate = "bench" }#'
} > "$dir/tollgate.toml"
start_nginx 0 "$dir/origin.conf"
start_nginx 1 "$dir/nginx-tls.conf"
start_tollgate "$dir/tollgate.log" 1 "$dir/tollgate.toml"; pid=$started
wait_ready "$dir/tollgate.log"
ngx=$(pgrep -P "$(cat "$dir/nginx-tls.pid")" | head -1)
echo "negotiated: nginx $(echo | openssl s_client -connect "127.0.0.1:$nginx" 2> /dev/null | grep -E '^(New|Cipher is)' | head -1)"
echo "negotiated: tollgate $(echo | openssl s_client -connect "127.0.0.1:$port" -servername bench.example.com 2> /dev/null | grep -E '^(New|Cipher is)' | head -1)"
for _ in $(seq 1 "$rounds"); do
  wrk_per_cpu nginx "$ngx" "https://127.0.0.1:$nginx/plain/1k" "$secs"
  wrk_per_cpu tollgate "$pid" "https://127.0.0.1:$port/plain/1k" "$secs"
done | tee "$dir/results"
paired_medians "$dir/results" nginx tollgate
