#!/usr/bin/env bash
# System settings for 250k+ concurrent connections (and connection-churn benchmarks).
# Prints every setting with the reason and the current value; changes nothing unless run
# as root with --apply (sysctl -w, not persisted: copy the lines into /etc/sysctl.d/ for that).
#   bench/peers/tune-system.sh [--apply]
set -euo pipefail
apply=0
[ "${1:-}" = "--apply" ] && apply=1
if [ $apply -eq 1 ] && [ "$(id -u)" -ne 0 ]; then echo "--apply needs root" >&2; exit 1; fi
setting() { # KEY VALUE COMMENT
  local cur; cur=$(sysctl -n "$1" 2>/dev/null | tr -s '\t ' ' ' || echo '?')
  printf '# %s\nsysctl -w %s="%s"   # now: %s\n' "$3" "$1" "$2" "$cur"
  if [ $apply -eq 1 ]; then sysctl -w "$1=$2" >/dev/null || echo "  (failed: $1)" >&2; fi
}
setting fs.nr_open 2097152 "per-process ceiling for RLIMIT_NOFILE: one fd per connection, two for a proxy"
setting fs.file-max 4194304 "system-wide open files: clients + proxy + upstream sides"
setting net.core.somaxconn 65535 "accept backlog cap; listen(backlog) above this is silently cut"
setting net.ipv4.tcp_max_syn_backlog 65535 "half-open connections queued during connect bursts"
setting net.ipv4.ip_local_port_range "1024 65000" "ephemeral ports per source address (~64k; use several 127.0.0.x sources beyond that)"
setting net.ipv4.tcp_tw_reuse 1 "reuse TIME_WAIT ports for new outgoing connections (2 = loopback only, the default)"
setting net.core.netdev_max_backlog 65536 "packets queued per CPU before the stack drops them (loopback bursts)"
cat <<'NOTES'
# Memory, not changed by this script (values are in pages of 4 KiB, min/pressure/max):
#   net.ipv4.tcp_mem   whole-system TCP buffer memory; at 250k sockets with ~8 KiB of buffers in
#                      use each that is ~2 GB: raise the max above that, e.g. "786432 1048576 1572864"
#   net.ipv4.tcp_rmem / tcp_wmem   per-socket min/default/max bytes; idle connections only pin the
#                      minimum, so lowering the default (e.g. "4096 16384 ...") saves memory at scale
#   kernel slab: ~4.2 KB per socket outside any process's PSS (see tollgate-bench hold)
# Open-file limits (per process, not sysctls):
#   shell:    ulimit -n 1048576            (up to fs.nr_open; needs a hard limit that high)
#   systemd:  LimitNOFILE=1048576          in the [Service] section of tollgate.service
#   PAM:      * - nofile 1048576           in /etc/security/limits.d/ for login sessions
NOTES
echo "# current: ulimit -n soft $(ulimit -Sn) hard $(ulimit -Hn)"
[ $apply -eq 1 ] && echo "# applied (not persistent)" || echo "# dry run: nothing changed (run as root with --apply)"
