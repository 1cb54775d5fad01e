//! The process's own metrics, named as every Prometheus client library names them
//! (`process_*`, without eventer's prefix), read from Linux's `/proc` on each scrape.
//! Elsewhere there are none.

use std::fmt;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
};

/// Clock ticks per second of `/proc/<pid>/stat`: the kernel's USER_HZ, 100 on every
/// architecture Kubernetes runs on (Prometheus's Go client assumes the same).
const USER_HZ: f64 = 100.0;

/// Exposes `process_*` from `/proc/self`.
#[derive(Debug)]
pub(super) struct ProcessCollector;

/// One reading of the process.
#[derive(Debug, PartialEq)]
struct Process {
    cpu_seconds: f64,
    start_time_seconds: f64,
    virtual_memory_bytes: u64,
    resident_memory_bytes: u64,
    open_fds: u64,
    max_fds: Option<u64>,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        // Not Linux, or /proc not mounted: nothing to report, which is no error to a scrape.
        let Some(p) = read() else { return Ok(()) };
        let metric = ConstCounter::new(p.cpu_seconds);
        metric.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            metric.metric_type(),
        )?)?;
        let gauges = [
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                p.start_time_seconds,
            ),
            ("process_resident_memory_bytes", "Resident memory size in bytes", p.resident_memory_bytes as f64),
            ("process_virtual_memory_bytes", "Virtual memory size in bytes", p.virtual_memory_bytes as f64),
            ("process_open_fds", "Number of open file descriptors", p.open_fds as f64),
        ];
        for (name, help, value) in gauges
            .into_iter()
            .chain(p.max_fds.map(|n| ("process_max_fds", "Maximum number of open file descriptors", n as f64)))
        {
            let metric = ConstGauge::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)?;
        }
        Ok(())
    }
}

fn read() -> Option<Process> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    parse(&stat, &status, &boot, &limits, open_fds)
}

/// The reading from the texts of `/proc/self/stat`, `/proc/self/status`, `/proc/stat` and
/// `/proc/self/limits` (see proc(5)).
fn parse(stat: &str, status: &str, boot: &str, limits: &str, open_fds: u64) -> Option<Process> {
    // The command name may hold spaces and parentheses: the fields start after the last `)`.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    // proc(5) numbers the fields from 1, the pid; `fields[0]` is field 3, the state.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let (utime, stime, starttime, vsize) = (field(14)?, field(15)?, field(22)?, field(23)?);
    let btime: u64 = boot.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()?;
    // The kernel's exact figure in KiB, with no page size to guess.
    let rss_kib: u64 =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()?;
    let max_fds = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok());
    Some(Process {
        cpu_seconds: (utime + stime) as f64 / USER_HZ,
        start_time_seconds: btime as f64 + starttime as f64 / USER_HZ,
        virtual_memory_bytes: vsize,
        resident_memory_bytes: rss_kib * 1024,
        open_fds,
        max_fds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_texts() {
        // A command name with a space and a parenthesis, as a process may choose.
        let stat = "4242 (event er) x) S 1 4242 4242 0 -1 4194560 2183 0 0 0 150 75 0 0 20 0 3 0 12345 \
                    123456789 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        let status = "Name:\teventer\nVmPeak:\t  200000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        let boot = "cpu  1 2 3\nintr 0\nctxt 10\nbtime 1700000000\nprocesses 5\n";
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1048576              1048576              files     \n";
        assert_eq!(
            parse(stat, status, boot, limits, 9),
            Some(Process {
                cpu_seconds: 2.25,
                start_time_seconds: 1_700_000_123.45,
                virtual_memory_bytes: 123_456_789,
                resident_memory_bytes: 12345 * 1024,
                open_fds: 9,
                max_fds: Some(1_048_576),
            })
        );
        assert_eq!(parse("4242 (eventer S 1", status, boot, limits, 9), None, "truncated");
        assert_eq!(parse(stat, "Name:\teventer\n", boot, limits, 9), None, "no VmRSS (a kernel thread)");
    }

    #[test]
    fn reads_this_process() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let p = read().expect("/proc on Linux");
        assert!(p.resident_memory_bytes > 0 && p.open_fds > 0 && p.cpu_seconds >= 0.0);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        assert!(p.start_time_seconds <= now + 1.0 && p.start_time_seconds > now - 86_400.0, "{p:?}");
    }
}
