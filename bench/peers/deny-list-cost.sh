#!/usr/bin/env bash
# What a long deny list costs the userspace pre-filter: the same build twice in one
# interleaved run (bench/peers/ab.sh), A with `[prefilter] mode = "userspace"` and an empty
# deny list, B with the same and 32,768 deny entries (/32s of 198.18.0.0/15, none matching
# the loopback client). Each request and connection is checked against the list, so B / A
# shows whether the lookup cost grows with the list.
#   bench/peers/deny-list-cost.sh ROUNDS SECONDS
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rounds=${1:-9}; secs=${2:-5}
dir=$(mktemp -d /tmp/tollgate-deny.XXXXXX)
on_exit "rm -rf $dir"
printf '\n[prefilter]\nmode = "userspace"\ndeny = []\n' > "$dir/empty.toml"
python3 - "$dir/long.toml" << 'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write('\n[prefilter]\nmode = "userspace"\ndeny = [\n')
    for n in range(32768):
        f.write(f'  "198.{18 + (n >> 16)}.{(n >> 8) & 255}.{n & 255}/32",\n')
    f.write(']\n')
PY
A_EXTRA=$dir/empty.toml B_EXTRA=$dir/long.toml "$here/ab.sh" "$rounds" "$secs" "$bin" "$bin"
