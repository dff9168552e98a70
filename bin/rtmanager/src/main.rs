//! The `rtmanager` binary: reads the configuration, wires the adapters
//! into the domain and serves the REST surfaces.
//!
//! Placeholder wiring (HTTP engineer): the lead engineer replaces `main`
//! with the real start-up; the modules below are complete.

// ---- HTTP engineer's modules (config, REST surfaces, metrics) ----
// Not all of their API is used until the lead's wiring lands.
#[allow(dead_code)]
mod config;
#[allow(dead_code)]
mod http;
#[allow(dead_code)]
mod metrics;

fn main() -> std::process::ExitCode {
    let unknown =
        config::unknown_variables(std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()));
    if !unknown.is_empty() {
        eprintln!(
            "warning: unknown RTM_* variables (typos?): {}",
            unknown.join(", ")
        );
    }
    match config::Config::from_env() {
        Ok(config) => {
            println!("{config:#?}");
            std::process::ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            std::process::ExitCode::from(2)
        }
    }
}
