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
            let got = wal::fetch(&repo, &name, &dest, &data_dir(pgdata))?;
            let found = got == Fetched::Written;
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
