//! The command line: parses arguments, calls the one-shot commands or the long-running modes of
//! [`daemon`](crate::daemon) (which does the wiring), prints, and maps outcomes to exit codes. `anyhow` is used
//! here and in `daemon`, at the edge.

mod args;
mod cleanup;
mod commands;
pub mod describe;
mod generate;
mod import;
pub mod ipvsadm_format;
mod status;
mod validate;

use clap::Parser;

pub use args::Cli;

/// Exit code: success, nothing to do.
pub const EXIT_OK: i32 = 0;
/// Exit code: an error (or any failed operation).
pub const EXIT_ERROR: i32 = 1;
/// Exit code of `plan` when there are changes.
pub const EXIT_CHANGES: i32 = 2;
/// Exit code of `import` when something that shapes the table or the checks was not converted (the manifests
/// are still written).
pub const EXIT_PARTIAL: i32 = 3;

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let long_running = matches!(cli.command, args::Command::Run(_) | args::Command::Agent(_));
    let format = cli.log_format;
    init_tracing(long_running, format);
    if long_running {
        // The first line of every start: which build a log (or a bug report quoting it) comes from.
        use crate::agent::metrics::{REVISION, VERSION};
        match REVISION {
            "unknown" => tracing::info!("ipvs-reconciler {VERSION} starting"),
            revision => tracing::info!("ipvs-reconciler {VERSION} ({revision}) starting"),
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            fatal(format, &format!("cannot start the async runtime: {e}"));
            return EXIT_ERROR;
        }
    };
    match runtime.block_on(commands::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            fatal(format, &error_line(&e));
            EXIT_ERROR
        }
    }
}

/// Prints the error that ends the process. Under `--log-format json` it is one JSON object like the log lines
/// (a pipeline that parses every stderr line would otherwise drop, or choke on, the one line that matters most):
/// an ERROR event through the subscriber, or, when the filter silences errors (`RUST_LOG=off`), the same shape
/// written directly, since the reason for exiting must never be lost.
fn fatal(format: args::LogFormat, line: &str) {
    match format {
        args::LogFormat::Text => eprintln!("ipvs-reconciler: {line}"),
        args::LogFormat::Json if tracing::enabled!(tracing::Level::ERROR) => tracing::error!("{line}"),
        args::LogFormat::Json => {
            eprintln!("{}", serde_json::json!({"level": "ERROR", "fields": {"message": line}}));
        }
    }
}

/// An error and its causes on one line. Most of this crate's errors quote their cause in their own message (so that
/// they read well alone, in logs) and also expose it as `source()`: anyhow's `{:#}` would then print it twice
/// ("...: No such file or directory (os error 2): No such file or directory (os error 2)"). A cause the line
/// already ends with is not repeated.
fn error_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Logs go to stderr, so that stdout carries only the command's output. `run` logs at info by default, one-shot
/// commands only warnings; `RUST_LOG` overrides both. Colours only on a terminal (and not with `NO_COLOR` set): a
/// journal, a file or a container runtime's log would keep the escape bytes.
fn init_tracing(long_running: bool, format: args::LogFormat) {
    use std::io::IsTerminal;
    let default = if long_running { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let colours = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colours);
    let _ = match format {
        args::LogFormat::Text => logs.try_init(),
        args::LogFormat::Json => logs.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::path::PathBuf;

    use super::error_line;
    use crate::engine::ownership::StateError;

    #[test]
    fn a_cause_quoted_by_its_error_is_printed_once() {
        let source = io::Error::new(io::ErrorKind::NotFound, "no such file");
        let error = anyhow::Error::new(StateError::Io { path: PathBuf::from("/s.json"), source });
        assert_eq!(error_line(&error.context("loading state")), "loading state: state file /s.json: no such file");
    }

    #[test]
    fn a_cause_not_quoted_is_still_printed() {
        let error = anyhow::Error::new(io::Error::other("disk on fire")).context("reading manifests");
        assert_eq!(error_line(&error), "reading manifests: disk on fire");
    }
}
