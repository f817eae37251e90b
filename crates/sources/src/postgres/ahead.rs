//! Archiving ahead: `wal push` is on the server's critical path, and most
//! of one push is opening the repository (the password's key derivation).
//! So after archiving the segment it was asked for, `wal push` starts one
//! background `wal push-ahead`, which archives the other WAL files waiting
//! in `pg_wal/archive_status` as `.ready` (oldest first, in parallel) and
//! records each in `pg_wal/lifeboat-pushed/<name>` once it is durable in
//! the repository. When the server then asks for one of them, `wal push`
//! finds the record, checks that the file still has exactly the recorded
//! content (BLAKE3) for the same repository, and acknowledges at once,
//! without opening the repository. pgBackRest's asynchronous archive-push
//! works the same way (its spool's `.ok` files).
//!
//! A record only ever shortcuts a push whose bytes are already durable in
//! that repository; a missing, stale (older than an hour) or different
//! record means an ordinary push.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use lifeboat_repo::{RepoError, Repository};

use super::wal::{push, WalFile};
use crate::error::Result;

/// How long a record may shortcut a push.
const FRESH: Duration = Duration::from_secs(3600);

/// Where the records of files archived ahead live.
pub fn records_dir(pgdata: &Path) -> PathBuf {
    pgdata.join("pg_wal").join("lifeboat-pushed")
}

fn record_text(repository: &str, bytes: &[u8]) -> String {
    format!("{repository}\n{}\n", blake3::hash(bytes).to_hex())
}

/// Whether the WAL file at `path` was archived ahead into `repository`
/// with exactly its present bytes. The record is used up either way.
pub fn archived_ahead(path: &Path, pgdata: &Path, repository: &str) -> Result<bool> {
    let Some(name) = path.file_name() else {
        return Ok(false);
    };
    let record = records_dir(pgdata).join(name);
    let Ok(text) = std::fs::read_to_string(&record) else {
        return Ok(false);
    };
    let fresh = std::fs::metadata(&record)
        .and_then(|m| m.modified())
        .is_ok_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() < FRESH);
    let bytes = std::fs::read(path).map_err(|e| RepoError::io("read", path, e))?;
    let _ = std::fs::remove_file(&record);
    Ok(fresh && text == record_text(repository, &bytes))
}

/// The WAL files waiting in `pg_wal/archive_status` (`.ready`) without a
/// record yet, oldest first (history files before segments), at most `max`.
pub fn waiting(pgdata: &Path, max: usize) -> Vec<String> {
    let status = pgdata.join("pg_wal").join("archive_status");
    let records = records_dir(pgdata);
    let Ok(entries) = std::fs::read_dir(&status) else {
        return vec![];
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.strip_suffix(".ready")?.to_string();
            WalFile::parse(&n).ok()?;
            (!records.join(&n).exists()).then_some(n)
        })
        .collect();
    names.sort_by_key(|n| (!n.ends_with(".history"), n.clone()));
    names.truncate(max);
    names
}

/// Archives the files [`waiting`] names but `skip` (at most `max`) on `threads`
/// threads, recording each once durable; under an exclusive lock, so one
/// runs at a time per data directory (another returns at once). Returns
/// how many it archived; a file that fails is left for the server to push.
pub fn push_ahead(
    repo: &Repository,
    pgdata: &Path,
    repository: &str,
    skip: &[String],
    max: usize,
    threads: usize,
) -> Result<usize> {
    let dir = records_dir(pgdata);
    std::fs::create_dir_all(&dir).map_err(|e| RepoError::io("create", &dir, e))?;
    let lock_path = dir.join(".lock");
    let lock =
        std::fs::File::create(&lock_path).map_err(|e| RepoError::io("create", &lock_path, e))?;
    if lock.try_lock().is_err() {
        return Ok(0);
    }
    // Old records whose file the server never asked for again.
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() > FRESH);
            if old && e.file_name() != ".lock" {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let mut names = waiting(pgdata, max + skip.len());
    names.retain(|n| !skip.contains(n));
    names.truncate(max);
    names.reverse(); // popped oldest first
    let queue = std::sync::Mutex::new(names);
    let done = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let Some(name) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop() else {
                    break;
                };
                let path = pgdata.join("pg_wal").join(&name);
                let Ok(bytes) = std::fs::read(&path) else {
                    continue; // archived and removed meanwhile
                };
                if push(repo, &path, pgdata).is_ok()
                    && record(&dir, &name, repository, &bytes).is_ok()
                {
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    drop(lock);
    Ok(done.into_inner())
}

/// Writes the record of `name` (to a temporary name, then renamed: a
/// record is whole or absent). Not synced: a record lost in a crash only
/// costs an ordinary push.
fn record(dir: &Path, name: &str, repository: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(record_text(repository, bytes).as_bytes())?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name))
}
