//! `lifeboat wal push|fetch|verify`.

use std::path::PathBuf;

use anyhow::Result;
use lifeboat_repo::logs::LogPut;
use lifeboat_sources::postgres::ahead;
use lifeboat_sources::postgres::wal::{self, Fetched};
use serde_json::json;

use crate::args::WalCommand;
use crate::cmd::Ctx;
use crate::exit;

/// The data directory: the one given, else the current directory (where
/// PostgreSQL runs its archive and restore commands).
fn data_dir(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| PathBuf::from("."))
}

pub fn run(ctx: &Ctx, cmd: WalCommand) -> Result<u8> {
    // A file archived ahead is acknowledged without opening the repository.
    if let WalCommand::Push { path, pgdata } = &cmd {
        let pgdata = data_dir(pgdata.clone());
        if ahead::archived_ahead(path, &pgdata, &repository_name(ctx))? {
            let name = file_name(path);
            ctx.out.outcome(
                &json!({ "wal": name, "already_archived": false, "archived_ahead": true }),
                &[],
                || format!("archived {name} (ahead of the server's asking)\n"),
            )?;
            start_push_ahead(ctx, &pgdata, &name);
            return Ok(exit::SUCCESS);
        }
    }
    let repo = ctx.open()?;
    match cmd {
        WalCommand::Push { path, pgdata } => {
            let pgdata = data_dir(pgdata);
            let put = wal::push(&repo, &path, &pgdata)?;
            let name = file_name(&path);
            ctx.out.outcome(
                &json!({ "wal": name, "already_archived": put == LogPut::AlreadyStored, "archived_ahead": false }),
                &[],
                || match put {
                    LogPut::Stored => format!("archived {name}\n"),
                    LogPut::AlreadyStored => {
                        format!("{name} was already archived, with the same content\n")
                    }
                },
            )?;
            start_push_ahead(ctx, &pgdata, &name);
            Ok(exit::SUCCESS)
        }
        WalCommand::PushAhead { pgdata, skip, max } => {
            let pgdata = data_dir(pgdata);
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
            let n = ahead::push_ahead(&repo, &pgdata, &repository_name(ctx), &skip, max, threads)?;
            ctx.out.outcome(&json!({ "archived_ahead": n }), &[], || {
                format!("archived {n} waiting file(s) ahead\n")
            })?;
            Ok(exit::SUCCESS)
        }
        WalCommand::Fetch { name, dest, pgdata } => {
            let pgdata = data_dir(pgdata);
            let got = wal::fetch(&repo, &name, &dest, &pgdata)?;
            let found = got == Fetched::Written;
            if found {
                start_prefetch(ctx, &name, &dest, &pgdata);
            }
            ctx.out
                .outcome(&json!({ "wal": name, "found": found }), &[], || {
                    if found {
                        format!("restored {name} to {}\n", dest.display())
                    } else {
                        // PostgreSQL asks past the archive's end as a matter of course.
                        format!("{name} is not in the archive\n")
                    }
                })?;
            Ok(if found { exit::SUCCESS } else { exit::FAILURE })
        }
        WalCommand::Prefetch { names, pgdata } => {
            let got = wal::prefetch(&repo, &names, &data_dir(pgdata))?;
            ctx.out.outcome(&json!({ "prefetched": got }), &[], || {
                format!("prefetched {got} of {}\n", names.len())
            })?;
            Ok(exit::SUCCESS)
        }
        WalCommand::Stream {
            source,
            slot,
            synchronous,
            spool,
        } => {
            let url =
                lifeboat_sources::ConnUrl::parse(&source, lifeboat_sources::postgres::SCHEMES)?;
            let spool = spool.unwrap_or_else(|| {
                let home = std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("."));
                home.join(".local/state/lifeboat/wal-stream").join(&slot)
            });
            crate::interrupt::set_note("interrupted; WAL received in the last moment may not be uploaded: the slot keeps it for the next `wal stream`");
            let opts = lifeboat_sources::postgres::stream::StreamOptions {
                slot,
                synchronous,
                spool,
            };
            let stop = std::sync::atomic::AtomicBool::new(false);
            lifeboat_sources::postgres::stream::run(
                &repo,
                &url,
                &opts,
                &stop,
                crate::cmd::stream_reporter(ctx, "streamed"),
            )?;
            Ok(exit::SUCCESS)
        }
        WalCommand::Verify { pgdata } => {
            let only = pgdata.as_deref().map(wal::system_id).transpose()?;
            let reports = wal::verify(&repo, only)?;
            let problems: Vec<String> = reports
                .iter()
                .flat_map(|r| {
                    r.problems
                        .iter()
                        .map(move |p| format!("error: cluster {}: {p}", r.system_id))
                })
                .collect();
            ctx.out.outcome(&reports, &problems, || {
                let mut t = String::new();
                if reports.is_empty() {
                    t += "no WAL is archived\n";
                }
                for r in &reports {
                    t += &format!(
                        "cluster {} ({} MiB segments):\n",
                        r.system_id,
                        r.segment_size >> 20
                    );
                    for tl in &r.timelines {
                        for range in &tl.ranges {
                            t += &format!(
                                "  timeline {}: {} to {} ({} … {}, {} segments)\n",
                                tl.timeline,
                                range.start_lsn,
                                range.end_lsn,
                                range.first,
                                range.last,
                                range.segments
                            );
                        }
                    }
                }
                t
            })?;
            Ok(if problems.is_empty() {
                exit::SUCCESS
            } else {
                exit::FAILURE
            })
        }
    }
}

/// Segments fetched ahead of replay (`LIFEBOAT_WAL_PREFETCH`, default 8;
/// 0 turns it off).
fn prefetch_depth() -> usize {
    std::env::var("LIFEBOAT_WAL_PREFETCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

/// The repository as given (`--repo` or `LIFEBOAT_REPOSITORY`): what a
/// push-ahead record names.
fn repository_name(ctx: &Ctx) -> String {
    ctx.global.repo.clone().unwrap_or_default()
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// How many waiting files a push archives ahead (`LIFEBOAT_WAL_PUSH_AHEAD`).
fn push_ahead_depth() -> usize {
    std::env::var("LIFEBOAT_WAL_PUSH_AHEAD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

/// Starts `wal push-ahead` in the background when files wait behind
/// `name` (it outlives this push; one runs at a time).
fn start_push_ahead(ctx: &Ctx, pgdata: &std::path::Path, name: &str) {
    let depth = push_ahead_depth();
    if depth == 0 || ahead::waiting(pgdata, 2).iter().all(|n| n == name) {
        return;
    }
    let mut cmd = lifeboat_child(ctx);
    cmd.args(["-q", "wal", "push-ahead", "--pgdata"])
        .arg(pgdata)
        .args(["--skip", name, "--max", &depth.to_string()]);
    let _ = cmd.spawn();
}

/// This program again, on the same repository and password, detached from
/// the caller's output.
fn lifeboat_child(ctx: &Ctx) -> std::process::Command {
    let me = std::env::current_exe().unwrap_or_else(|_| "lifeboat".into());
    let mut cmd = std::process::Command::new(me);
    if let Some(r) = &ctx.global.repo {
        cmd.args(["--repo", r]);
    }
    if let Some(p) = &ctx.global.password_file {
        cmd.arg("--password-file").arg(p);
    }
    if let Some(c) = &ctx.global.password_command {
        cmd.args(["--password-command", c]);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

/// Starts `wal prefetch` for the segments after `name` that the spool
/// lacks, detached: this fetch returns at once, and PostgreSQL's next ones
/// find their segments waiting.
fn start_prefetch(ctx: &Ctx, name: &str, dest: &std::path::Path, pgdata: &std::path::Path) {
    let depth = prefetch_depth();
    if depth == 0 {
        return;
    }
    let spool = wal::spool_dir(pgdata);
    let wanted: Vec<String> = wal::following(name, depth, wal::segment_size_of(dest))
        .into_iter()
        .filter(|n| !spool.join(n).exists())
        .collect();
    if wanted.is_empty() {
        return;
    }
    let mut cmd = lifeboat_child(ctx);
    cmd.args(["-q", "wal", "prefetch", "--pgdata"])
        .arg(pgdata)
        .args(&wanted);
    // Not waited for: it outlives this fetch (and is reaped by init).
    let _ = cmd.spawn();
}
