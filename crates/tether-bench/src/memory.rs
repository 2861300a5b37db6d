//! Memory of this process: resident (procfs, Linux) and live heap bytes (a counting allocator).

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not yet freed.
pub fn live_heap_bytes() -> u64 {
    let stats = GLOBAL.stats();

    (stats.bytes_allocated as u64).saturating_sub(stats.bytes_deallocated as u64)
}

/// (current RSS, peak RSS) in KiB; zeros where procfs is not available.
pub fn rss_kib() -> (u64, u64) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (0, 0);
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
