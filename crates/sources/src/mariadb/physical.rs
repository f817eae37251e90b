//! MariaDB physical backups (`--physical`), for databases too big to dump:
//! `mariadb-backup --backup --stream=xbstream` copies the server's data
//! files while it runs, streamed into the repository as one file while
//! [`xbstream`](super::xbstream) checks every chunk and reads the backup's
//! binary-log point. It reads the data directory itself, so it runs on the
//! database host, as a user that can read it.
//!
//! A restore unpacks the archive into a new data directory (`mbstream
//! -x`) and prepares it (`mariadb-backup --prepare`: the copied redo log
//! applied, so the files are consistent at the backup's point); the
//! server is then started on it.

use std::path::Path;
use std::process::{Command, Stdio};

use lifeboat_repo::archiver::{SourceFailed, StreamSet};
use lifeboat_repo::{browse, IndexedRepository, RepoError, Snapshot};

use super::xbstream::{self, XbScan};
use super::{MariadbMeta, MariadbUrl};
use crate::counts::Restored;
use crate::error::{Result, SourceError};
use crate::producer::{Producer, StderrTail};
use crate::tee::{read_stored, tee, TeedStream};

/// The stream a physical backup is stored as.
pub const STREAM: &str = "server.xbstream";

/// Starts a physical backup of the server `url` names (every database).
pub fn backup(url: &MariadbUrl) -> Result<Box<dyn StreamSet<'static>>> {
    if let Some(db) = &url.database {
        return Err(SourceError::Usage(format!(
            "--physical copies the whole server: give it without a database (not /{db})"
        )));
    }
    let mut meta = MariadbMeta::connect(url, "physical", STREAM.into())?;
    let scratch =
        tempfile::tempdir().map_err(|e| RepoError::io("create", std::env::temp_dir(), e))?;
    let mut cmd = url.command("mariadb-backup");
    cmd.args(["--backup", "--stream=xbstream"])
        .arg(format!("--target-dir={}", scratch.path().display()));
    let shown = url.to_string();
    let producer = Producer::spawn(cmd, "mariadb-backup", &shown, true)?;
    let teed = tee(
        producer,
        "the stream is not a complete mariadb-backup archive",
        xbstream::scan,
    );
    Ok(Box::new(TeedStream::new(
        teed,
        STREAM.into(),
        format!("the mariadb-backup archive of {shown}"),
        move |scan: XbScan| {
            // mariadb-backup's scratch directory lives as long as the backup.
            let _ = &scratch;
            complete(&scan).map_err(|why| {
                SourceFailed::io(format!(
                    "the mariadb-backup archive of {} {why}; no snapshot was written",
                    meta.url
                ))
            })?;
            (meta.binlog_file, meta.binlog_pos, meta.gtid) = scan.binlog();
            meta.files = Some(scan.files);
            meta.lsn = scan.checkpoint("to_lsn");
            serde_json::to_value(&meta).map_err(std::io::Error::other)
        },
    )))
}

/// Whether an archive holds a whole backup: every file ended, and the
/// checkpoints mariadb-backup writes last.
fn complete(scan: &XbScan) -> std::result::Result<(), String> {
    if let Some(f) = scan.open.first() {
        return Err(format!("ends inside {f}: it did not run to its end"));
    }
    if scan.checkpoint("to_lsn").is_none() {
        return Err("lacks xtrabackup_checkpoints: it did not run to its end".into());
    }
    Ok(())
}

/// Restores (into the new data directory `target`) or validates (`None`)
/// the physical backup `snapshot`.
pub fn restore(
    repo: &IndexedRepository,
    snapshot: &Snapshot,
    id: &str,
    meta: &MariadbMeta,
    target: Option<&str>,
    overwrite: bool,
) -> Result<Restored> {
    let node = browse::find_node(repo, snapshot, id, &format!("/{}", meta.dump))?;
    let done = |target: Option<String>| Restored {
        target,
        tables: vec![],
        rows: 0,
        replaced: false,
        replayed: None,
    };
    let Some(target) = target else {
        let scan = read_stored(repo, &node, xbstream::scan)?
            .map_err(|e| SourceError::Mismatch(format!("the stored archive is not valid: {e}")))?;
        complete(&scan).map_err(|why| {
            SourceError::Mismatch(format!("the stored archive of snapshot {id} {why}"))
        })?;
        return Ok(done(None));
    };
    let dir = Path::new(target);
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(|e| RepoError::io("read", dir, e))?
            .next()
            .is_none();
        if !empty && !overwrite {
            return Err(SourceError::Exists {
                what: format!("data directory {}", dir.display()),
            });
        }
        if !empty {
            return Err(SourceError::Usage(format!(
                "{} is not empty: a physical restore needs an empty (or new) data directory; move the old one aside first",
                dir.display()
            )));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| RepoError::io("create", dir, e))?;
    let unpacked = unpack_and_prepare(repo, &node, dir);
    if unpacked.is_err() {
        // Nothing half-restored is left for a server to start on.
        let _ = std::fs::remove_dir_all(dir);
    }
    unpacked?;
    Ok(done(Some(dir.display().to_string())))
}

fn unpack_and_prepare(
    repo: &IndexedRepository,
    node: &lifeboat_repo::tree::Node,
    dir: &Path,
) -> Result<()> {
    let shown = dir.display().to_string();
    let mut unpack = Command::new("mbstream");
    unpack.arg("-x").arg("-C").arg(dir).stdout(Stdio::null());
    crate::producer::feed_stored(repo, node, unpack, "mbstream", &shown, false)??;
    let out = Command::new("mariadb-backup")
        .arg("--prepare")
        .arg(format!("--target-dir={}", dir.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            let said = StderrTail::spawn(c.stderr.take().expect("piped"));
            let status = c.wait()?;
            let mut said = said;
            Ok((status, said.finish()))
        })
        .map_err(|e| SourceError::Tool {
            program: "mariadb-backup --prepare".into(),
            target: shown.clone(),
            message: lifeboat_repo::error::io_words(&e),
        })?;
    if !out.0.success() || !out.1.contains("completed OK!") {
        return Err(SourceError::Tool {
            program: "mariadb-backup --prepare".into(),
            target: shown,
            message: out.1.lines().last().unwrap_or("failed").to_string(),
        });
    }
    Ok(())
}
