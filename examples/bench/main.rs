//! `make bench` (and the smoke run of `make test`): measures the operator against the
//! apiserver's own floor on a live control plane, with `ivy-emulator` as Ivy. See
//! `docs/performance.md` for what each figure means.
//!
//! Runs inside `hack/with-control-plane.sh` (KUBECONFIG and kubectl on PATH). Phases, in order:
//! the floor (a plain client doing only the minimal writes), the operator's start-up, N
//! resources created at once until all are Ready, an idle window, spec changes one after
//! another, and deleting everything. Prints one markdown table and writes the same figures as
//! JSON; exits non-zero when a correctness check failed.

mod apiserver;
mod cpu;
mod emulator;
mod floor;
mod measure;
mod procs;
mod report;
mod tracker;
mod workload;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use ivy_webhook_operator::operator::cli::{Cli, Command, parse_duration};

use crate::report::{Check, Figures, Machine};

/// Namespace of the floor's plain client (the operator does not watch it).
const FLOOR_NAMESPACE: &str = "ivy-bench-floor";
/// Namespace the operator watches.
const OPERATOR_NAMESPACE: &str = "ivy-bench-operator";

/// Measures the operator (and the apiserver's floor) on the control plane in KUBECONFIG.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// How many WebhookSubscriptions to create at once (default 1000; 50 with --smoke).
    #[arg(long)]
    n: Option<usize>,

    /// Concurrency of the operator and of the floor's client (default: the operator's own
    /// --concurrency default).
    #[arg(long)]
    concurrency: Option<u16>,

    /// Length of the idle window (default 60s; 3s with --smoke).
    #[arg(long, value_parser = parse_duration)]
    idle: Option<Duration>,

    /// Pause between all Ready and the idle window, so that the window starts after the last
    /// write of the creation burst.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    settle: Duration,

    /// Spec changes made one after another (default 200; 20 with --smoke).
    #[arg(long)]
    changes: Option<usize>,

    /// The operator binary (default: `ivy-webhook-operator` next to this example's directory).
    #[arg(long)]
    operator: Option<PathBuf>,

    /// The emulator binary (default: `ivy-emulator` next to this example's directory).
    #[arg(long)]
    emulator: Option<PathBuf>,

    /// Directory of the CRD manifests to install.
    #[arg(long, default_value = "crds")]
    crds: PathBuf,

    /// Where the JSON (and the logs of the run) go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,

    /// Build profile of the operator, for the report (default: the name of its directory).
    #[arg(long)]
    build_profile: Option<String>,

    /// The correctness-only run of `make test`: small defaults, the figures are printed but
    /// only the checks decide the exit status.
    #[arg(long)]
    smoke: bool,
}

/// The run's settings, defaults resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub n: usize,
    pub concurrency: u16,
    pub idle: Duration,
    pub settle: Duration,
    pub changes: usize,
    pub operator: PathBuf,
    pub emulator: PathBuf,
    pub crds: PathBuf,
    pub out: PathBuf,
    pub build_profile: String,
    pub smoke: bool,
}

impl Settings {
    fn resolve(args: Args) -> anyhow::Result<Self> {
        let bin_dir = sibling_bin_dir()?;
        let operator = args
            .operator
            .unwrap_or_else(|| bin_dir.join("ivy-webhook-operator"));
        let emulator = args
            .emulator
            .unwrap_or_else(|| bin_dir.join("ivy-emulator"));
        for binary in [&operator, &emulator] {
            if !binary.is_file() {
                bail!(
                    "{} is missing: build it first (`cargo build --release --bins`, or `make bench`)",
                    binary.display()
                );
            }
        }
        let build_profile = match args.build_profile {
            Some(profile) => profile,
            None => operator
                .parent()
                .and_then(Path::file_name)
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_else(|| "unknown".to_owned()),
        };
        let concurrency = match args.concurrency {
            Some(concurrency) => concurrency,
            None => operator_default_concurrency()?,
        };
        let (n, idle, changes) = if args.smoke {
            (50, Duration::from_secs(3), 20)
        } else {
            (1000, Duration::from_secs(60), 200)
        };
        let settings = Self {
            n: args.n.unwrap_or(n),
            concurrency,
            idle: args.idle.unwrap_or(idle),
            settle: args.settle,
            changes: args.changes.unwrap_or(changes),
            operator,
            emulator,
            crds: args.crds,
            out: args.out,
            build_profile,
            smoke: args.smoke,
        };
        if settings.n == 0 || settings.concurrency == 0 {
            bail!("--n and --concurrency must be at least 1");
        }
        Ok(settings)
    }
}

/// `target/<profile>/` when this runs as `target/<profile>/examples/bench`.
fn sibling_bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this executable's path")?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("this executable has no grandparent directory")
}

/// The operator's `--concurrency` default, read from the same flag definitions the binary
/// uses (this example links the operator's library), so the floor's client always matches it.
fn operator_default_concurrency() -> anyhow::Result<u16> {
    let cli = Cli::try_parse_from([
        "ivy-webhook-operator",
        "run",
        "--ivy-base-url",
        "http://127.0.0.1:1",
    ])
    .context("cannot read the operator's default flags")?;
    match cli.command {
        Command::Run(args) => Ok(args.concurrency),
        Command::Crd(_) => bail!("the operator's flags did not parse as `run`"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::resolve(Args::parse())?;
    std::fs::create_dir_all(&settings.out)
        .with_context(|| format!("cannot create {}", settings.out.display()))?;
    let client = Client::try_default().await.context(
        "no Kubernetes client: run through hack/bench.sh (or hack/with-control-plane.sh)",
    )?;

    let figures = run(&settings, &client).await?;
    let table = report::markdown(&figures);
    println!("{table}");
    let json_path = report::write_json(&settings.out, &figures)?;
    eprintln!("bench: figures written to {}", json_path.display());

    let failed: Vec<&Check> = figures.checks.iter().filter(|c| !c.passed).collect();
    if !failed.is_empty() {
        for check in &failed {
            eprintln!("bench: check failed: {}: {}", check.name, check.detail);
        }
        bail!("{} correctness check(s) failed", failed.len());
    }
    eprintln!(
        "bench: all {} correctness checks passed",
        figures.checks.len()
    );
    Ok(())
}

fn phase(what: &str) {
    eprintln!(
        "bench [{}]: {what}",
        jiff::Zoned::now().strftime("%H:%M:%S")
    );
}

/// Every phase in order; returns the figures (checks included).
async fn run(settings: &Settings, client: &Client) -> anyhow::Result<Figures> {
    let mut figures = Figures::new(settings, Machine::detect());

    phase("installing the CRDs and the namespaces");
    install_crds(&settings.crds).await?;
    for namespace in [FLOOR_NAMESPACE, OPERATOR_NAMESPACE] {
        create_namespace(client, namespace).await?;
    }
    // Logs of this run only: the error count in the checks is read from them.
    let logs = settings.out.join(if settings.smoke {
        "logs-smoke".to_owned()
    } else {
        format!("logs-n{}", settings.n)
    });
    if logs.exists() {
        std::fs::remove_dir_all(&logs)?;
    }
    std::fs::create_dir_all(&logs)?;
    let mut emulator = procs::start_emulator(&settings.emulator, &logs).await?;
    let ivy = emulator::Admin::new(&emulator.base_url)?;

    phase(&format!(
        "floor: {} x (create, Secret, status) at concurrency {}",
        settings.n, settings.concurrency
    ));
    let cpu = cpu::CpuWatch::new(&[("emulator", emulator.process.pid)]);
    let result = match floor::run(
        client,
        FLOOR_NAMESPACE,
        settings.n,
        settings.concurrency,
        &cpu,
    )
    .await
    {
        Ok((floor, writes, used)) => {
            figures.record_floor(floor, &writes, used);
            measure::run(
                settings,
                client,
                &ivy,
                &emulator.process,
                &logs,
                &mut figures,
            )
            .await
        }
        Err(error) => Err(error),
    };
    // A phase that broke ends the run, but what was measured until then is still reported.
    let completed = result.is_ok();
    if let Err(error) = result {
        eprintln!("bench: the run stopped early: {error:#}");
        figures.check("run: every phase completed", false, format!("{error:#}"));
    }
    emulator.process.stop().await;
    delete_namespaces(client).await?;
    figures.machine.load_average_end = report::load_average();
    // Figures of phases that never ran are zeros, which would pass for "met".
    if completed {
        figures.evaluate_targets();
    }
    Ok(figures)
}

/// `kubectl apply --server-side` of every CRD file, then waits until all are served.
async fn install_crds(dir: &Path) -> anyhow::Result<()> {
    let dir = dir.to_string_lossy();
    procs::kubectl(&["apply", "--server-side", "--force-conflicts", "-f", &dir]).await?;
    procs::kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "-f",
        &dir,
    ])
    .await?;
    Ok(())
}

async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    api.create(&PostParams::default(), &namespace)
        .await
        .with_context(|| {
            format!(
                "cannot create namespace {name} (a leftover of an earlier run on this cluster?)"
            )
        })?;
    Ok(())
}

/// Deletes both namespaces without waiting (the control plane is thrown away afterwards; in
/// `make test` the remaining objects have no finalizers, so they go quickly).
async fn delete_namespaces(client: &Client) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    for name in [FLOOR_NAMESPACE, OPERATOR_NAMESPACE] {
        api.delete(name, &DeleteParams::background())
            .await
            .with_context(|| format!("cannot delete namespace {name}"))?;
    }
    Ok(())
}

/// Seconds since `start`, for the report.
pub fn secs_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}
