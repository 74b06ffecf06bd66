#!/usr/bin/env bash
# The benchmark, as `make bench` runs it: bench/run.sh [--sets small --repeat 1 ...]
set -euo pipefail
cd "$(dirname "$0")/.."
make bench BENCH_ARGS="$*"
