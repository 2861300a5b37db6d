//! Memory of this process: resident (procfs, Linux) and live heap bytes (a counting allocator).

use cap::Cap;
use tether_alloc::Mimalloc;

/// Counting over mimalloc, the gateway's own allocator: the pass-through proxy runs in this
/// binary, and its floor is measured on the same allocator as Tether. (`stats_alloc` wraps
/// only the system allocator in a `static` on stable Rust; `cap`'s constructor is `const`.)
#[global_allocator]
static GLOBAL: Cap<Mimalloc> = Cap::new(Mimalloc, usize::MAX);

/// Bytes allocated and not yet freed.
pub fn live_heap_bytes() -> u64 {
    GLOBAL.allocated() as u64
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
