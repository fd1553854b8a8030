//! `ivy-emulator`: runs the in-memory Ivy API (all three dialects, deliveries, admin API) as a
//! process, for end-to-end tests and local development. See `docs/ivy-emulator.md`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use ivy_webhook_operator::emulator::{
    DEFAULT_API_KEY, Emulator, EmulatorConfig, ivy_retry_schedule,
};

/// An in-memory Ivy webhook-subscription API for tests: serves the `rest`, `internal` and
/// `service` dialects from one model, delivers signed events (to loopback addresses only) and
/// offers an admin API under /admin/ for inspection and fault injection.
#[derive(Debug, Parser)]
#[command(name = "ivy-emulator", version)]
struct Args {
    /// Address to listen on. Port 0 picks a free port; the chosen address is printed to stdout
    /// as `listening on http://ADDR`.
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
    /// `100ms,200ms,1s` (units ms, s, m, h; a bare number is seconds). The number of delays is
    /// the number of retries; an empty value means no retries. Default: Ivy's schedule (30s,
    /// 22s, 140s, 541s, 1426s, 3200s, then 1h; 15 retries).
    #[arg(long, value_name = "DELAYS", value_parser = parse_schedule)]
    retry_schedule: Option<Schedule>,

    /// Timeout of one delivery attempt (same units as --retry-schedule).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    delivery_timeout: Duration,

    /// Ignore Idempotency-Key headers (like a server without idempotency support). Can be
    /// switched at runtime with PUT /admin/idempotency.
    #[arg(long)]
    no_idempotency: bool,

    /// A file holding the merchant app's signing secret, which signs deliveries to
    /// subscriptions created through the `service` dialect. Default: a random whsec_ value
    /// (GET /admin/app-signing-secret shows it).
    #[arg(long, value_name = "PATH")]
    app_signing_secret_file: Option<PathBuf>,

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

fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{value:?} is not a duration like 100ms, 2s or 1m"))?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {value:?} (use ms, s, m, h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{value:?}: {e}"))
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
    let config = EmulatorConfig {
        api_keys: read_api_keys(&args)?,
        allow_http_urls: args.allow_http_urls,
        plain_http_to_loopback: args.plain_http_to_loopback,
        retry_schedule: args
            .retry_schedule
            .clone()
            .map(|s| s.0)
            .unwrap_or_else(ivy_retry_schedule),
        idempotency: !args.no_idempotency,
        app_signing_secret,
        delivery_timeout: args.delivery_timeout,
        allow_non_loopback_listen: args.allow_non_loopback_listen,
    };
    let emulator = Emulator::spawn(config, args.listen)
        .await
        .context("failed to start the emulator")?;

    // Scripts wait for this exact line to learn the port.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{}", emulator.addr())?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!(addr = %emulator.addr(), "ivy-emulator ready");

    stop_signal().await?;
    tracing::info!("shutting down");
    emulator.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_common_units() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 days").is_err());
    }

    #[test]
    fn a_schedule_is_a_comma_list() {
        let schedule = parse_schedule("100ms, 200ms,1s").unwrap().0;
        assert_eq!(
            schedule,
            vec![
                Duration::from_millis(100),
                Duration::from_millis(200),
                Duration::from_secs(1)
            ]
        );
        assert!(parse_schedule("").unwrap().0.is_empty());
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
