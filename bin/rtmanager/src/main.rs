//! The `rtmanager` binary: its command line (SPEC §10), then one of
//!
//! - `serve` (the default): read and validate the configuration, set up
//!   logging, run the service, shut down gracefully on SIGTERM/SIGINT
//!   (exit 0; engines keep running);
//! - `check-config`: validate the whole configuration and exit 0 (valid) or
//!   2 (each problem named), connecting to nothing and changing nothing;
//! - `ctl …`: the operator's client of the admin REST API (`rtmanager::ctl`).
//!
//! `--help` and `--version` print and exit 0 before anything else happens:
//! the environment is not read, nothing connects. An unknown argument exits
//! 2 with the usage (clap's convention, which is also ours).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rtmanager::{app, config, ctl};

/// The Runtime Manager: owns the Docker containers of the game engines.
///
/// Without a command it runs the service (like `rtmanager serve`). Every
/// setting comes from `RTM_*` environment variables (docs/configuration.md).
#[derive(Debug, Parser)]
#[command(name = "rtmanager", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Validate the configuration (every RTM_* variable, URLs as the
    /// drivers parse them, files) without connecting to anything; exit 0
    /// when valid, 2 otherwise.
    CheckConfig,
    /// Operate a running rtmanager through its admin REST API.
    Ctl(ctl::CtlArgs),
}

fn main() -> ExitCode {
    // Parsing prints help/version/usage itself and exits 0 or 2.
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        Command::CheckConfig => check_config(),
        Command::Ctl(args) => ctl::main(args),
    }
}

/// Problems and typo warnings of the environment's configuration.
fn load() -> Result<config::Config, config::ConfigErrors> {
    config::Config::from_env()
}

fn env_names() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .collect()
}

fn check_config() -> ExitCode {
    let parsed = load();
    let host = config::check_host(&|k| std::env::var(k).ok());
    let result = match parsed {
        Ok(config) if host.is_empty() => Ok(config),
        Ok(_) => Err(config::ConfigErrors(host)),
        Err(mut errors) => {
            errors.0.extend(host);
            Err(errors)
        }
    };
    let unknown = config::unknown_variables(env_names());
    if !unknown.is_empty() {
        eprintln!(
            "rtmanager: warning: unknown RTM_* variables (typos?): {}",
            unknown.join(", ")
        );
    }
    match result {
        Ok(config) => {
            println!(
                "rtmanager {}: the configuration is valid (instance {}, owner {}, schema {}).",
                env!("CARGO_PKG_VERSION"),
                config.instance_id,
                config.docker.owner,
                config.postgres.schema
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("rtmanager: {errors}");
            ExitCode::from(2)
        }
    }
}

fn serve() -> ExitCode {
    let config = match load() {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("rtmanager: {errors}");
            return ExitCode::from(2);
        }
    };
    app::init_tracing(config.log_format);
    let unknown = config::unknown_variables(env_names());
    if !unknown.is_empty() {
        tracing::warn!(variables = %unknown.join(", "), "unknown RTM_* variables (typos?)");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rtmanager: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "rtmanager stopped on an error");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: config::Config) -> anyhow::Result<()> {
    let app = app::start(config).await?;
    app::wait_for_signal().await;
    tracing::info!("shutdown signal received; finishing in-flight work");
    app.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
