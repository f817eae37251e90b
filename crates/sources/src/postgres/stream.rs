//! `wal stream`: WAL received as the server writes it (`pg_receivewal`
//! through a physical replication slot, into a local spool) and made
//! durable in the repository at least every second, so the data-loss
//! window on a primary crash is about a second, not a segment or
//! `archive_timeout`.
//!
//! Completed segments become ordinary WAL log objects (as `wal push`
//! makes them). The segment being written is uploaded whenever it changed
//! as a partial object (`…-partial-<time>`, the newest replacing older
//! ones); `wal fetch` serves the newest partial of a segment that was never
//! completed, which is how a restore after a crash replays up to the last
//! streamed record.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use lifeboat_repo::{RepoError, Repository};

use super::program;
use super::psql::Session;
use super::wal::{object_name, WalFile};
use crate::error::{Result, SourceError};
use crate::partial;
use crate::url::ConnUrl;

/// Options of `wal stream`.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// The physical replication slot (created if missing), so the server
    /// keeps the WAL the stream has not received yet.
    pub slot: String,
    /// Flush every write at once and report it, so the server can count
    /// the stream as a synchronous standby (`synchronous_standby_names`
    /// naming `application_name` `lifeboat`).
    pub synchronous: bool,
    /// The local spool `pg_receivewal` writes into.
    pub spool: PathBuf,
}

pub use crate::receiver::StreamStatus;

/// Streams until `stop` is set: `pg_receivewal` restarted whenever it ends
/// (a lost connection, a restarted server), the spool uploaded every
/// quarter second.
pub fn run(
    repo: &Repository,
    url: &ConnUrl,
    opts: &StreamOptions,
    stop: &AtomicBool,
    mut report: impl FnMut(&StreamStatus),
) -> Result<()> {
    let shown = url.to_string();
    let control = url.with_dbname(url.dbname.as_deref().unwrap_or("postgres"));
    let mut s = Session::connect(&control)?;
    let sys: u64 = s
        .value("SELECT system_identifier FROM pg_control_system()")?
        .parse()
        .map_err(|_| SourceError::Tool {
            program: "psql".into(),
            target: shown.clone(),
            message: "no system identifier".into(),
        })?;
    s.close()?;
    std::fs::create_dir_all(&opts.spool).map_err(|e| RepoError::io("create", &opts.spool, e))?;
    let created = receivewal(url, opts)
        .args(["--create-slot", "--if-not-exists"])
        .output()
        .map_err(|e| tool(&shown, lifeboat_repo::error::io_words(&e)))?;
    if !created.status.success() {
        return Err(tool(
            &shown,
            super::psql::last_error(&String::from_utf8_lossy(&created.stderr)),
        ));
    }
    let mut seen: HashMap<String, (u64, std::time::SystemTime)> = HashMap::new();
    crate::receiver::supervise(
        "pg_receivewal",
        stop,
        || {
            let mut cmd = receivewal(url, opts);
            cmd.arg(format!("--directory={}", opts.spool.display()))
                .args(["--no-loop", "--status-interval=1"]);
            if opts.synchronous {
                cmd.arg("--synchronous");
            }
            Ok(cmd)
        },
        |m| tool(&shown, m),
        || upload(repo, sys, &opts.spool, &mut seen, &mut report),
    )
}

fn tool(target: &str, message: String) -> SourceError {
    SourceError::Tool {
        program: "pg_receivewal".into(),
        target: target.to_string(),
        message,
    }
}

fn receivewal(url: &ConnUrl, opts: &StreamOptions) -> Command {
    let mut cmd = Command::new(program("pg_receivewal"));
    cmd.arg(format!("--slot={}", opts.slot))
        .arg("--no-password")
        .envs(url.env())
        .env("PGAPPNAME", "lifeboat");
    cmd
}

/// One pass over the spool: completed segments and history files become
/// WAL objects (and leave the spool); a changed partial segment is
/// uploaded anew.
fn upload(
    repo: &Repository,
    sys: u64,
    spool: &Path,
    seen: &mut HashMap<String, (u64, std::time::SystemTime)>,
    report: &mut impl FnMut(&StreamStatus),
) -> Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(spool)
        .map_err(|e| RepoError::io("list", spool, e))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let path = spool.join(&name);
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let changed = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        let lag = changed.elapsed().unwrap_or_default();
        if let Some(segment) = name.strip_suffix(".partial") {
            if !matches!(WalFile::parse(segment), Ok(WalFile::Segment { .. })) {
                continue;
            }
            if seen.get(&name) == Some(&(meta.len(), changed)) {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| RepoError::io("read", &path, e))?;
            partial::put(repo, &object_name(sys, segment), &bytes)?;
            seen.insert(name.clone(), (meta.len(), changed));
            report(&StreamStatus {
                file: segment.to_string(),
                partial: true,
                lag,
            });
            continue;
        }
        match WalFile::parse(&name) {
            Ok(WalFile::Segment { .. }) | Ok(WalFile::History(_)) => {}
            _ => continue,
        }
        let bytes = std::fs::read(&path).map_err(|e| RepoError::io("read", &path, e))?;
        repo.put_log(&object_name(sys, &name), &bytes)?;
        partial::supersede(repo, &object_name(sys, &name))?;
        std::fs::remove_file(&path).map_err(|e| RepoError::io("remove", &path, e))?;
        seen.remove(&format!("{name}.partial"));
        report(&StreamStatus {
            file: name,
            partial: false,
            lag,
        });
    }
    Ok(())
}
