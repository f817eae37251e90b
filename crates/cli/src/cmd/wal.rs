//! `lifeboat wal push|fetch|verify`.

use std::path::PathBuf;

use anyhow::Result;
use lifeboat_repo::logs::LogPut;
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
    let repo = ctx.open()?;
    match cmd {
        WalCommand::Push { path, pgdata } => {
            let put = wal::push(&repo, &path, &data_dir(pgdata))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            ctx.out.outcome(
                &json!({ "wal": name, "already_archived": put == LogPut::AlreadyStored }),
                &[],
                || match put {
                    LogPut::Stored => format!("archived {name}\n"),
                    LogPut::AlreadyStored => {
                        format!("{name} was already archived, with the same content\n")
                    }
                },
            )?;
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
            let quiet = ctx.global.quiet || ctx.global.json;
            lifeboat_sources::postgres::stream::run(&repo, &url, &opts, &stop, |s| {
                if !s.partial && !quiet {
                    #[allow(clippy::print_stdout)]
                    {
                        println!("streamed {} ({:.1}s behind)", s.file, s.lag.as_secs_f64());
                    }
                }
                tracing::debug!(
                    "uploaded {}{} ({:.2}s behind)",
                    s.file,
                    if s.partial { " (partial)" } else { "" },
                    s.lag.as_secs_f64()
                );
            })?;
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
    let Ok(me) = std::env::current_exe() else {
        return;
    };
    let mut cmd = std::process::Command::new(me);
    if let Some(r) = &ctx.global.repo {
        cmd.args(["--repo", r]);
    }
    if let Some(p) = &ctx.global.password_file {
        cmd.arg("--password-file").arg(p);
    }
    cmd.args(["-q", "wal", "prefetch", "--pgdata"])
        .arg(pgdata)
        .args(&wanted)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // Not waited for: it outlives this fetch (and is reaped by init).
    let _ = cmd.spawn();
}
