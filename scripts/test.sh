#!/usr/bin/env bash
# The whole test suite, as CI runs it. Installs what the tests need when it is missing
# (Debian packages; needs root or sudo), builds the gateway binary the end-to-end tests drive,
# then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh

# As root the eBPF program tests (ebpf/tests/) can load and run the XDP program: make them
# fail instead of skipping if they cannot.
if [ "$(id -u)" -eq 0 ]; then export TOLLGATE_REQUIRE_BPF=1; fi

cargo build --workspace --bins
# The fuzz targets live outside the workspace (cargo-fuzz builds them with nightly): build them
# here with the stable toolchain too, so a move or an interface change cannot break them
# silently.
(cd backends/fuzz && cargo build --target-dir ../../target/fuzz)
# The layering of the gateway and the integrations stays free of import circles
# (docs/architecture.md).
scripts/import-cycles.py proxy/src
scripts/import-cycles.py backends/src
cargo test --workspace
