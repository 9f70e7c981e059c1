#!/usr/bin/env bash
# Benchmark (not a test): seattle_process_exporter vs Debian's prometheus-process-exporter.
# CPU per scrape, latency p50/p99 and RSS, at the machine's own process count and with
# 2,000 extra idle processes, plus a floor that only reads /proc/*/stat. Prints markdown.
# Knobs (environment): N_BASE, N_LOADED (process-exporter scrapes per case), RATIO (ours
# per process-exporter scrape), EXTRA (idle processes), PEER (peer binary).
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -p seattle-process-exporter --bin seattle_process_exporter --example proc_stat_floor
exec python3 bench/process/bench.py \
    "$target/release/seattle_process_exporter" \
    "$target/release/examples/proc_stat_floor"
