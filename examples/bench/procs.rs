//! The processes the benchmark starts (emulator, operator, kubectl) and what it reads about
//! them from /proc: resident memory and CPU time.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// API key the emulator accepts and the operator sends.
pub const API_KEY: &str = "bench-api-key";

/// A child process, killed if dropped while still running.
pub struct Process {
    pub name: &'static str,
    pub pid: u32,
    pub log: PathBuf,
    /// Wall clock at spawn, to compare with the emulator's `received_at_unix_nanos`.
    pub started_unix_nanos: u128,
    pub started: Instant,
    child: Child,
}

impl Process {
    fn spawn(name: &'static str, mut command: Command, log: PathBuf) -> anyhow::Result<Self> {
        command.kill_on_drop(true).stdin(Stdio::null());
        let started_unix_nanos = unix_nanos();
        let started = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let pid = child.id().context("the child has no pid")?;
        Ok(Self {
            name,
            pid,
            log,
            started_unix_nanos,
            started,
            child,
        })
    }

    /// Fails if the process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); its log: {}",
                self.name,
                self.log.display()
            );
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL after 30 s; returns the exit code (None when killed).
    pub async fn stop(&mut self) -> Option<i32> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status.code();
        }
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => {
                let _ = self.child.kill().await;
                None
            }
        }
    }

    /// Resident memory now and at its peak (VmRSS, VmHWM).
    pub fn memory(&self) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .with_context(|| format!("cannot read /proc/{}/status", self.pid))?;
        let field = |name: &str| -> anyhow::Result<f64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("no {name} in /proc/{}/status", self.pid))?;
            let kib: f64 = line
                .trim_start_matches(name)
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .with_context(|| format!("cannot read {line:?}"))?;
            Ok(kib / 1024.0)
        };
        Ok(Memory {
            rss_mib: field("VmRSS:")?,
            peak_rss_mib: field("VmHWM:")?,
        })
    }
}

/// Resident memory of a process, MiB.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Memory {
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
}

/// The emulator, started and listening.
pub struct Emulator {
    pub process: Process,
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
}

/// Starts `ivy-emulator` on a free loopback port. Its per-request log lines are turned off
/// (RUST_LOG=warn): on two cores they would cost the emulator more than the requests.
pub async fn start_emulator(program: &Path, logs: &Path) -> anyhow::Result<Emulator> {
    let log = logs.join("emulator.log");
    let mut command = Command::new(program);
    command
        .args(["--listen", "127.0.0.1:0", "--api-key", API_KEY])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file(&log)?));
    let mut process = Process::spawn("ivy-emulator", command, log.clone())?;
    let stdout = process
        .child
        .stdout
        .take()
        .context("no stdout of the emulator")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("the emulator did not say where it listens within 30 s")??
        .with_context(|| format!("the emulator exited; its log: {}", log.display()))?;
    let base_url = first
        .strip_prefix("listening on ")
        .with_context(|| format!("unexpected first line of the emulator: {first:?}"))?
        .trim_end_matches('/')
        .to_owned();
    // Whatever else it prints goes to the log, so that the pipe never fills up.
    let mut sink = tokio::fs::File::from_std(log_file(&log)?);
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = sink.write_all(format!("{line}\n").as_bytes()).await;
        }
    });
    Ok(Emulator { process, base_url })
}

/// The operator, started; `metrics_addr` is where /readyz answers.
pub struct Operator {
    pub process: Process,
    pub metrics_addr: String,
}

impl Operator {
    /// The operator's count of finished reconciles (`ivywh_reconciles_total`, every result).
    pub async fn reconciles(&self) -> anyhow::Result<u64> {
        let url = format!("http://{}/metrics", self.metrics_addr);
        let text = reqwest::Client::builder()
            .no_proxy()
            .build()?
            .get(&url)
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with("ivywh_reconciles_total"))
            .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
            .sum::<f64>() as u64)
    }
}

/// Starts `ivy-webhook-operator run` against the emulator, watching one namespace, with the
/// operator's defaults for everything the benchmark does not need to set.
pub async fn start_operator(
    program: &Path,
    logs: &Path,
    ivy_base_url: &str,
    namespace: &str,
    concurrency: u16,
) -> anyhow::Result<Operator> {
    let log = logs.join("operator.log");
    let key_file = logs.join("api-key");
    std::fs::write(&key_file, API_KEY)?;
    let mut command = Command::new(program);
    command
        .arg("run")
        .args(["--ivy-base-url", ivy_base_url])
        .arg("--ivy-api-key-file")
        .arg(&key_file)
        .args(["--ivy-dialect", "rest"])
        .args(["--watch-namespace", namespace])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--log-format", "json"])
        .stdout(Stdio::from(log_file(&log)?))
        .stderr(Stdio::from(log_file(&log)?));
    let mut process = Process::spawn("ivy-webhook-operator", command, log.clone())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        process.ensure_running()?;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(addr) = text.lines().find_map(listening_addr) {
            return Ok(Operator {
                process,
                metrics_addr: addr,
            });
        }
        if Instant::now() > deadline {
            bail!(
                "the operator did not start its metrics server within 60 s; its log: {}",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The `addr` of the operator's "metrics and health server listening" JSON log line.
fn listening_addr(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    if value["message"] != "metrics and health server listening" {
        return None;
    }
    value["addr"].as_str().map(str::to_owned)
}

/// Counts of the operator's log lines by level (WARN, ERROR, ...).
pub fn log_levels(log: &Path) -> std::collections::BTreeMap<String, u64> {
    let mut counts = std::collections::BTreeMap::new();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    for line in text.lines() {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(line)
            && let Some(level) = value["level"].as_str()
        {
            *counts.entry(level.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

/// Runs kubectl (from PATH); fails with its output when it fails.
pub async fn kubectl(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("kubectl")
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .context("cannot run kubectl (it is on PATH inside hack/with-control-plane.sh)")?;
    if !output.status.success() {
        bail!(
            "kubectl {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn log_file(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Wall clock now, Unix nanoseconds (the emulator's mutation log uses the same clock).
pub fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// User + system CPU seconds process `pid` used so far.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest)
        .context("unexpected /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("short /proc/PID/stat")?
            .parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / clock_ticks_per_second())
}

/// `getconf CLK_TCK` (the unit of /proc CPU times), 100 when it cannot be asked.
pub fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}
