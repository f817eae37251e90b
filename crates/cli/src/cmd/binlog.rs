//! `lifeboat binlog stream|verify`.

use std::path::PathBuf;

use anyhow::Result;
use lifeboat_sources::mariadb::{archive, stream, MariadbUrl};

use crate::args::BinlogCommand;
use crate::cmd::Ctx;
use crate::exit;

pub fn run(ctx: &Ctx, cmd: BinlogCommand) -> Result<u8> {
    let repo = ctx.open()?;
    match cmd {
        BinlogCommand::Stream {
            source,
            spool,
            server_id,
        } => {
            let url = MariadbUrl::parse(&source)?;
            let spool = spool.unwrap_or_else(|| default_spool(&url));
            crate::interrupt::set_note("interrupted; the next `binlog stream` resumes with the log being received (the server keeps its binary logs until they are purged)");
            let opts = stream::StreamOptions { spool, server_id };
            let stop = std::sync::atomic::AtomicBool::new(false);
            stream::run(
                &repo,
                &url,
                &opts,
                &stop,
                crate::cmd::stream_reporter(ctx, "archived"),
            )?;
            Ok(exit::SUCCESS)
        }
        BinlogCommand::Verify { server_id } => {
            let reports = archive::verify(&repo, server_id)?;
            let problems: Vec<String> = reports
                .iter()
                .flat_map(|r| {
                    r.problems
                        .iter()
                        .map(move |p| format!("error: server {}: {p}", r.server_id))
                })
                .collect();
            ctx.out.outcome(&reports, &problems, || {
                let mut t = String::new();
                if reports.is_empty() {
                    t += "no binary log is archived\n";
                }
                for r in &reports {
                    t += &format!("server {}:\n", r.server_id);
                    for g in &r.ranges {
                        let span = match (&g.first_gtid, &g.last_gtid) {
                            (Some(a), Some(b)) => format!(
                                "GTID {a} ({}) to {b} ({})",
                                g.first_time.as_deref().unwrap_or("?"),
                                g.last_time.as_deref().unwrap_or("?")
                            ),
                            _ => "no transactions".into(),
                        };
                        t += &format!(
                            "  {} … {} ({} logs, {} transactions{}): {span}\n",
                            g.first_file,
                            g.last_file,
                            g.files,
                            g.transactions,
                            if g.open {
                                ", the last still being written"
                            } else {
                                ""
                            }
                        );
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

/// `~/.local/state/lifeboat/binlog-stream/HOST-PORT`.
fn default_spool(url: &MariadbUrl) -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = format!(
        "{}-{}",
        url.host
            .as_deref()
            .or(url.socket.as_deref())
            .unwrap_or("localhost"),
        url.port.unwrap_or(3306)
    )
    .replace('/', "_");
    home.join(".local/state/lifeboat/binlog-stream").join(name)
}
