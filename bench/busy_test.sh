#!/usr/bin/env bash
# `make test` with every core kept busy by another process for the whole run (issue 18): the suite
# must pass on a machine that is doing other work, as a newcomer's or a CI machine often is.
#   bash bench/busy_test.sh            # one busy process per core (nproc)
#   HOGS=4 bash bench/busy_test.sh     # or as many as asked
# Prints the wall time of the loaded run; the busy processes are stopped however the run ends.
set -uo pipefail
cd "$(dirname "$0")/.."
hogs=()
stop_hogs() { [ ${#hogs[@]} -gt 0 ] && kill "${hogs[@]}" 2>/dev/null; }
trap stop_hogs EXIT
for _ in $(seq "${HOGS:-$(nproc)}"); do
    yes > /dev/null &
    hogs+=($!)
done
echo "busy processes: ${hogs[*]} (load average $(cut -d' ' -f1-3 /proc/loadavg))"
start=$(date +%s)
make test "$@"
code=$?
echo "make test beside ${#hogs[@]} busy processes: exit $code, wall $(( $(date +%s) - start )) s"
exit $code
