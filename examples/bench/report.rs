//! The figures of one run, the targets they are held against, the correctness checks,
//! and their two renderings: one markdown table (stdout) and JSON (under `target/bench/`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

use crate::Settings;
use crate::apiserver::Writes;
use crate::cpu::CpuUse;
use crate::emulator::Calls;
use crate::procs::Memory;

/// Everything one run measured.
#[derive(Debug, Default, Serialize)]
pub struct Figures {
    pub run: RunInfo,
    pub machine: Machine,
    pub floor: Floor,
    pub startup: Startup,
    pub create: Create,
    pub idle: Idle,
    pub memory: MemoryFigures,
    pub spec_changes: SpecChanges,
    pub delete: Delete,
    pub operator: OperatorInfo,
    pub targets: Vec<Target>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Default, Serialize)]
pub struct RunInfo {
    pub n: usize,
    pub concurrency: u16,
    pub idle_window_s: f64,
    pub settle_s: f64,
    pub changes: usize,
    pub smoke: bool,
    pub build_profile: String,
    pub operator_binary: String,
    pub started_at: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_gib: f64,
    /// 1-minute load average when the run started and when it ended (the machine is shared).
    pub load_average_start: f64,
    pub load_average_end: f64,
}

impl Machine {
    pub fn detect() -> Self {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        Self {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_gib: round(mem_kib / 1024.0 / 1024.0, 1),
            load_average_start: load_average(),
            load_average_end: 0.0,
        }
    }
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

#[derive(Debug, Default, Serialize)]
pub struct Floor {
    pub seconds: f64,
    pub writes: Writes,
    pub writes_per_subscription: f64,
    pub cpu: CpuUse,
}

#[derive(Debug, Default, Serialize)]
pub struct Startup {
    /// Process start -> /readyz answers 200 (the watches have listed everything).
    pub to_caches_synced_s: f64,
    /// Process start -> the emulator receives the first create (a resource existed before).
    pub to_first_ivy_create_s: f64,
    /// Process start -> that resource is Ready (its status written).
    pub to_first_ready_s: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Create {
    /// Creating the N resources (the benchmark's client, at the operator's concurrency).
    pub apply_s: f64,
    /// First create -> the last of the N is Ready.
    pub all_ready_s: f64,
    pub ratio_to_floor: f64,
    pub writes: Writes,
    pub writes_per_subscription: f64,
    /// Reconciles the operator finished, per subscription.
    pub reconciles_per_subscription: f64,
    pub ivy: Calls,
    pub ivy_calls_per_create: Option<f64>,
    /// The emulator's own time per create, from its mutation log.
    pub emulator_create_ms_p50: f64,
    pub emulator_create_ms_p99: f64,
    pub cpu: CpuUse,
    /// The apiserver's and etcd's CPU seconds for the operator's run over the floor's.
    pub apiserver_cpu_ratio_to_floor: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Idle {
    pub window_s: f64,
    pub writes: Writes,
    pub operator_writes_per_minute: f64,
    pub ivy: Calls,
    pub ivy_calls_per_minute: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct MemoryFigures {
    /// Caches synced and one resource Ready.
    pub start: Memory,
    pub at_n_ready: Memory,
    pub after_idle: Memory,
    pub end: Memory,
}

#[derive(Debug, Default, Serialize)]
pub struct SpecChanges {
    pub count: usize,
    pub seen_at_ivy: usize,
    /// The apiserver accepted the change (PATCH returned) -> the emulator received the update.
    /// The update is done at Ivy `handling` later, so this is also "-> done, minus the
    /// emulator's own time".
    pub to_ivy_ms_p50: f64,
    pub to_ivy_ms_p99: f64,
    pub to_ivy_ms_max: f64,
    pub emulator_update_ms_p50: f64,
    pub emulator_update_ms_p99: f64,
    pub ivy: Calls,
    pub ivy_calls_per_change: Option<f64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Delete {
    /// The delete requests (the benchmark's client, at the operator's concurrency).
    pub requests_s: f64,
    /// First delete request -> the last resource is gone (finalizers removed).
    pub seconds: f64,
    pub ivy: Calls,
    pub ivy_calls_per_delete: Option<f64>,
    pub subscriptions_left_at_ivy: usize,
}

#[derive(Debug, Default, Serialize)]
pub struct OperatorInfo {
    pub log_lines_by_level: BTreeMap<String, u64>,
    pub exit_code: Option<i32>,
}

/// One of the targets.
#[derive(Debug, Serialize)]
pub struct Target {
    pub name: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

/// A correctness check: these, never the durations, decide the exit status.
#[derive(Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

impl Figures {
    pub fn new(settings: &Settings, machine: Machine) -> Self {
        Self {
            run: RunInfo {
                n: settings.n,
                concurrency: settings.concurrency,
                idle_window_s: settings.idle.as_secs_f64(),
                settle_s: settings.settle.as_secs_f64(),
                changes: settings.changes,
                smoke: settings.smoke,
                build_profile: settings.build_profile.clone(),
                operator_binary: settings.operator.display().to_string(),
                started_at: jiff::Timestamp::now().to_string(),
            },
            machine,
            ..Self::default()
        }
    }

    pub fn record_floor(&mut self, elapsed: std::time::Duration, writes: &Writes, cpu: CpuUse) {
        self.floor = Floor {
            seconds: round(elapsed.as_secs_f64(), 2),
            writes: writes.clone(),
            writes_per_subscription: round(writes.total as f64 / self.run.n as f64, 2),
            cpu,
        };
        let expected = self.run.n as u64;
        for key in [
            "webhooksubscriptions POST",
            "secrets APPLY",
            "webhooksubscriptions/status APPLY",
        ] {
            let seen = writes.by_resource_verb.get(key).copied().unwrap_or(0);
            self.check(
                &format!("floor: {key} == N"),
                seen == expected,
                format!("{seen} (N = {expected})"),
            );
        }
    }

    pub fn check(&mut self, name: &str, passed: bool, detail: String) {
        self.checks.push(Check {
            name: name.to_owned(),
            passed,
            detail,
        });
    }

    /// Holds the figures against the targets (for N <= 1000 those of 1,000, above
    /// those of 10,000).
    pub fn evaluate_targets(&mut self) {
        let small = self.run.n <= 1000;
        let (ratio_target, rss_target) = if small { (1.5, 30.0) } else { (2.0, 80.0) };
        let mut targets = Vec::new();
        let mut add = |name: &str, target: String, measured: String, met: bool| {
            targets.push(Target {
                name: name.to_owned(),
                target,
                measured,
                met,
            });
        };
        add(
            "all Ready / floor",
            format!("<= {ratio_target}x"),
            format!("{:.2}x", self.create.ratio_to_floor),
            self.create.ratio_to_floor <= ratio_target,
        );
        add(
            "RSS at N Ready",
            format!("<= {rss_target} MiB"),
            format!("{:.1} MiB", self.memory.at_n_ready.rss_mib),
            self.memory.at_n_ready.rss_mib <= rss_target,
        );
        let per_create = self.create.ivy_calls_per_create.unwrap_or(f64::NAN);
        add(
            "Ivy calls per create",
            "1".into(),
            format!("{per_create:.2}"),
            per_create <= 1.0,
        );
        let per_delete = self.delete.ivy_calls_per_delete.unwrap_or(f64::NAN);
        add(
            "Ivy calls per delete",
            "1".into(),
            format!("{per_delete:.2}"),
            per_delete <= 1.0,
        );
        add(
            "idle: writes by the operator",
            "0".into(),
            self.idle.writes.operator_resources.to_string(),
            self.idle.writes.operator_resources == 0,
        );
        add(
            "idle: Ivy calls",
            "0".into(),
            self.idle.ivy.total.to_string(),
            self.idle.ivy.total == 0,
        );
        add(
            "spec change -> Ivy, p99 (emulator's time excluded)",
            "<= 50 ms".into(),
            format!("{:.1} ms", self.spec_changes.to_ivy_ms_p99),
            self.spec_changes.to_ivy_ms_p99 <= 50.0,
        );
        self.targets = targets;
    }
}

/// The run as one markdown table.
pub fn markdown(f: &Figures) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |what: &str, value: String| rows.push((what.to_owned(), value));
    row(
        "run",
        format!(
            "N = {}, concurrency {}, {} build, {} cores{}",
            f.run.n,
            f.run.concurrency,
            f.run.build_profile,
            f.machine.cores,
            if f.run.smoke { ", smoke run" } else { "" }
        ),
    );
    row(
        "load average (1 min) at start / end",
        format!(
            "{:.2} / {:.2}",
            f.machine.load_average_start, f.machine.load_average_end
        ),
    );
    row(
        "floor: N x (create, Secret, status), no operator",
        format!(
            "{:.2} s ({:.2} writes per subscription)",
            f.floor.seconds, f.floor.writes_per_subscription
        ),
    );
    row(
        "create N at once (client at the same concurrency)",
        format!("{:.2} s", f.create.apply_s),
    );
    row(
        "first create -> all N Ready",
        format!(
            "{:.2} s = **{:.2}x the floor**",
            f.create.all_ready_s, f.create.ratio_to_floor
        ),
    );
    row(
        "apiserver writes per subscription (operator run, all clients)",
        format!(
            "{:.2} ({})",
            f.create.writes_per_subscription,
            breakdown(&f.create.writes.by_resource_verb, f.run.n)
        ),
    );
    row(
        "apiserver reads per subscription (operator run, all clients)",
        breakdown(&f.create.writes.reads_by_resource_verb, f.run.n),
    );
    row(
        "operator reconciles per subscription",
        format!("{:.2}", f.create.reconciles_per_subscription),
    );
    row(
        "Ivy calls per create",
        format!(
            "{} ({}; {} non-2xx)",
            per(f.create.ivy_calls_per_create),
            counts(&f.create.ivy.by_operation),
            f.create.ivy.failed()
        ),
    );
    row(
        "emulator's own time per create, p50 / p99",
        format!(
            "{:.2} / {:.2} ms",
            f.create.emulator_create_ms_p50, f.create.emulator_create_ms_p99
        ),
    );
    let (floor_cpu, create_cpu) = (&f.floor.cpu, &f.create.cpu);
    row(
        "CPU s during the floor: apiserver + etcd / bench / other users of the machine",
        format!(
            "{:.1} / {:.1} / {:.1} (of {:.1} s x {} cores)",
            floor_cpu.apiserver_and_etcd(),
            floor_cpu.role("bench"),
            floor_cpu.others_s,
            floor_cpu.wall_s,
            f.machine.cores
        ),
    );
    row(
        "CPU s during create: apiserver + etcd / operator / emulator / bench / other users",
        format!(
            "{:.1} / {:.1} / {:.1} / {:.1} / {:.1} (of {:.1} s x {} cores)",
            create_cpu.apiserver_and_etcd(),
            create_cpu.role("operator"),
            create_cpu.role("emulator"),
            create_cpu.role("bench"),
            create_cpu.others_s,
            create_cpu.wall_s,
            f.machine.cores
        ),
    );
    row(
        "apiserver + etcd CPU: operator run / floor",
        format!("{:.2}x", f.create.apiserver_cpu_ratio_to_floor),
    );
    row(
        "Ivy calls per delete",
        format!(
            "{} ({}; {} non-2xx)",
            per(f.delete.ivy_calls_per_delete),
            counts(&f.delete.ivy.by_operation),
            f.delete.ivy.failed()
        ),
    );
    row(
        &format!("idle {:.0} s: apiserver writes", f.idle.window_s),
        format!(
            "{} by the operator ({:.1}/min); {} in all ({})",
            f.idle.writes.operator_resources,
            f.idle.operator_writes_per_minute,
            f.idle.writes.total,
            counts(&f.idle.writes.by_resource_verb)
        ),
    );
    row(
        &format!("idle {:.0} s: Ivy calls", f.idle.window_s),
        format!(
            "{} ({:.1}/min)",
            f.idle.ivy.total, f.idle.ivy_calls_per_minute
        ),
    );
    let m = &f.memory;
    row(
        "operator RSS: start / N Ready / after idle / end",
        format!(
            "{:.1} / {:.1} / {:.1} / {:.1} MiB",
            m.start.rss_mib, m.at_n_ready.rss_mib, m.after_idle.rss_mib, m.end.rss_mib
        ),
    );
    row(
        "operator peak RSS (VmHWM): at N Ready / end",
        format!(
            "{:.1} / {:.1} MiB",
            m.at_n_ready.peak_rss_mib, m.end.peak_rss_mib
        ),
    );
    let c = &f.spec_changes;
    row(
        &format!(
            "{} spec changes: accepted -> Ivy receives the update, p50 / p99 / max",
            c.count
        ),
        format!(
            "{:.1} / {:.1} / {:.1} ms",
            c.to_ivy_ms_p50, c.to_ivy_ms_p99, c.to_ivy_ms_max
        ),
    );
    row(
        "emulator's own time per update, p50 / p99",
        format!(
            "{:.2} / {:.2} ms",
            c.emulator_update_ms_p50, c.emulator_update_ms_p99
        ),
    );
    row(
        "Ivy calls per spec change",
        format!(
            "{} ({})",
            per(c.ivy_calls_per_change),
            counts(&c.ivy.by_operation)
        ),
    );
    row(
        "process start -> caches synced / first Ivy create / first Ready",
        format!(
            "{:.2} / {:.2} / {:.2} s",
            f.startup.to_caches_synced_s,
            f.startup.to_first_ivy_create_s,
            f.startup.to_first_ready_s
        ),
    );
    row(
        "delete all (one request each, same concurrency) -> finalizers gone",
        format!(
            "{:.2} s (the requests took {:.2} s)",
            f.delete.seconds, f.delete.requests_s
        ),
    );
    row(
        "operator log lines by level",
        counts(&f.operator.log_lines_by_level),
    );
    for target in &f.targets {
        row(
            &format!("target: {}", target.name),
            format!(
                "{} (target {}): {}",
                target.measured,
                target.target,
                if target.met { "met" } else { "**not met**" }
            ),
        );
    }
    let passed = f.checks.iter().filter(|c| c.passed).count();
    row(
        "correctness checks",
        format!("{passed} of {} passed", f.checks.len()),
    );

    let mut out = String::from("| figure | value |\n| --- | --- |\n");
    for (what, value) in rows {
        let _ = writeln!(out, "| {what} | {value} |");
    }
    out
}

/// Writes the figures as `bench-n<N>.json` (`bench-smoke.json` for the smoke run).
pub fn write_json(dir: &Path, figures: &Figures) -> anyhow::Result<PathBuf> {
    let file = if figures.run.smoke {
        "bench-smoke.json".to_owned()
    } else {
        format!("bench-n{}.json", figures.run.n)
    };
    let path = dir.join(file);
    let text = serde_json::to_string_pretty(figures)?;
    std::fs::write(&path, text + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn per(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"))
}

fn counts<K: std::fmt::Display>(map: &BTreeMap<K, u64>) -> String {
    if map.is_empty() {
        return "none".to_owned();
    }
    map.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes by resource and verb, per subscription.
fn breakdown(map: &BTreeMap<String, u64>, n: usize) -> String {
    map.iter()
        .filter(|(_, v)| **v as f64 / n as f64 >= 0.01)
        .map(|(k, v)| format!("{k} {:.2}", *v as f64 / n as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Nearest-rank percentile of already sorted values (0 for none).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}
