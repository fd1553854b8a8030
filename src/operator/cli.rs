//! Command-line flags; each also reads an environment variable (see `docs/configuration.md`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::ivy::Dialect;

/// Keeps Ivy webhook subscriptions in step with WebhookSubscription resources.
#[derive(Debug, Parser)]
#[command(name = "ivy-webhook-operator", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller.
    Run(Box<RunArgs>),
    /// Print every CustomResourceDefinition as one multi-document YAML stream, or write one
    /// file per CRD with --output-dir.
    Crd(CrdArgs),
}

#[derive(Debug, Args)]
pub struct CrdArgs {
    /// Write one file per CRD, named `<plural>.<group>.yaml` (e.g. crds/), instead of printing.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Base URL of Ivy's API, e.g. https://api.getivy.de (production),
    /// https://api.sand.getivy.de (sandbox) or the emulator's http://127.0.0.1:PORT.
    #[arg(long, env = "IVY_BASE_URL")]
    pub ivy_base_url: url::Url,

    /// File holding the Ivy API key (e.g. a mounted Secret), read again whenever it changes so
    /// that a rotated key needs no restart. Takes precedence over IVY_API_KEY.
    #[arg(long, env = "IVY_API_KEY_FILE")]
    pub ivy_api_key_file: Option<PathBuf>,

    /// The Ivy API key itself, when no key file is given.
    #[arg(long, env = "IVY_API_KEY", hide_env_values = true, hide = true)]
    pub ivy_api_key: Option<String>,

    /// A PEM file of CA certificates to trust for Ivy's API, beside webpki's roots and the
    /// system's CA store: a private CA, or the CA of a TLS-inspecting proxy.
    #[arg(long, env = "IVY_CA_FILE")]
    pub ivy_ca_file: Option<PathBuf>,

    /// Which shape of Ivy's API to speak.
    #[arg(long, env = "IVY_DIALECT", value_enum, default_value = "rest")]
    pub ivy_dialect: Dialect,

    /// File holding the merchant app's signing secret (required for the `service` dialect,
    /// whose subscriptions have no secret of their own).
    #[arg(long, env = "IVY_APP_SIGNING_SECRET_FILE")]
    pub app_signing_secret_file: Option<PathBuf>,

    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// How often an unchanged resource is checked against Ivy for drift (e.g. 10m, 90s).
    #[arg(long, env = "RESYNC_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub resync_interval: Duration,

    /// How long a rotation keeps the previous secret and subscription before removing them.
    #[arg(long, env = "ROTATION_GRACE_PERIOD", default_value = "5m", value_parser = parse_duration)]
    pub rotation_grace_period: Duration,

    /// Default request budget of each Ivy account: requests per second, shared by every
    /// resource of the account (an account's `spec.rate` overrides it).
    #[arg(long, env = "IVY_RATE", default_value_t = crate::accounts::budget::DEFAULT_RATE, value_parser = parse_rate)]
    pub ivy_rate: f64,

    /// Default burst of each Ivy account: requests it may send at once after a quiet period
    /// (an account's `spec.burst` overrides it).
    #[arg(long, env = "IVY_BURST", default_value_t = crate::accounts::budget::DEFAULT_BURST, value_parser = clap::value_parser!(u32).range(1..))]
    pub ivy_burst: u32,

    /// Timeout of each request to Ivy.
    #[arg(long, env = "IVY_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub ivy_request_timeout: Duration,

    /// Elect a leader through a coordination.k8s.io Lease so that only one replica reconciles.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = false)]
    pub leader_election: bool,

    /// Name of the Lease used for leader election.
    #[arg(
        long,
        env = "LEADER_ELECTION_LEASE_NAME",
        default_value = "ivy-webhook-operator"
    )]
    pub lease_name: String,

    /// Namespace of the Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// Lease duration: how long a dead leader blocks a takeover.
    #[arg(long, env = "LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,

    /// This replica's name, for Events and the Lease holder identity (default: a random id).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,

    /// Reconciles that may run at once.
    #[arg(long, env = "CONCURRENCY", default_value_t = 4)]
    pub concurrency: u16,

    /// Whether existing subscriptions may be taken over (the subscription-id annotation, and the
    /// service dialect's take-over of a subscription holding the URL): `--allow-adoption=false`
    /// refuses every take-over with `AdoptionRefused`.
    #[arg(
        long,
        env = "ALLOW_ADOPTION",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub allow_adoption: bool,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log filter, e.g. `info` or `ivy_webhook_operator=debug,kube=info`.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

/// Parses `90s`, `10m`, `1h30m`, `250ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let signed: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("invalid duration {text:?}: {e}"))?;
    Duration::try_from(signed).map_err(|_| format!("duration {text:?} must not be negative"))
}

/// Parses a request rate: a finite number of requests per second above zero.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|e| format!("invalid rate {text:?}: {e}"))?;
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        Err(format!(
            "rate {text:?} must be a number of requests per second above zero"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_friendly_form() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn flags_parse_with_defaults() {
        let cli = Cli::try_parse_from([
            "ivy-webhook-operator",
            "run",
            "--ivy-base-url",
            "http://127.0.0.1:1",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("expected run");
        };
        assert_eq!(args.ivy_dialect, Dialect::Rest);
        assert_eq!(args.resync_interval, Duration::from_secs(600));
        assert_eq!(args.metrics_addr.port(), 8080);
        assert!(!args.leader_election);
        assert_eq!(args.ivy_rate, 50.0);
        assert_eq!(args.ivy_burst, 100);
        assert_eq!(args.ivy_ca_file, None);
    }

    #[test]
    fn a_rate_must_be_positive_and_a_burst_at_least_one() {
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("inf").is_err());
        let base = [
            "ivy-webhook-operator",
            "run",
            "--ivy-base-url",
            "http://127.0.0.1:1",
        ];
        let zero_burst = [&base[..], &["--ivy-burst", "0"]].concat();
        assert!(Cli::try_parse_from(zero_burst).is_err());
    }

    #[test]
    fn crd_takes_an_optional_output_directory() {
        let cli = Cli::try_parse_from(["ivy-webhook-operator", "crd"]).unwrap();
        let Command::Crd(args) = cli.command else {
            panic!("expected crd");
        };
        assert_eq!(args.output_dir, None);
        let cli =
            Cli::try_parse_from(["ivy-webhook-operator", "crd", "--output-dir", "crds"]).unwrap();
        let Command::Crd(args) = cli.command else {
            panic!("expected crd");
        };
        assert_eq!(args.output_dir, Some(PathBuf::from("crds")));
    }

    #[test]
    fn the_ca_file_is_a_flag_or_an_environment_variable() {
        let cli = Cli::try_parse_from([
            "ivy-webhook-operator",
            "run",
            "--ivy-base-url",
            "https://ivy.internal",
            "--ivy-ca-file",
            "/etc/ivy-ca/ca.crt",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("expected run");
        };
        assert_eq!(args.ivy_ca_file, Some(PathBuf::from("/etc/ivy-ca/ca.crt")));
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
