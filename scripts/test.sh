#!/usr/bin/env bash
# The whole test suite, as CI runs it. Installs what the tests need when it is missing
# (Debian packages; needs root or sudo), builds the gateway binary the end-to-end tests drive,
# then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need, installed when missing. None yet: the end-to-end tests use
# in-process upstreams and clients. (The kernel pre-filter will add clang and libbpf-dev.)
packages=()
need=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need[@]}"
fi

cargo build --workspace --bins
cargo test --workspace
