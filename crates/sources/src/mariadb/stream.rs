//! `binlog stream`: a server's binary logs received as a replica receives
//! them (`mariadb-binlog --read-from-remote-server --raw --stop-never`,
//! into a local spool) and made durable in the repository at least every
//! second.
//!
//! A log the server has rotated away from becomes a whole log object,
//! `binlog-<server_id>-<file>`, checked event by event (framing and CRC32)
//! before it is stored; the log being written is stored whenever it
//! changed as a partial (see [`crate::partial`]), cut after its last
//! complete event. A restore replays the whole logs and then the newest
//! partial, so the data-loss window on a crash of the server is about a
//! second.
//!
//! The stream resumes where it stopped: from the newest log in its spool,
//! else after the newest log archived for this server, else from the
//! oldest log the server still has.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use lifeboat_repo::{RepoError, Repository};

use super::binlog::{self, Summary};
use super::MariadbUrl;
use crate::error::{Result, SourceError};
use crate::partial;

/// The object name of the whole binary log `file` of server `server_id`:
/// `binlog-<server_id>-<base>-<number>` (`binlog.000042` of server 1 is
/// `binlog-1-binlog-000042`). Object names are letters, digits, `-` and
/// `_`, so any other byte of the base is written `_XX` (hex).
pub fn object_name(server_id: u32, file: &str) -> String {
    let (base, n) = file.rsplit_once('.').unwrap_or((file, ""));
    let mut enc = String::new();
    for b in base.bytes() {
        if b.is_ascii_alphanumeric() {
            enc.push(b as char);
        } else {
            enc.push_str(&format!("_{b:02x}"));
        }
    }
    format!("binlog-{server_id}-{enc}-{n}")
}

/// The server id and file name an [`object_name`] encodes.
pub fn parse_object_name(object: &str) -> Option<(u32, String)> {
    let rest = object.strip_prefix("binlog-")?;
    let (id, rest) = rest.split_once('-')?;
    let (enc, n) = rest.rsplit_once('-')?;
    let mut base = vec![];
    let mut bytes = enc.bytes();
    while let Some(b) = bytes.next() {
        if !b.is_ascii_alphanumeric() && b != b'_' {
            return None;
        }
        if b == b'_' {
            let hex = [bytes.next()?, bytes.next()?];
            base.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            base.push(b);
        }
    }
    let file = format!("{}.{n}", String::from_utf8(base).ok()?);
    Some((id.parse().ok()?, file)).filter(|(_, f)| file_number(f).is_some())
}

/// The number a binary log's name ends with (`binlog.000042` → 42).
pub fn file_number(file: &str) -> Option<u64> {
    let (_, n) = file.rsplit_once('.')?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .then(|| n.parse().ok())
        .flatten()
}

/// The name of the log after `file` (`binlog.000042` → `binlog.000043`),
/// the number's width kept.
pub fn next_file(file: &str) -> Option<String> {
    let (base, n) = file.rsplit_once('.')?;
    let next = file_number(file)? + 1;
    Some(format!("{base}.{next:0width$}", width = n.len()))
}

/// Options of `binlog stream`.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// The local spool `mariadb-binlog` writes into.
    pub spool: PathBuf,
    /// The replica server id the stream connects with (`None`:
    /// `mariadb-binlog`'s own); it must differ from every server's and
    /// every other stream's.
    pub server_id: Option<u32>,
}

pub use crate::receiver::StreamStatus;

/// Streams until `stop` is set: `mariadb-binlog` restarted whenever it
/// ends (a lost connection, a restarted server), the spool uploaded every
/// quarter second.
pub fn run(
    repo: &Repository,
    url: &MariadbUrl,
    opts: &StreamOptions,
    stop: &AtomicBool,
    mut report: impl FnMut(&StreamStatus),
) -> Result<()> {
    let shown = url.to_string();
    let server_id = server_id(url)?;
    let on_server: Vec<String> = url
        .query(None, "SHOW BINARY LOGS")?
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect();
    create_private_dir(&opts.spool)?;
    // Bytes of each log stored as a partial, from the stored partials at start.
    let mut seen: HashMap<String, u64> = HashMap::new();
    if let Some(newest) = spooled(&opts.spool)?.pop() {
        if let Some(p) = partial::newest(repo, &object_name(server_id, &newest))? {
            seen.insert(newest, repo.get_log(&p)?.len() as u64);
        }
    }
    crate::receiver::supervise(
        "mariadb-binlog",
        stop,
        || {
            let from = start_file(repo, server_id, &opts.spool, &on_server)?;
            let mut cmd = url.command("mariadb-binlog");
            cmd.args(["--read-from-remote-server", "--raw", "--stop-never"])
                .arg(format!("--result-file={}/", opts.spool.display()))
                .arg(&from);
            if let Some(id) = opts.server_id {
                cmd.arg(format!("--stop-never-slave-server-id={id}"));
            }
            Ok(cmd)
        },
        |m| tool(&shown, m),
        || upload(repo, server_id, &opts.spool, &mut seen, &mut report),
    )
}

/// The server's `@@server_id`, once binary logging is known to be on.
pub fn server_id(url: &MariadbUrl) -> Result<u32> {
    let row = url
        .query(None, "SELECT @@server_id, @@log_bin")?
        .into_iter()
        .next()
        .unwrap_or_default();
    match row.as_slice() {
        [id, on] if on == "1" => id
            .parse()
            .map_err(|_| tool(&url.to_string(), format!("server id {id:?}"))),
        _ => Err(SourceError::Usage(format!(
            "binary logging is off on {url}: start the server with log_bin (and a server_id) to archive its binary logs"
        ))),
    }
}

fn tool(target: &str, message: String) -> SourceError {
    SourceError::Tool {
        program: "mariadb-binlog".into(),
        target: target.to_string(),
        message,
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| RepoError::io("create", dir, e).into())
}

/// The binary logs in the spool, oldest first.
fn spooled(spool: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(spool)
        .map_err(|e| RepoError::io("list", spool, e))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| file_number(n).is_some())
        .collect();
    names.sort_by_key(|f| file_number(f));
    Ok(names)
}

/// Where the stream starts: the log it was receiving, else the one after
/// the newest archived, else the server's oldest.
fn start_file(
    repo: &Repository,
    server_id: u32,
    spool: &Path,
    on_server: &[String],
) -> Result<String> {
    if let Some(newest) = spooled(spool)?.pop() {
        return Ok(newest);
    }
    let oldest = on_server.first().cloned().ok_or_else(|| {
        SourceError::Usage("the server lists no binary logs (SHOW BINARY LOGS is empty)".into())
    })?;
    let whole = super::archive::by_server(repo)?
        .remove(&server_id)
        .unwrap_or_default()
        .into_iter()
        .rfind(|a| !a.partial);
    let Some(next) = whole.and_then(|a| next_file(&a.file)) else {
        return Ok(oldest);
    };
    if on_server.contains(&next) {
        return Ok(next);
    }
    tracing::warn!(
        "binary log {next} is no longer on the server (the oldest is {oldest}): the archive has a gap there, and no restore can replay across it"
    );
    Ok(oldest)
}

/// One pass over the spool: every log but the newest is whole and stored
/// as such (then leaves the spool); the newest, if it changed, is stored
/// as a partial.
fn upload(
    repo: &Repository,
    server_id: u32,
    spool: &Path,
    seen: &mut HashMap<String, u64>,
    report: &mut impl FnMut(&StreamStatus),
) -> Result<()> {
    let names = spooled(spool)?;
    let Some((newest, whole)) = names.split_last() else {
        return Ok(());
    };
    for name in whole {
        let path = spool.join(name);
        let lag = changed(&path).1.elapsed().unwrap_or_default();
        let bytes = std::fs::read(&path).map_err(|e| RepoError::io("read", &path, e))?;
        let s = check(&path, &bytes)?;
        if s.truncated {
            return Err(damaged(
                &path,
                "it ends inside an event, yet a newer log follows it",
            ));
        }
        let object = object_name(server_id, name);
        repo.put_log(&object, &bytes)?;
        partial::supersede(repo, &object)?;
        std::fs::remove_file(&path).map_err(|e| RepoError::io("remove", &path, e))?;
        seen.remove(name);
        report(&StreamStatus {
            file: name.clone(),
            partial: false,
            lag,
        });
    }
    // A log only grows; after a reconnect `mariadb-binlog` writes it anew
    // from its start, and a shorter copy must not replace what is stored.
    let path = spool.join(newest);
    let (size, modified) = changed(&path);
    let stored = seen.get(newest).copied().unwrap_or(0);
    if size <= stored {
        return Ok(());
    }
    let bytes = std::fs::read(&path).map_err(|e| RepoError::io("read", &path, e))?;
    let s = check(&path, &bytes)?;
    if s.len <= stored {
        return Ok(());
    }
    // The event being written is left for the next pass.
    partial::put(
        repo,
        &object_name(server_id, newest),
        &bytes[..s.len as usize],
    )?;
    seen.insert(newest.clone(), s.len);
    report(&StreamStatus {
        file: newest.clone(),
        partial: true,
        lag: modified.elapsed().unwrap_or_default(),
    });
    Ok(())
}

fn changed(path: &Path) -> (u64, SystemTime) {
    std::fs::metadata(path)
        .map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
        .unwrap_or((0, SystemTime::UNIX_EPOCH))
}

fn check(path: &Path, bytes: &[u8]) -> Result<Summary> {
    binlog::scan(bytes, |_| std::ops::ControlFlow::Continue(()))
        .map_err(|e| damaged(path, &e.to_string()))
}

fn damaged(path: &Path, why: &str) -> SourceError {
    SourceError::Mismatch(format!(
        "binary log {} received from the server is not valid: {why}; nothing of it was stored",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names_count_on() {
        assert_eq!(file_number("mysql-bin.000042"), Some(42));
        assert_eq!(
            next_file("mysql-bin.000042").as_deref(),
            Some("mysql-bin.000043")
        );
        assert_eq!(next_file("b.999999").as_deref(), Some("b.1000000"));
        assert_eq!(file_number("binlog.index"), None);
        assert_eq!(file_number("binlog."), None);
        for (id, file, object) in [
            (7, "b.000001", "binlog-7-b-000001"),
            (1, "mysql-bin.000042", "binlog-1-mysql_2dbin-000042"),
            (3, "my_log.bin.1000000", "binlog-3-my_5flog_2ebin-1000000"),
        ] {
            assert_eq!(object_name(id, file), object);
            assert!(lifeboat_store::validate_name(object).is_ok());
            assert_eq!(parse_object_name(object), Some((id, file.to_string())));
        }
        assert_eq!(parse_object_name("binlog-1-b-000001-partial-00ff"), None);
        assert_eq!(parse_object_name("pg-1-000000010000000000000001"), None);
    }
}
