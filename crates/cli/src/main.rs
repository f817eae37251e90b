//! The `lifeboat` binary: argument parsing and wiring only. Every operation
//! is a library call; this crate turns arguments into options, results into
//! text or JSON, and errors into exit codes (see [`exit`]).

mod args;
mod cmd;
mod exit;
mod interrupt;
mod secrets;
mod ui;

use std::process::ExitCode;

use clap::Parser;
use lifeboat_repo::RepoError;

/// An error that is the user's to fix (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn exit_code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.downcast_ref::<UsageError>().is_some() {
            return exit::USAGE;
        }
        if let Some(e) = cause.downcast_ref::<lifeboat_store::StoreError>() {
            return if e.is_usage() {
                exit::USAGE
            } else {
                exit::FAILURE
            };
        }
        if let Some(e) = cause.downcast_ref::<lifeboat_sources::SourceError>() {
            return if e.is_usage() {
                exit::USAGE
            } else {
                exit::FAILURE
            };
        }
        if let Some(e) = cause.downcast_ref::<RepoError>() {
            return if e.is_usage() {
                exit::USAGE
            } else {
                exit::FAILURE
            };
        }
    }
    exit::FAILURE
}

/// The error and its causes on one line, each cause once: errors that already
/// print their source (as `thiserror`'s `{source}` does) are not repeated.
fn one_line(err: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if msg.ends_with(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg
}

/// What the user can do about an error, in this command line's words: the
/// library's errors say what happened, the CLI says which command helps.
fn advice(err: &anyhow::Error) -> Option<&'static str> {
    let repo = err.chain().find_map(|c| c.downcast_ref::<RepoError>())?;
    Some(match repo {
        RepoError::NotARepository { .. } => "run `lifeboat init` first, or check --repo",
        RepoError::LatestUnknown(_) => "name a snapshot by id, and run `lifeboat check`",
        RepoError::EmptyStream { .. } => {
            "a producer that failed writes nothing; --allow-empty saves an empty stream"
        }
        RepoError::WouldOverwrite { .. } => "pass --overwrite to replace them",
        RepoError::Refused(_) | RepoError::Damaged { .. } | RepoError::BlobNotIndexed(_) => {
            "run `lifeboat check` to see all damage; `lifeboat repair index` and `lifeboat repair snapshots` recover what can be recovered"
        }
        _ => return None,
    })
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<RepoError>().is_some_and(|e| matches!(e, RepoError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe))
    })
}

/// Pins glibc's mmap threshold: buffers of 1 MiB and more (chunks, packs)
/// are mapped and returned to the system when freed. Left dynamic, the
/// threshold climbs after the first large free and freed pack buffers stay
/// resident in per-thread arenas (tens of MB of peak RSS).
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = match args::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            if !e.use_stderr() {
                return ExitCode::SUCCESS; // --help, --version
            }
            // `--json` promises one document for every outcome, a command
            // line clap refused included (it was not parsed, so look for it).
            if std::env::args_os().any(|a| a == "--json") {
                let text = e.render().to_string();
                let msg = text
                    .lines()
                    .next()
                    .unwrap_or("bad usage")
                    .trim_start_matches("error: ");
                let doc = serde_json::json!({ "error": msg, "exit_code": exit::USAGE });
                #[allow(clippy::print_stdout)]
                {
                    println!("{doc}");
                }
            }
            return ExitCode::from(exit::USAGE);
        }
    };
    let level = match (cli.global.quiet, cli.global.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LIFEBOAT_LOG")
                .unwrap_or_else(|_| level.into()),
        )
        .with_target(false)
        .without_time()
        // Colour only on a terminal, and never with NO_COLOR set (no-color.org).
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .init();
    let json = cli.global.json;
    interrupt::install(json);
    match cmd::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let code = exit_code_for(&e);
            // One line that names what and where.
            let mut msg = one_line(&e);
            if let Some(hint) = advice(&e) {
                msg = format!("{msg} ({hint})");
            }
            eprintln!("lifeboat: error: {msg}");
            if json {
                let doc = serde_json::json!({ "error": msg, "exit_code": code });
                #[allow(clippy::print_stdout)]
                {
                    println!("{doc}");
                }
            }
            ExitCode::from(code)
        }
    }
}
