//! The `rtmanager` binary: reads and validates the configuration, sets up
//! logging, starts the application and shuts it down gracefully on
//! SIGTERM/SIGINT (exit 0; engines keep running).

use std::process::ExitCode;

use rtmanager::{app, config};

fn main() -> ExitCode {
    let config = match config::Config::from_env() {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("rtmanager: invalid configuration\n{errors}");
            return ExitCode::from(2);
        }
    };
    app::init_tracing(config.log_format);
    let unknown =
        config::unknown_variables(std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()));
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
