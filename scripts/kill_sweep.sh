#!/usr/bin/env bash
# kill -9 sweep: runs the crash test with many trials (default 100) and prints its figures.
# Each trial serves the TastyTrade simulator in its own process, starts `reconcile run
# --create-missing` placing 40 targets into a fresh SQLite file, SIGKILLs it at a random point
# (every third trial while the broker holds back one placement's answer, so the kill lands
# between journal and link), then runs again at once and checks that the run exits 0, broker and
# store agree order for order, and no order was placed twice.
#
#   scripts/kill_sweep.sh [TRIALS]
set -euo pipefail
cd "$(dirname "$0")/.."
KILL_SWEEP_TRIALS="${1:-100}" cargo test --locked -p reconcile-cli --test it \
  crash::a_run_killed_anywhere -- --nocapture 2>&1 | grep -E "kill sweep|test result|panicked" 
