//! One module per command group; each turns arguments into a library call
//! and its result into output and an exit code.

mod backup;
mod binlog;
mod browse;
mod cat;
mod check;
mod copy;
mod demo;
mod forget;
mod init;
mod key;
mod meta;
mod notify;
mod plan;
mod region;
mod repair;
mod report;
mod restore;
mod run;
mod serve;
mod status;
mod tag;
mod verify;
mod wal;

use std::sync::Arc;

use anyhow::Result;
use lifeboat_repo::crypto::KdfParams;
use lifeboat_repo::{IndexedRepository, Repository, SnapshotFilter};
use lifeboat_store::WriteStore;

use crate::args::{Cli, Command, Global};
use crate::secrets::{self, Secret};
use crate::ui::Output;
use crate::UsageError;

/// What every command gets.
pub struct Ctx {
    /// Global options.
    pub global: Global,
    /// Output mode.
    pub out: Output,
}

impl Ctx {
    /// The repository's store.
    pub fn store(&self) -> Result<Arc<dyn WriteStore>> {
        let loc = self.global.repo.as_deref().ok_or_else(|| {
            UsageError("no repository given: use --repo PATH or set LIFEBOAT_REPOSITORY".into())
        })?;
        let store: Arc<dyn WriteStore> = Arc::from(lifeboat_store::open(loc)?);
        crate::interrupt::watch_store(&store);
        Ok(store)
    }

    /// The repository password.
    pub fn password(&self, confirm: bool) -> Result<Secret> {
        secrets::read(
            "LIFEBOAT_PASSWORD",
            secrets::Given {
                file: self.global.password_file.as_deref(),
                command: self.global.password_command.as_deref(),
            },
            "repository password",
            confirm,
        )
    }

    /// Opens (unlocks) the repository.
    pub fn open(&self) -> Result<Repository> {
        let store = self.store()?;
        let pw = self.password(false)?;
        Ok(Repository::open(store, pw.bytes())?)
    }

    /// Opens the repository and loads its index.
    pub fn open_indexed(&self) -> Result<IndexedRepository> {
        Ok(self.open()?.load_index()?)
    }
}

/// `PREFIXNAME: WHY` for each document of `docs` whose `ok` is false, NAME
/// its `key` and WHY its `error`: the problems of a plan command's runs.
pub fn failures(docs: &[serde_json::Value], key: &str, prefix: &str) -> Vec<String> {
    docs.iter()
        .filter(|d| d["ok"] == false)
        .map(|d| {
            format!(
                "{prefix}{}: {}",
                d[key].as_str().unwrap_or(""),
                d["error"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// Comma-separated values given once or more (`--tag a,b --tag c`): every
/// non-empty item, in order.
pub fn split_list(given: &[String]) -> Vec<String> {
    given
        .iter()
        .flat_map(|t| t.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

impl crate::args::FilterArgs {
    /// The library's filter (`--tag a,b` is one set needing both).
    pub fn filter(&self) -> SnapshotFilter {
        SnapshotFilter {
            hosts: self.hosts.clone(),
            tags: self
                .tags
                .iter()
                .map(|t| split_list(std::slice::from_ref(t)))
                .collect(),
            paths: self.paths.clone(),
        }
    }
}

/// Key derivation cost for new keys. `LIFEBOAT_INSECURE_FAST_KDF=1` makes
/// keys cheap to open, for test suites only.
pub fn kdf_params() -> KdfParams {
    if std::env::var("LIFEBOAT_INSECURE_FAST_KDF").is_ok_and(|v| v == "1") {
        KdfParams::INSECURE_FAST
    } else {
        KdfParams::DEFAULT
    }
}

/// Parses durations like `24h`, `30m`, `90s`, `2d`, `500ms`, `0`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration> {
    let bad = || {
        UsageError(format!(
            "invalid duration {s:?}: use forms like 24h, 30m, 2d, 0"
        ))
    };
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = num.parse().map_err(|_| bad())?;
    if unit == "ms" {
        return Ok(std::time::Duration::from_millis(n));
    }
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(bad().into()),
    };
    Ok(std::time::Duration::from_secs(secs))
}

/// Parses sizes like `4096`, `500K`, `500M`, `2G`, `1T` (powers of 1024;
/// a trailing `B` or `iB` is allowed).
pub fn parse_size(s: &str) -> Result<u64> {
    let bad = || {
        UsageError(format!(
            "invalid size {s:?}: use forms like 4096, 500K, 500M, 2G"
        ))
    };
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, shift) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 10),
        Some('M') => (&t[..t.len() - 1], 20),
        Some('G') => (&t[..t.len() - 1], 30),
        Some('T') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: u64 = num.trim().parse().map_err(|_| bad())?;
    Ok(n.checked_mul(1u64 << shift).ok_or_else(bad)?)
}

/// Runs the command; returns the exit code.
pub fn run(cli: Cli) -> Result<u8> {
    let ctx = Ctx {
        out: Output {
            json: cli.global.json,
            quiet: cli.global.quiet,
        },
        global: cli.global,
    };
    match cli.command {
        Command::Init(a) => init::run(&ctx, a),
        Command::Backup(a) => backup::run(&ctx, a),
        Command::Snapshots(a) => browse::snapshots(&ctx, a),
        Command::Ls(a) => browse::ls(&ctx, a),
        Command::Diff(a) => browse::diff(&ctx, a),
        Command::Find(a) => browse::find(&ctx, a),
        Command::Stats(a) => browse::stats(&ctx, a),
        Command::Dump(a) => browse::dump(&ctx, a),
        Command::Restore(a) => restore::run(&ctx, a),
        Command::Check(a) => check::run(&ctx, a),
        Command::Forget(a) => forget::forget(&ctx, a),
        Command::Prune(a) => forget::prune(&ctx, a),
        Command::Key(k) => key::run(&ctx, k),
        Command::Tag(a) => tag::run(&ctx, a),
        Command::Cat { kind, id } => cat::run(&ctx, kind, id.as_deref()),
        Command::Repair(r) => repair::run(&ctx, r),
        Command::Wal(w) => wal::run(&ctx, w),
        Command::Binlog(b) => binlog::run(&ctx, b),
        Command::Plan(p) => plan::run(&ctx, p),
        Command::Run(a) => run::run(&ctx, a),
        Command::Copy(a) => copy::run(&ctx, a),
        Command::Status => status::run(&ctx),
        Command::Report(a) => report::run(&ctx, a),
        Command::Verify(a) => verify::run(&ctx, a),
        Command::Serve(a) => serve::run(&ctx, a),
        Command::Demo(a) => demo::run(&ctx, a),
        Command::Version => meta::version(&ctx),
        Command::Completions { shell } => meta::completions(shell),
        Command::Man { dir } => meta::man(&ctx, &dir),
    }
}

/// What a log stream (`wal stream`, `binlog stream`) says as it goes:
/// each whole file made durable, on stdout (`verb FILE (N s behind)`)
/// unless quiet; every upload, partials too, in the debug log.
pub fn stream_reporter(
    ctx: &Ctx,
    verb: &'static str,
) -> impl FnMut(&lifeboat_sources::receiver::StreamStatus) {
    let quiet = ctx.global.quiet || ctx.global.json;
    move |s| {
        if !s.partial && !quiet {
            #[allow(clippy::print_stdout)]
            {
                println!("{verb} {} ({:.1}s behind)", s.file, s.lag.as_secs_f64());
            }
        }
        tracing::debug!(
            "uploaded {}{} ({:.2}s behind)",
            s.file,
            if s.partial { " (partial)" } else { "" },
            s.lag.as_secs_f64()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("500K").unwrap(), 500 << 10);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert!(parse_size("").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    proptest! {
        #[test]
        fn every_written_size_parses_back(n in 0u64..1 << 20, unit in 0usize..5) {
            let (suffix, shift) = [("", 0), ("K", 10), ("M", 20), ("G", 30), ("T", 40)][unit];
            prop_assert_eq!(parse_size(&format!("{n}{suffix}")).unwrap(), n << shift);
        }
    }
}
