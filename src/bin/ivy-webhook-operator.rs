//! `ivy-webhook-operator`: `run` the controller, or print the `crd`.

use std::process::ExitCode;

use clap::Parser;
use ivy_webhook_operator::crd;
use ivy_webhook_operator::operator::{self, Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => match crd::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: failed to render the CRD: {error}");
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
