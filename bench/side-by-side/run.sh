#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# A side-by-side sitting: PAIRS times, one whole run of the Linux peer (bench/peer-linux,
# TCG, one full VM) then one Damselfly boot running the same benchmarks; the raw logs go to
# OUTDIR and ratios.py prints the table. Needs root (the peer's run.sh) and an idle machine.
#
#   bench/side-by-side/run.sh [PAIRS [OUTDIR]]     (default: 3 pairs, build/side-by-side)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PAIRS=${1:-3}
OUT=${2:-$ROOT/build/side-by-side}
mkdir -p "$OUT"
# Build first (one boot that runs `true`), so that no build runs during the sitting.
python3 "$HERE/guest.py" true >/dev/null
PEER_ENV=(ACCELS=tcg HOST_RUNS=0 ALT_FLAVOR= FULL_RUNS=1 BOOT_RUNS=0)
# The peer downloads Debian's kernel once; later sittings reuse its cache.
[ -d "$ROOT/bench/peer-linux/build/debs" ] && PEER_ENV+=(SKIP_APT=1)
for i in $(seq 1 "$PAIRS"); do
    (cd "$ROOT/bench/peer-linux" && env "${PEER_ENV[@]}" ./run.sh >"$OUT/linux-$i.out" 2>&1 \
        && cp logs/vm-tcg-full-1.log "$OUT/linux-$i.log")
    python3 "$HERE/guest.py" /bin/bench/bench_syscall /bin/bench/bench_ring /bin/bench/bench_ipc \
        /bin/bench/bench_spawn /bin/bench/bench_file >"$OUT/damselfly-$i.log" 2>&1
    echo "side-by-side: pair $i of $PAIRS done"
done
python3 "$HERE/ratios.py" "$OUT"
