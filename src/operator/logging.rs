//! Log setup: human-readable lines by default, JSON on request. Secrets never reach a log
//! because they live in redacting newtypes.

use tracing_subscriber::EnvFilter;

use crate::operator::cli::LogFormat;

/// Installs the global subscriber. Fails if `filter` is not a valid filter directive.
pub fn init(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)?;
    // Colour codes only for a terminal: log collectors and tests read plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(ansi);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("failed to install the log subscriber: {e}"))
}
