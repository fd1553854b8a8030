//! Metrics of the operator process, beside the controller's: `ivywh_build_info`, the
//! `ivywh_leader` gauge, and the standard `process_*` metrics read from `/proc/self` at each
//! scrape (CPU time, resident memory, open file descriptors).

use std::path::{Path, PathBuf};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

/// Clock ticks per second in `/proc/<pid>/stat`: Linux reports CPU times in USER_HZ, which is
/// 100 on every architecture it exports to user space.
const USER_HZ: f64 = 100.0;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

/// The process's own gauges.
#[derive(Debug)]
pub struct ProcessMetrics {
    leader: Gauge,
}

impl ProcessMetrics {
    /// Registers `ivywh_build_info`, `ivywh_leader` (0 until [`ProcessMetrics::set_leader`])
    /// and the `process_*` collector.
    pub fn register(registry: &mut Registry) -> Self {
        let build_info = Family::<VersionLabels, Gauge>::default();
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        let metrics = Self {
            leader: Gauge::default(),
        };
        let prefixed = registry.sub_registry_with_prefix("ivywh");
        prefixed.register(
            "build_info",
            "The operator's version (always 1)",
            build_info,
        );
        prefixed.register(
            "leader",
            "1 on the replica that reconciles (the leader, or the only replica), 0 on a standby",
            metrics.leader.clone(),
        );
        registry.register_collector(Box::new(ProcFs::new("/proc/self")));
        metrics
    }

    /// Whether this replica reconciles.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }
}

/// What `/proc/<pid>` says about a process.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessSample {
    pub cpu_seconds: f64,
    pub resident_bytes: i64,
    pub open_fds: i64,
}

/// Reads a process's figures from its `/proc` directory at each scrape.
#[derive(Debug)]
pub struct ProcFs {
    dir: PathBuf,
}

impl ProcFs {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The current figures; a figure that cannot be read is `None` (not on Linux, or hidden).
    pub fn sample(&self) -> (Option<f64>, Option<i64>, Option<i64>) {
        let cpu = std::fs::read_to_string(self.dir.join("stat"))
            .ok()
            .and_then(|text| cpu_seconds(&text));
        let rss = std::fs::read_to_string(self.dir.join("status"))
            .ok()
            .and_then(|text| resident_bytes(&text));
        let fds = count_entries(&self.dir.join("fd"));
        (cpu, rss, fds)
    }
}

/// User plus system CPU seconds from the text of `/proc/<pid>/stat`.
pub fn cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of the whole line are 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// Resident set size in bytes from the text of `/proc/<pid>/status` (`VmRSS: N kB`).
pub fn resident_bytes(status: &str) -> Option<i64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

fn count_entries(dir: &Path) -> Option<i64> {
    let entries = std::fs::read_dir(dir).ok()?;
    i64::try_from(entries.count()).ok()
}

impl Collector for ProcFs {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (cpu, rss, fds) = self.sample();
        if let Some(cpu) = cpu {
            let counter = ConstCounter::new(cpu);
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                counter.metric_type(),
            )?;
            counter.encode(metric)?;
        }
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                rss,
            ),
            ("process_open_fds", "Number of open file descriptors", fds),
        ] {
            if let Some(value) = value {
                let gauge = ConstGauge::new(value);
                let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
                gauge.encode(metric)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exported(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text
    }

    #[test]
    fn cpu_time_is_user_plus_system_ticks_even_with_spaces_in_the_name() {
        let stat = "4242 (ivy webhook) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 123 456 789";
        assert_eq!(cpu_seconds(stat), Some(3.0));
        assert_eq!(cpu_seconds("garbage"), None);
    }

    #[test]
    fn resident_memory_is_read_from_vmrss_in_kibibytes() {
        let status = "Name:\tivy\nVmPeak:\t  9000 kB\nVmRSS:\t  2048 kB\nThreads:\t9\n";
        assert_eq!(resident_bytes(status), Some(2048 * 1024));
        assert_eq!(resident_bytes("Name:\tivy\n"), None);
    }

    #[test]
    fn build_info_leader_and_process_metrics_are_exported() {
        let mut registry = Registry::default();
        let metrics = ProcessMetrics::register(&mut registry);
        let text = exported(&registry);
        assert!(
            text.contains(&format!(
                "ivywh_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(text.contains("ivywh_leader 0"), "{text}");
        metrics.set_leader(true);
        assert!(exported(&registry).contains("ivywh_leader 1"));
        for series in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
        ] {
            assert!(text.contains(series), "{series} missing:\n{text}");
        }
    }

    #[test]
    fn figures_that_cannot_be_read_are_left_out() {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ProcFs::new("/nonexistent/proc/self")));
        assert!(!exported(&registry).contains("process_"));
    }
}
