//! Where the machine's CPU went during a phase: the control plane (kube-apiserver, etcd,
//! kube-controller-manager), the operator, the emulator, this benchmark, and everything else.
//! On a shared machine "everything else" says how much the other users took; the control
//! plane's CPU seconds are the work a phase cost the apiserver, whatever the contention.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use crate::procs::cpu_seconds;

/// The processes to account for, by role.
pub struct CpuWatch {
    pids: Vec<(String, u32)>,
}

/// CPU counters at one moment.
pub struct Sample {
    at: Instant,
    machine_busy_s: f64,
    by_role: BTreeMap<String, f64>,
}

/// CPU seconds used over a phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuUse {
    pub wall_s: f64,
    /// Busy CPU seconds of the whole machine (all cores).
    pub machine_busy_s: f64,
    /// By role: kube-apiserver, etcd, kube-controller-manager, operator, emulator, bench.
    pub by_role: BTreeMap<String, f64>,
    /// Busy seconds no process of this run accounts for (other users of the machine).
    pub others_s: f64,
}

impl CpuUse {
    pub fn role(&self, role: &str) -> f64 {
        self.by_role.get(role).copied().unwrap_or(0.0)
    }

    /// kube-apiserver + etcd: the work the phase cost the apiserver.
    pub fn apiserver_and_etcd(&self) -> f64 {
        self.role("kube-apiserver") + self.role("etcd")
    }
}

impl CpuWatch {
    /// The control plane of this run (its processes name `$IVY_CONTROL_PLANE_DIR` in their
    /// command line), this process, and the given children.
    pub fn new(children: &[(&str, u32)]) -> Self {
        let mut pids: Vec<(String, u32)> = control_plane()
            .into_iter()
            .chain(std::iter::once(("bench".to_owned(), std::process::id())))
            .collect();
        pids.extend(
            children
                .iter()
                .map(|(role, pid)| ((*role).to_owned(), *pid)),
        );
        Self { pids }
    }

    pub fn sample(&self) -> Sample {
        let mut by_role = BTreeMap::new();
        for (role, pid) in &self.pids {
            *by_role.entry(role.clone()).or_insert(0.0) += cpu_seconds(*pid).unwrap_or(0.0);
        }
        Sample {
            at: Instant::now(),
            machine_busy_s: machine_busy_seconds(),
            by_role,
        }
    }
}

impl Sample {
    /// What was used between `earlier` and this sample.
    pub fn since(&self, earlier: &Sample) -> CpuUse {
        let by_role: BTreeMap<String, f64> = self
            .by_role
            .iter()
            .map(|(role, now)| {
                let before = earlier.by_role.get(role).copied().unwrap_or(0.0);
                (role.clone(), crate::report::round(now - before, 2))
            })
            .collect();
        let ours: f64 = by_role.values().sum();
        let machine = self.machine_busy_s - earlier.machine_busy_s;
        CpuUse {
            wall_s: crate::report::round((self.at - earlier.at).as_secs_f64(), 2),
            machine_busy_s: crate::report::round(machine, 2),
            others_s: crate::report::round((machine - ours).max(0.0), 2),
            by_role,
        }
    }
}

/// Pids of kube-apiserver, etcd and kube-controller-manager of this run's control plane.
fn control_plane() -> Vec<(String, u32)> {
    let Some(dir) = std::env::var_os("IVY_CONTROL_PLANE_DIR") else {
        return Vec::new();
    };
    let dir = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let Some(program) = args.first().and_then(|p| p.rsplit('/').next()) else {
            continue;
        };
        let role = match program {
            "kube-apiserver" | "etcd" | "kube-controller-manager" => program.to_owned(),
            _ => continue,
        };
        if args.iter().any(|a| a.contains(&dir)) {
            found.push((role, pid));
        }
    }
    found
}

/// Busy CPU seconds of the machine since boot (all cores): /proc/stat's first line minus
/// idle and iowait.
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else {
        return 0.0;
    };
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest times are already in user).
    let total: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    (total - idle) / crate::procs::clock_ticks_per_second()
}
