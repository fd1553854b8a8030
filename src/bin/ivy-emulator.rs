//! `ivy-emulator`: runs the in-memory Ivy API (all three dialects, deliveries, admin API) as a
//! process, for end-to-end tests and local development. See `docs/ivy-emulator.md`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use ivy_webhook_operator::emulator::config::DEFAULT_MUTATION_LOG_CAPACITY;
use ivy_webhook_operator::emulator::{
    DEFAULT_API_KEY, Emulator, EmulatorConfig, Quirks, TlsIdentity, ivy_retry_schedule,
};
use ivy_webhook_operator::operator::cli::parse_duration;

/// An in-memory Ivy webhook-subscription API for tests: serves the `rest`, `internal` and
/// `service` dialects from one model, delivers signed events (to loopback addresses only) and
/// offers an admin API under /admin/ for inspection and fault injection.
#[derive(Debug, Parser)]
#[command(name = "ivy-emulator", version)]
struct Args {
    /// Address to listen on. Port 0 picks a free port; the chosen address is printed to stdout
    /// as `listening on http://ADDR` (https with --tls-cert).
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,

    /// Allow --listen on a non-loopback address. The admin API still answers loopback peers
    /// only.
    #[arg(long)]
    allow_non_loopback_listen: bool,

    /// An accepted X-Ivy-Api-Key value (repeatable). Each key is a separate merchant. Without
    /// --api-key and --api-key-file the key `ivy-emulator-api-key` is accepted.
    #[arg(long = "api-key", value_name = "KEY")]
    api_keys: Vec<String>,

    /// A file of accepted API keys, one per line (blank lines and lines starting with # are
    /// ignored).
    #[arg(long, value_name = "PATH")]
    api_key_file: Option<PathBuf>,

    /// Accept http:// subscription URLs, but only with a loopback host (127.0.0.0/8, ::1,
    /// localhost). Without it only https:// URLs are accepted, like Ivy.
    #[arg(long)]
    allow_http_urls: bool,

    /// Deliver to https://<loopback>:PORT/... URLs over plain http to the same host and port
    /// (lets a plain-http loopback receiver stand in for an https endpoint).
    #[arg(long)]
    plain_http_to_loopback: bool,

    /// Delays before each retry of a failed delivery, comma separated, e.g.
    /// `100ms,200ms,1s` (durations as the operator's flags take them: 250ms, 2s, 1m30s, 1h).
    /// The number of delays is the number of retries; an empty value means no retries.
    /// Default: Ivy's schedule (30s, 22s, 140s, 541s, 1426s, 3200s, then 1h; 15 retries).
    #[arg(long, value_name = "DELAYS", value_parser = parse_schedule)]
    retry_schedule: Option<Schedule>,

    /// Timeout of one delivery attempt (same units as --retry-schedule).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    delivery_timeout: Duration,

    /// Ignore Idempotency-Key headers (like a server without idempotency support): the same
    /// as the `no-idempotency` quirk. Can be switched at runtime with PUT /admin/idempotency.
    #[arg(long)]
    no_idempotency: bool,

    /// Answer less friendly than documented where Ivy's documents are silent: comma-separated
    /// profiles among bare-409, text-409, reworded-409, mixed-409, unpaged-lists,
    /// short-pages, json-404, documented-only, proxy-502[=N], no-idempotency, unfriendly
    /// (see docs/ivy-emulator.md). Default: none.
    #[arg(
        long,
        env = "IVY_EMULATOR_QUIRKS",
        value_name = "PROFILES",
        value_parser = Quirks::parse,
        default_value = "none"
    )]
    quirks: Quirks,

    /// How many mutating requests (create, update, delete) GET /admin/mutations keeps; the
    /// oldest are dropped first.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MUTATION_LOG_CAPACITY)]
    mutation_log_capacity: usize,

    /// A file holding the merchant app's signing secret, which signs deliveries to
    /// subscriptions created through the `service` dialect. Default: a random whsec_ value
    /// (GET /admin/app-signing-secret shows it).
    #[arg(long, value_name = "PATH")]
    app_signing_secret_file: Option<PathBuf>,

    /// Serve HTTPS with this PEM certificate chain (server certificate first) instead of plain
    /// HTTP; needs --tls-key. The address is then printed as `listening on https://ADDR`.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Log format (logs go to stderr; RUST_LOG filters them, default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The parsed `--retry-schedule` (a newtype so clap does not read it as a list).
#[derive(Clone, Debug)]
struct Schedule(Vec<Duration>);

fn parse_schedule(value: &str) -> Result<Schedule, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_duration)
        .collect::<Result<Vec<_>, _>>()
        .map(Schedule)
}

fn read_api_keys(args: &Args) -> anyhow::Result<Vec<String>> {
    let mut keys = args.api_keys.clone();
    if let Some(path) = &args.api_key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read the API key file {}", path.display()))?;
        keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
        if keys.is_empty() {
            bail!("the API key file {} holds no key", path.display());
        }
    }
    if keys.is_empty() {
        keys.push(DEFAULT_API_KEY.to_owned());
    }
    Ok(keys)
}

fn read_tls_identity(args: &Args) -> anyhow::Result<Option<TlsIdentity>> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let read = |path: &PathBuf| {
        std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))
    };
    Ok(Some(TlsIdentity {
        cert_chain_pem: read(cert)?,
        key_pem: read(key)?,
    }))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("failed to watch SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("failed to watch SIGINT")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("failed to watch Ctrl-C")?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format);

    let app_signing_secret = match &args.app_signing_secret_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("failed to read {}", path.display()))?
                .trim()
                .to_owned(),
        )
        .filter(|s| !s.is_empty()),
        None => None,
    };
    if args.app_signing_secret_file.is_some() && app_signing_secret.is_none() {
        bail!("the app signing secret file is empty");
    }
    let mut quirks = args.quirks.clone();
    quirks.no_idempotency |= args.no_idempotency;
    let config = EmulatorConfig {
        api_keys: read_api_keys(&args)?,
        allow_http_urls: args.allow_http_urls,
        plain_http_to_loopback: args.plain_http_to_loopback,
        retry_schedule: args
            .retry_schedule
            .clone()
            .map(|s| s.0)
            .unwrap_or_else(ivy_retry_schedule),
        quirks,
        app_signing_secret,
        delivery_timeout: args.delivery_timeout,
        allow_non_loopback_listen: args.allow_non_loopback_listen,
        mutation_log_capacity: args.mutation_log_capacity,
        tls: read_tls_identity(&args)?,
    };
    let quirks = config.quirks.to_string();
    let emulator = Emulator::spawn(config, args.listen)
        .await
        .context("failed to start the emulator")?;

    // Scripts wait for this exact line to learn the port.
    let mut stdout = std::io::stdout().lock();
    let scheme = emulator.base_url().scheme().to_owned();
    writeln!(stdout, "listening on {scheme}://{}", emulator.addr())?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!(addr = %emulator.addr(), %quirks, "ivy-emulator ready");

    stop_signal().await?;
    tracing::info!("shutting down");
    emulator.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_is_a_comma_list_of_the_operators_durations() {
        let schedule = parse_schedule("100ms, 200ms,1s,1m30s").unwrap().0;
        assert_eq!(
            schedule,
            vec![
                Duration::from_millis(100),
                Duration::from_millis(200),
                Duration::from_secs(1),
                Duration::from_secs(90),
            ]
        );
        assert!(parse_schedule("").unwrap().0.is_empty());
        assert!(parse_schedule("100ms,soon").is_err());
        assert!(parse_schedule("-1s").is_err());
    }

    #[test]
    fn quirks_are_read_from_the_flag_and_unknown_profiles_refused() {
        let args = Args::try_parse_from(["ivy-emulator", "--quirks", "bare-409,json-404"]).unwrap();
        assert_eq!(args.quirks.to_string(), "bare-409,json-404");
        assert!(Args::try_parse_from(["ivy-emulator", "--quirks", "grumpy"]).is_err());
    }

    #[test]
    fn a_tls_certificate_needs_its_key_and_the_other_way_round() {
        assert!(Args::try_parse_from(["ivy-emulator", "--tls-cert", "c.pem"]).is_err());
        assert!(Args::try_parse_from(["ivy-emulator", "--tls-key", "k.pem"]).is_err());
        let args =
            Args::try_parse_from(["ivy-emulator", "--tls-cert", "c.pem", "--tls-key", "k.pem"])
                .unwrap();
        assert_eq!(args.tls_cert, Some(PathBuf::from("c.pem")));
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
