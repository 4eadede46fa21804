#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, when missing (needs root or
# sudo): clang and libbpf-dev build the XDP pre-filter (ebpf/build.rs; without them the crate
# builds without its program and the gateway runs the userspace fallback); iproute2 (`ip`) and
# python3 make the network namespace and its client in tests/tests/prefilter_netns.rs; curl and
# openssl are the real TLS clients of tests/tests/tls_cli_clients.rs.
set -euo pipefail
packages=(clang libbpf-dev iproute2 python3 curl openssl)
need=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need[@]}"
fi
