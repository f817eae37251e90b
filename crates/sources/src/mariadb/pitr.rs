//! Point-in-time recovery of a MariaDB logical backup: the dump restored,
//! then the archived binary logs of its server replayed onto it with
//! `mariadb-binlog | mariadb`, from the dump's consistent point (the
//! binary-log file and position recorded at backup) up to the target.
//!
//! Replay is cut only between transactions (see [`binlog`]): a restore
//! to a time replays every transaction whose commit is timestamped before
//! it (binary logs keep whole seconds), one to a GTID every transaction up
//! to and including it, `Latest` every complete transaction archived.
//! A target the archive cannot reach is refused before anything is
//! restored: before the backup's consistent point, past the archive's
//! end, or across a log that was never archived.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lifeboat_repo::{RepoError, Repository};

use super::binlog::{self, Group, Gtid};
use super::stream::next_file;
use super::{MariadbMeta, MariadbUrl};
use crate::counts::Replayed;
use crate::error::{Result, SourceError};
use crate::producer::StderrTail;

/// How far a restore replays the archived binary logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinlogTarget {
    /// Every complete transaction archived.
    Latest,
    /// Every transaction committed before this instant (seconds since the
    /// epoch).
    Time(i64),
    /// Every transaction up to and including this one.
    Gtid(Gtid),
}

/// The archived logs a replay reads, fetched into a directory, and where
/// in them it starts and stops.
#[derive(Debug)]
pub struct Replay {
    /// The logs, in order.
    pub files: Vec<PathBuf>,
    /// Where replay starts in the first.
    pub start: u64,
    /// Where it stops in the last (`None`: at its end).
    pub stop: Option<u64>,
    /// What it replays.
    pub replayed: Replayed,
}

fn unreachable(m: String) -> SourceError {
    SourceError::Unreachable(m)
}

fn time_words(secs: i64) -> String {
    jiff::Timestamp::from_second(secs).map_or_else(|_| secs.to_string(), |t| t.to_string())
}

/// Fetches the archived logs from the backup's consistent point to
/// `target` into `dir`, proving the target reachable.
pub fn prepare(
    repo: &Repository,
    meta: &MariadbMeta,
    id: &str,
    target: BinlogTarget,
    dir: &Path,
) -> Result<Replay> {
    let (Some(server), Some(first), Some(start)) =
        (meta.server_id, meta.binlog_file.clone(), meta.binlog_pos)
    else {
        return Err(unreachable(format!(
            "snapshot {id} recorded no binary-log position (the server had log_bin off when it was dumped): it restores only to its own point"
        )));
    };
    if let BinlogTarget::Gtid(g) = target {
        let at_backup = meta
            .gtid
            .as_deref()
            .map(binlog::parse_position)
            .transpose()
            .map_err(SourceError::WrongSnapshot)?
            .unwrap_or_default();
        if let Some(b) = at_backup
            .iter()
            .find(|b| b.domain == g.domain && b.seq >= g.seq)
        {
            return Err(unreachable(format!(
                "GTID {g} is at or before snapshot {id}'s consistent point ({b}): restore an older backup to reach it"
            )));
        }
    }
    let archived = super::archive::by_server(repo)?
        .remove(&server)
        .unwrap_or_default();
    let mut files = vec![];
    let mut replayed = Replayed {
        transactions: 0,
        last: None,
        last_time: None,
    };
    let mut last: Option<Group> = None;
    let mut file = first.clone();
    // Where replay stops, and whether the target was found inside the
    // archive (else it stops at the archive's end).
    let mut stop = 0;
    let mut hit = false;
    let mut last_len = 0;
    loop {
        let Some(log) = archived.iter().find(|a| a.file == file) else {
            if file == first {
                return Err(unreachable(format!(
                    "binary log {file} of server {server}, where snapshot {id}'s consistent point is, is not archived: run `lifeboat binlog stream` against the server to archive its logs"
                )));
            }
            break;
        };
        let (object, is_partial) = (log.object.clone(), log.partial);
        let data = super::archive::read(repo, log)?;
        let from = if file == first { start } else { 0 };
        let mut before_backup: Option<Group> = None;
        let summary = binlog::scan(&data, |g| {
            if g.end <= from {
                if matches!(target, BinlogTarget::Time(t) if i64::from(g.time) >= t) {
                    before_backup = Some(*g);
                }
                return ControlFlow::Continue(());
            }
            if matches!(target, BinlogTarget::Time(t) if i64::from(g.time) >= t) {
                (stop, hit) = (g.start, true);
                return ControlFlow::Break(());
            }
            last = Some(*g);
            replayed.transactions += 1;
            if target == BinlogTarget::Gtid(g.gtid) {
                (stop, hit) = (g.end, true);
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })
        .map_err(|e| {
            RepoError::damaged(
                lifeboat_store::Kind::Log,
                &object,
                repo.location(),
                format!("not a valid binary log: {e}"),
            )
        })?;
        if let (Some(g), BinlogTarget::Time(t)) = (before_backup, target) {
            return Err(unreachable(format!(
                "{} is before snapshot {id}'s consistent point (it holds GTID {}, committed at {}): restore an older backup to reach it",
                time_words(t),
                g.gtid,
                time_words(g.time.into())
            )));
        }
        last_len = data.len() as u64;
        let path = dir.join(&file);
        std::fs::write(&path, &*data).map_err(|e| RepoError::io("write", &path, e))?;
        files.push(path);
        if hit {
            break;
        }
        // So far the archive is replayable to its last complete transaction.
        stop = summary.complete_to;
        // A partial is the log still being written: nothing follows it.
        match summary.rotate_to.or_else(|| next_file(&file)) {
            Some(next) if !is_partial => file = next,
            _ => break,
        }
    }
    match target {
        BinlogTarget::Latest => {}
        BinlogTarget::Time(t) if !hit => return Err(unreachable(past_end(id, t, server, last))),
        BinlogTarget::Gtid(g) if !hit => {
            return Err(unreachable(format!(
                "GTID {g} is not in the binary logs archived for server {server} after snapshot {id}'s consistent point ({first}:{start}){}",
                last.map(|l| format!("; they end at GTID {}", l.gtid)).unwrap_or_default()
            )))
        }
        _ => {}
    }
    replayed.last = last.map(|g| g.gtid.to_string());
    replayed.last_time = last.map(|g| time_words(g.time.into()));
    Ok(Replay {
        files,
        start,
        // `mariadb-binlog` fails on a stop position that no event starts at.
        stop: (stop < last_len).then_some(stop),
        replayed,
    })
}

fn past_end(id: &str, t: i64, server: u32, last: Option<Group>) -> String {
    format!(
        "{} is past the end of the binary logs archived for server {server} after snapshot {id} ({}): the archive cannot say what happened then; restore to a time before that, or replay everything with --latest",
        time_words(t),
        match last {
            Some(g) => format!("the last transaction archived is GTID {} at {}", g.gtid, time_words(g.time.into())),
            None => "no transaction was archived after the backup".into(),
        }
    )
}

/// Replays `replay` into the server `url`: only the changes of database
/// `from` (renamed `into`), or every change when `from` is `None`.
pub fn replay(
    url: &MariadbUrl,
    replay: &Replay,
    from: Option<&str>,
    into: Option<&str>,
) -> Result<()> {
    if replay.replayed.transactions == 0 {
        return Ok(());
    }
    let shown = url.with_database(into).to_string();
    let fail = |program: &str, message: String| SourceError::Tool {
        program: program.into(),
        target: shown.clone(),
        message,
    };
    let mut reader = Command::new("mariadb-binlog");
    // Replay cuts by byte position, never by GTID: a server whose binary
    // log is out of GTID order (gtid_strict_mode off) is still replayed.
    reader.arg("--skip-gtid-strict-mode");
    if let Some(f) = from {
        reader.arg(format!("--database={f}"));
        if let Some(i) = into.filter(|i| *i != f) {
            reader.arg(format!("--rewrite-db={f}->{i}"));
        }
    }
    reader
        .arg(format!("--start-position={}", replay.start))
        .args(&replay.files);
    if let Some(stop) = replay.stop {
        reader.arg(format!("--stop-position={stop}"));
    }
    reader
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut reader = reader
        .spawn()
        .map_err(|e| fail("mariadb-binlog", lifeboat_repo::error::io_words(&e)))?;
    let mut reader_said = StderrTail::spawn(reader.stderr.take().expect("piped"));
    let mut client = url.command("mariadb");
    client.arg("--batch").arg("--binary-mode");
    if let Some(i) = into {
        client.arg(format!("--database={i}"));
    }
    let mut client = client
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail("mariadb", lifeboat_repo::error::io_words(&e)))?;
    let mut client_said = StderrTail::spawn(client.stderr.take().expect("piped"));
    let relayed = relay(
        reader.stdout.take().expect("piped"),
        client.stdin.take().expect("piped"),
    );
    if relayed.is_err() {
        let _ = reader.kill();
    }
    let client_status = client.wait().map_err(|e| fail("mariadb", e.to_string()))?;
    let reader_status = reader
        .wait()
        .map_err(|e| fail("mariadb-binlog", e.to_string()))?;
    let last_line = |s: String| {
        s.trim()
            .lines()
            .last()
            .map_or_else(|| "failed".to_string(), str::to_string)
    };
    if !client_status.success() {
        return Err(fail(
            "mariadb",
            format!(
                "replaying the binary logs: {}",
                last_line(client_said.finish())
            ),
        ));
    }
    if !reader_status.success() {
        return Err(fail("mariadb-binlog", last_line(reader_said.finish())));
    }
    relayed.map_err(|e| fail("mariadb", format!("feeding it the replay: {e}")))
}

/// The newest MariaDB backup among `snapshots` whose consistent point
/// precedes `goal`: all of one database (or all of one server), else the
/// choice is ambiguous and refused.
pub fn choose(
    snapshots: Vec<(lifeboat_repo::Id, lifeboat_repo::Snapshot)>,
    goal: BinlogTarget,
) -> Result<(lifeboat_repo::Id, lifeboat_repo::Snapshot)> {
    let dumps: Vec<_> = snapshots
        .into_iter()
        .filter_map(|(id, s)| MariadbMeta::of(&s).map(|m| (id, s, m)))
        .collect();
    let mut sources: Vec<String> = dumps
        .iter()
        .map(|(_, s, m)| format!("{} ({})", m.url, s.paths.join(", ")))
        .collect();
    sources.sort();
    sources.dedup();
    if sources.is_empty() {
        return Err(SourceError::WrongSnapshot(
            "the repository has no MariaDB backup (the filters admit none)".into(),
        ));
    }
    if sources.len() > 1 {
        return Err(SourceError::Usage(format!(
            "backups of {} MariaDB sources match: {}; narrow `latest` with --path or --tag, or name a snapshot",
            sources.len(),
            sources.join("; ")
        )));
    }
    let precedes = |s: &lifeboat_repo::Snapshot, m: &MariadbMeta| match goal {
        BinlogTarget::Latest => true,
        BinlogTarget::Time(t) => s.time.as_second() < t,
        BinlogTarget::Gtid(g) => m
            .gtid
            .as_deref()
            .and_then(|p| binlog::parse_position(p).ok())
            .is_some_and(|p| p.iter().all(|b| b.domain != g.domain || b.seq < g.seq)),
    };
    dumps
        .into_iter()
        .filter(|(_, s, m)| precedes(s, m))
        .max_by_key(|(_, s, _)| s.time)
        .map(|(id, s, _)| (id, s))
        .ok_or_else(|| {
            unreachable(match goal {
                BinlogTarget::Time(t) => format!(
                    "{} is before the oldest MariaDB backup of {}: nothing restores to it",
                    time_words(t),
                    sources[0]
                ),
                _ => format!(
                    "every MariaDB backup of {} is at or after the goal: nothing restores to it",
                    sources[0]
                ),
            })
        })
}

/// The line `mariadb-binlog` writes after a GTID event's header to give
/// the replayed transaction its original sequence number.
const SEQ_NO: &[u8] = b"/*M!100001 SET @@session.gtid_seq_no=";

/// Copies `mariadb-binlog`'s script to the client, without the lines that
/// would give replayed transactions their original GTIDs: logged again
/// with them, they would put the target's binary log out of GTID order
/// (and a server in gtid_strict_mode refuses them). Replayed, they get
/// the target's next GTIDs, as the dump's load does.
///
/// Only a line of exactly that form within the few lines that follow a
/// GTID event's header (`#… GTID d-s-n …`, which `mariadb-binlog` writes
/// together with it) is dropped; statement text never stands there.
fn relay(from: impl std::io::Read, to: impl std::io::Write) -> std::io::Result<()> {
    use std::io::{BufRead, Write};
    let mut from = std::io::BufReader::with_capacity(1 << 20, from);
    let mut to = std::io::BufWriter::with_capacity(1 << 20, to);
    let mut line = Vec::new();
    // Lines left in the block after a GTID header.
    let mut after_gtid = 0u32;
    loop {
        line.clear();
        if from.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let is_seq_no = after_gtid > 0
            && line.starts_with(SEQ_NO)
            && line[SEQ_NO.len()..]
                .strip_suffix(b"*//*!*/;\n")
                .is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit));
        after_gtid = if line.starts_with(b"#") && line.windows(6).any(|w| w == b"\tGTID ") {
            5
        } else {
            after_gtid.saturating_sub(1)
        };
        if !is_seq_no {
            to.write_all(&line)?;
        }
    }
    to.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_sequence_number_after_a_gtid_header_is_dropped() {
        let script = "# at 615\n#261207 14:29:10 server id 1  end_log_pos 657 CRC32 0x23c42e95 \tGTID 0-1-3 trans\n/*M!100101 SET @@session.skip_parallel_replication=0*//*!*/;\n/*M!100001 SET @@session.gtid_domain_id=0*//*!*/;\n/*M!100001 SET @@session.server_id=1*//*!*/;\n/*M!100001 SET @@session.gtid_seq_no=3*//*!*/;\nSTART TRANSACTION\n/*!*/;\nINSERT INTO t VALUES ('\n/*M!100001 SET @@session.gtid_seq_no=4*//*!*/;\n')\n";
        let mut out = vec![];
        relay(script.as_bytes(), &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("gtid_seq_no=3"), "{out}");
        // The same text inside a statement, far from a GTID header, stays.
        assert!(out.contains("gtid_seq_no=4"), "{out}");
        assert!(out.contains("server_id=1") && out.contains("START TRANSACTION"));
        assert_eq!(
            out.len(),
            script.len() - "/*M!100001 SET @@session.gtid_seq_no=3*//*!*/;\n".len()
        );
    }
}
