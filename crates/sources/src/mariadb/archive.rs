//! The archived binary logs of each server (`binlog-<server_id>-<file>`,
//! and the partial of the log still being written): which are there,
//! what they span, and where a log is missing.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use lifeboat_repo::{RepoError, Repository};
use serde::Serialize;

use super::binlog;
use super::stream::{file_number, next_file, parse_object_name};
use crate::error::Result;
use crate::partial;

/// An archived log's object, whole or the newest partial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    /// The log's file name on the server.
    pub file: String,
    /// The object holding it.
    pub object: String,
    /// Whether it is the partial of a log still being written.
    pub partial: bool,
}

/// The logs archived per server, each file once (a whole log over its
/// partials), in order.
pub fn by_server(repo: &Repository) -> Result<BTreeMap<u32, Vec<Archived>>> {
    let mut all: BTreeMap<u32, BTreeMap<(u64, String), Archived>> = BTreeMap::new();
    for o in repo.list_logs()? {
        let base = partial::base_of(&o.name);
        let Some((id, file)) = parse_object_name(base.unwrap_or(&o.name)) else {
            continue;
        };
        let Some(n) = file_number(&file) else {
            continue;
        };
        let entry = Archived {
            file: file.to_string(),
            object: o.name.clone(),
            partial: base.is_some(),
        };
        // Names sort by stamp: a later partial replaces an earlier one, and
        // a whole log any partial.
        all.entry(id)
            .or_default()
            .entry((n, file.to_string()))
            .and_modify(|e| {
                if e.partial {
                    *e = entry.clone();
                }
            })
            .or_insert(entry);
    }
    Ok(all
        .into_iter()
        .map(|(id, files)| (id, files.into_values().collect()))
        .collect())
}

/// Reads an archived log. A partial that the stream replaced since it
/// was listed (or completed: the whole log replaces its partials) is read
/// in its newer form.
pub fn read(repo: &Repository, log: &Archived) -> Result<lifeboat_repo::logs::LogPiece> {
    let mut object = log.object.clone();
    for _ in 0..5 {
        match repo.get_log(&object) {
            Err(RepoError::Store(e)) if e.is_not_found() && log.partial => {
                let base = partial::base_of(&log.object).unwrap_or(&log.object);
                object = match partial::newest(repo, base)? {
                    Some(newer) => newer,
                    None => base.to_string(),
                };
            }
            r => return Ok(r?),
        }
    }
    Ok(repo.get_log(&object)?)
}

/// A run of archived logs with no log missing between them.
#[derive(Debug, Clone, Serialize)]
pub struct LogRange {
    /// Its first log.
    pub first_file: String,
    /// Its last log.
    pub last_file: String,
    /// Logs in it.
    pub files: u64,
    /// Transactions in it.
    pub transactions: u64,
    /// The first transaction's GTID.
    pub first_gtid: Option<String>,
    /// The first transaction's commit time.
    pub first_time: Option<String>,
    /// The last transaction's GTID.
    pub last_gtid: Option<String>,
    /// The last transaction's commit time.
    pub last_time: Option<String>,
    /// Whether its last log is still being written (a partial).
    pub open: bool,
}

/// What is archived for one server.
#[derive(Debug, Clone, Serialize)]
pub struct ServerArchive {
    /// The server's `@@server_id`.
    pub server_id: u32,
    /// Its contiguous runs of logs, oldest first.
    pub ranges: Vec<LogRange>,
    /// Gaps and damaged logs.
    pub problems: Vec<String>,
}

/// Reads every archived log (of `only`, or of every server) and reports
/// the runs they form.
pub fn verify(repo: &Repository, only: Option<u32>) -> Result<Vec<ServerArchive>> {
    let mut out = vec![];
    for (server_id, logs) in by_server(repo)? {
        if only.is_some_and(|o| o != server_id) {
            continue;
        }
        let mut ranges: Vec<LogRange> = vec![];
        let mut problems = vec![];
        let mut expected: Option<String> = None;
        for log in logs {
            let data = read(repo, &log)?;
            let mut first = None;
            let s = match binlog::scan(&data, |g| {
                first.get_or_insert(*g);
                ControlFlow::Continue(())
            }) {
                Ok(s) => s,
                Err(e) => {
                    problems.push(format!("binary log {} is damaged: {e}", log.file));
                    expected = None;
                    continue;
                }
            };
            let words = |g: &binlog::Group| {
                (
                    Some(g.gtid.to_string()),
                    jiff::Timestamp::from_second(g.time.into())
                        .ok()
                        .map(|t| t.to_string()),
                )
            };
            let continues = expected.as_deref() == Some(log.file.as_str());
            if !continues {
                if let Some(want) = &expected {
                    problems.push(format!(
                        "binary logs from {want} to before {} are not archived: no restore replays across them",
                        log.file
                    ));
                }
                ranges.push(LogRange {
                    first_file: log.file.clone(),
                    last_file: log.file.clone(),
                    files: 0,
                    transactions: 0,
                    first_gtid: None,
                    first_time: None,
                    last_gtid: None,
                    last_time: None,
                    open: false,
                });
            }
            let r = ranges.last_mut().expect("pushed above");
            r.last_file = log.file.clone();
            r.files += 1;
            r.transactions += s.groups;
            r.open = log.partial;
            if let (None, Some(g)) = (&r.first_gtid, first) {
                (r.first_gtid, r.first_time) = words(&g);
            }
            if let Some(g) = s.last {
                (r.last_gtid, r.last_time) = words(&g);
            }
            expected = if log.partial {
                None
            } else {
                s.rotate_to.clone().or_else(|| next_file(&log.file))
            };
        }
        out.push(ServerArchive {
            server_id,
            ranges,
            problems,
        });
    }
    Ok(out)
}
