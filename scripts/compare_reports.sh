#!/bin/bash
# Runs two `reconcile` binaries on the shipped snapshots and on every generated pair under DIR
# (folders holding local.json and broker.json, as `gen_files` writes them), diff and plan in
# several forms, and compares output and exit code byte for byte. Exit 1 on any difference.
#
#   scripts/compare_reports.sh BEFORE_BIN AFTER_BIN DIR
set -u
if [ $# -ne 3 ]; then
  echo "usage: $0 BEFORE_BIN AFTER_BIN DIR" >&2
  exit 2
fi
B=$(realpath "$1"); A=$(realpath "$2"); G=$(realpath "$3")
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail=0; n=0
pairs=(
 "examples/data/2025-11-07-tastytrade-local.json examples/data/2025-11-07-tastytrade-broker.json"
 "examples/data/2025-11-06-alpaca-local.json examples/data/2025-11-06-alpaca-broker.json"
 "fuzz/corpus/snapshot_local/tastytrade.json fuzz/corpus/snapshot_broker/tastytrade.json"
 "fuzz/corpus/snapshot_local/alpaca.json fuzz/corpus/snapshot_broker/alpaca.json"
)
for d in "$G"/*/; do
  [ -f "$d/local.json" ] && pairs+=("$d/local.json $d/broker.json")
done
for p in "${pairs[@]}"; do
  set -- $p
  ALLF="--adopt --create-missing --clear-invalid --cancel-orphaned --replace-drifted --backfill --sync-positions"
  for cmd in "diff" "diff --json" "diff --all" "diff --json --grace 3600s" "diff --json --underlying QQQ --underlying SPY" "plan --json" "plan --all" "plan --json $ALLF" "plan --all $ALLF"; do
    n=$((n+1))
    $B $cmd --local $1 --broker $2 > "$out/b" 2>&1; rb=$?
    $A $cmd --local $1 --broker $2 > "$out/a" 2>&1; ra=$?
    if [ $rb != $ra ] || ! cmp -s "$out/b" "$out/a"; then echo "DIFFERS: $cmd $1 $2 ($rb/$ra)"; fail=1; fi
  done
done
echo "$n comparisons, $([ $fail = 0 ] && echo "no difference" || echo "some differ")"
exit $fail
