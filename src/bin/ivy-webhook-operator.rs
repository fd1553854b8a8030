//! `ivy-webhook-operator`: `run` the controller, or print (or write) the `crd`s.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use ivy_webhook_operator::crd;
use ivy_webhook_operator::operator::{self, Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd(args) => match write_crds(args.output_dir.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => {
            if let Err(error) = operator::logging::init(args.log_format, &args.log_level) {
                eprintln!("error: {error:#}");
                return ExitCode::FAILURE;
            }
            match operator::run(*args).await {
                Ok(operator::start::Exit::Stopped) => ExitCode::SUCCESS,
                Ok(operator::start::Exit::LostLeadership) => ExitCode::from(3),
                Err(error) => {
                    tracing::error!("{error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Every CRD: one file each into `output_dir`, or one multi-document stream on stdout.
fn write_crds(output_dir: Option<&Path>) -> anyhow::Result<()> {
    let files = crd::crd_files().context("failed to render the CRDs")?;
    match output_dir {
        Some(dir) => {
            for (name, yaml) in files {
                let path = dir.join(name);
                std::fs::write(&path, yaml)
                    .with_context(|| format!("failed to write {}", path.display()))?;
            }
        }
        None => {
            for (_, yaml) in files {
                print!("---\n{yaml}");
            }
        }
    }
    Ok(())
}
