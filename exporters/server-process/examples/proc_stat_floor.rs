//! Benchmark floor (bench/process): a bare loop that reads and parses every
//! `/proc/<pid>/stat` once per iteration and nothing else. Prints the CPU it used per
//! iteration, so the exporter's per-scrape CPU can be compared with the least possible.
//!
//! Usage: proc_stat_floor [ITERATIONS]

use std::path::Path;
use std::time::Duration;

use seattle_host::proc_scan::{ProcScanner, clock_ticks_per_second, parse_stat};

fn own_cpu_ticks() -> u64 {
    let text = std::fs::read("/proc/self/stat").unwrap_or_default();
    parse_stat(&text).map_or(0, |s| s.utime + s.stime)
}

fn main() -> anyhow::Result<()> {
    let iterations: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200)
        .max(1);
    let mut scanner = ProcScanner::new(Path::new("/proc"))?;
    let mut processes = 0u64;
    let before = own_cpu_ticks();
    let started = std::time::Instant::now();
    for _ in 0..iterations {
        processes = 0;
        scanner.for_each(|_, _| processes += 1)?;
    }
    let wall: Duration = started.elapsed();
    let cpu = (own_cpu_ticks() - before) as f64 / clock_ticks_per_second() as f64;
    println!(
        "{{\"iterations\": {iterations}, \"processes\": {processes}, \"cpu_seconds_per_iteration\": {:.9}, \"wall_seconds_per_iteration\": {:.9}}}",
        cpu / iterations as f64,
        wall.as_secs_f64() / iterations as f64
    );
    Ok(())
}
