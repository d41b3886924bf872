//! CPU time and peak memory of a function process, from `/proc` (Linux only).

use std::time::Duration;

/// What one process used up to the moment it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub user: Duration,
    pub system: Duration,
    /// `VmHWM`: the peak resident set size, in KiB.
    pub peak_rss_kb: Option<u64>,
}

/// The kernel reports `/proc/<pid>/stat` times in USER_HZ ticks, which is 100 on every
/// architecture Lambda runs (x86_64, arm64). `sysconf(_SC_CLK_TCK)` would say so too, but
/// needs `unsafe` FFI, which this workspace forbids.
const USER_HZ: u64 = 100;

/// Reads the usage of a live (not yet reaped) process; `None` when it cannot be read.
#[cfg(target_os = "linux")]
pub fn read(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (user, system) = parse_stat(&stat)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok();
    Some(Usage {
        user,
        system,
        peak_rss_kb: status.as_deref().and_then(parse_peak_rss),
    })
}

/// Reads the usage of a live process; nothing to read outside Linux.
#[cfg(not(target_os = "linux"))]
pub fn read(_pid: u32) -> Option<Usage> {
    None
}

/// User and system CPU time from `/proc/<pid>/stat` (fields 14 and 15). The command name
/// (field 2) may hold spaces and parentheses, so fields are counted from its closing one.
pub fn parse_stat(stat: &str) -> Option<(Duration, Duration)> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name, field 3 (state) comes first: field n is at index n - 3.
    let ticks = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
    let to_duration = |ticks: u64| Duration::from_millis(ticks * 1000 / USER_HZ);
    Some((to_duration(ticks(14)?), to_duration(ticks(15)?)))
}

/// `VmHWM` from `/proc/<pid>/status`, in KiB.
pub fn parse_peak_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_are_counted_after_the_command_name() {
        let stat = "4242 (boot strap) (x)) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    37 12 0 0 20 0 3 0 123456 12345678 2048 18446744073709551615";
        assert_eq!(
            parse_stat(stat),
            Some((Duration::from_millis(370), Duration::from_millis(120)))
        );
        assert_eq!(parse_stat("4242 (short) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn peak_rss_is_vm_hwm() {
        let status =
            "Name:\tbootstrap\nVmPeak:\t  20000 kB\nVmHWM:\t    8123 kB\nVmRSS:\t 8000 kB\n";
        assert_eq!(parse_peak_rss(status), Some(8123));
        assert_eq!(parse_peak_rss("Name:\tzombie\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let usage = read(std::process::id()).expect("/proc of this process");
        assert!(usage.peak_rss_kb.is_some_and(|kb| kb > 0), "{usage:?}");
    }
}
