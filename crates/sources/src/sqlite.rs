//! SQLite (`sqlite:///var/lib/app/app.db`): a consistent copy of a
//! database that other processes go on writing, taken with SQLite's online
//! backup API into a spool file (under `TMPDIR`), checked there
//! (`PRAGMA integrity_check`, rows per table counted) and then streamed
//! into the repository. In WAL mode the copy reads one snapshot and
//! writers go on; in rollback-journal mode writers wait for the copy
//! (seconds per GiB), as they wait for any reader.
//!
//! A restore writes the file beside its target under a temporary name,
//! checks it the same way against the counts the backup recorded, and
//! only then renames it into place: a target is never half-written, and an
//! existing one is replaced only with `--overwrite` (its stale `-wal`,
//! `-shm` and `-journal` files removed first: SQLite would replay them
//! onto the restored database).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lifeboat_repo::archiver::{NamedStream, StreamSet};
use lifeboat_repo::chunker::Chunking;
use lifeboat_repo::{browse, IndexedRepository, Snapshot};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use crate::counts::{compare, Restored, TableCount};
use crate::error::{Result, SourceError};

/// The URL scheme.
pub const SCHEME: &str = "sqlite";

/// How long the copy waits for a writer's lock before giving up.
const BUSY_WAIT: Duration = Duration::from_secs(60);

/// What a SQLite backup records in its snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqliteMeta {
    /// Always `sqlite`.
    pub kind: String,
    /// The database file, as given.
    pub path: String,
    /// The stream holding the copy (the file's own name).
    pub file: String,
    /// The SQLite library that made the copy.
    pub sqlite_version: String,
    /// The source's journal mode (`wal`, `delete`, …).
    pub journal_mode: String,
    /// Page size in bytes.
    pub page_size: u64,
    /// Size of the copy in bytes.
    pub bytes: u64,
    /// `PRAGMA integrity_check` of the copy (`ok`).
    pub integrity: String,
    /// Rows per table in the copy (schema `main`).
    pub tables: Vec<TableCount>,
}

impl SqliteMeta {
    /// The metadata of a snapshot, if it is a SQLite backup.
    pub fn of(snapshot: &Snapshot) -> Option<SqliteMeta> {
        let m: SqliteMeta = serde_json::from_value(snapshot.source.clone()?).ok()?;
        (m.kind == SCHEME).then_some(m)
    }
}

/// The file a `sqlite://` URL names: `sqlite:///abs/path.db`, or
/// `sqlite://rel/path.db` relative to the working directory; `%XX`
/// escapes decoded.
pub fn parse_url(url: &str) -> Result<PathBuf> {
    let bad = |why: &str| SourceError::Usage(format!("invalid URL {url}: {why}"));
    let rest = url
        .strip_prefix("sqlite://")
        .ok_or_else(|| bad("expected sqlite:///PATH"))?;
    if rest.contains('?') {
        return Err(bad(
            "sqlite URLs take no parameters (write a '?' in a file name as %3F)",
        ));
    }
    let path = crate::url::decode(rest).map_err(|e| bad(&e))?;
    if path.is_empty() || path.ends_with('/') {
        return Err(bad("name the database file: sqlite:///PATH/TO/FILE.db"));
    }
    Ok(PathBuf::from(path))
}

/// A SQLite database to back up.
pub struct SqliteSource {
    /// The URL as given.
    pub url: String,
    /// The database file.
    pub path: PathBuf,
}

impl SqliteSource {
    /// The source a `sqlite://` URL names.
    pub fn open(url: &str) -> Result<SqliteSource> {
        Ok(SqliteSource {
            path: parse_url(url)?,
            url: url.to_string(),
        })
    }
}

fn sqlite_error(target: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::Tool {
        program: "sqlite".into(),
        target: target.to_string(),
        message: e.to_string(),
    }
}

impl crate::Source for SqliteSource {
    fn display(&self) -> String {
        self.url.clone()
    }

    fn backup(&self) -> Result<Box<dyn StreamSet<'static>>> {
        let shown = self.url.as_str();
        let err = |e: rusqlite::Error| sqlite_error(shown, e);
        match std::fs::metadata(&self.path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(SourceError::Usage(format!(
                    "{shown}: {} is not a file",
                    self.path.display()
                )))
            }
            Err(e) => {
                return Err(SourceError::Usage(format!(
                    "{shown}: cannot read {}: {}",
                    self.path.display(),
                    lifeboat_repo::error::io_words(&e)
                )))
            }
        }
        let source = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        source.busy_timeout(BUSY_WAIT).map_err(err)?;
        let journal_mode: String = source
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(err)?;
        let spool = tempfile::Builder::new()
            .prefix(".lifeboat-sqlite-")
            .tempfile()
            .map_err(|e| {
                sqlite_error(
                    shown,
                    format!(
                        "cannot create the spool file in {}: {}",
                        std::env::temp_dir().display(),
                        lifeboat_repo::error::io_words(&e)
                    ),
                )
            })?;
        {
            let mut copy = Connection::open(spool.path()).map_err(err)?;
            copy_online(&source, &mut copy).map_err(|e| {
                sqlite_error(
                    shown,
                    format!(
                        "the copy into {} failed: {e}",
                        std::env::temp_dir().display()
                    ),
                )
            })?;
        }
        drop(source);
        let copy = Connection::open_with_flags(spool.path(), OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(err)?;
        let integrity = integrity_check(&copy).map_err(err)?;
        if integrity != "ok" {
            return Err(sqlite_error(
                shown,
                format!("the database fails PRAGMA integrity_check: {integrity}; no snapshot was written"),
            ));
        }
        let tables = count_rows(&copy).map_err(err)?;
        let page_size: i64 = copy
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(err)?;
        drop(copy);
        let file = File::open(spool.path()).map_err(|e| sqlite_error(shown, e))?;
        let bytes = file.metadata().map_err(|e| sqlite_error(shown, e))?.len();
        // Unlinked now: the open file is all that is left of the spool.
        drop(spool);
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "database.sqlite".into());
        Ok(Box::new(SqliteBackup {
            file: Some(file),
            meta: SqliteMeta {
                kind: SCHEME.into(),
                path: self.path.display().to_string(),
                file: name,
                sqlite_version: rusqlite::version().to_string(),
                journal_mode: journal_mode.to_lowercase(),
                page_size: page_size as u64,
                bytes,
                integrity,
                tables,
            },
        }))
    }
}

/// Copies `source` into `copy` in one step of the online backup API: one
/// read transaction, so one consistent state (a copy made in several
/// steps restarts whenever another process writes, and may never end).
fn copy_online(source: &Connection, copy: &mut Connection) -> rusqlite::Result<()> {
    let backup = Backup::new(source, copy)?;
    let deadline = Instant::now() + BUSY_WAIT;
    loop {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            // A writer holds the lock: try again until the deadline.
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    Some(format!(
                        "a writer held the database locked for {}s",
                        BUSY_WAIT.as_secs()
                    )),
                ))
            }
        }
    }
}

/// `PRAGMA integrity_check`'s verdict, its lines joined (`ok` when whole).
fn integrity_check(db: &Connection) -> rusqlite::Result<String> {
    let mut stmt = db.prepare("PRAGMA integrity_check")?;
    let lines: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(lines.join("; "))
}

/// Rows in every ordinary table (not SQLite's own, not virtual ones).
fn count_rows(db: &Connection) -> rusqlite::Result<Vec<TableCount>> {
    let mut stmt = db.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name",
    )?;
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    names
        .into_iter()
        .map(|table| {
            let q = format!(
                "SELECT count(*) FROM main.\"{}\"",
                table.replace('"', "\"\"")
            );
            let rows: i64 = db.query_row(&q, [], |r| r.get(0))?;
            Ok(TableCount {
                schema: "main".into(),
                table,
                rows: rows as u64,
            })
        })
        .collect()
}

struct SqliteBackup {
    file: Option<File>,
    meta: SqliteMeta,
}

impl StreamSet<'static> for SqliteBackup {
    fn next_stream(&mut self) -> std::io::Result<Option<NamedStream<'static>>> {
        Ok(self.file.take().map(|f| NamedStream {
            name: self.meta.file.clone(),
            reader: Box::new(f),
            chunking: Chunking::ContentDefined,
        }))
    }

    fn finish(&mut self) -> std::io::Result<Option<serde_json::Value>> {
        serde_json::to_value(&self.meta)
            .map(Some)
            .map_err(std::io::Error::other)
    }
}

/// Restores the SQLite backup `snapshot` to the file `target` names
/// (`None`: `--validate-only`, checked in a spool file and removed),
/// checked with `PRAGMA integrity_check` and against the recorded counts
/// before it is renamed into place.
pub fn restore(
    repo: &IndexedRepository,
    snapshot: &Snapshot,
    id: &str,
    target: Option<&str>,
    overwrite: bool,
) -> Result<Restored> {
    let meta = SqliteMeta::of(snapshot).ok_or_else(|| {
        SourceError::WrongSnapshot(format!("snapshot {id} is not a SQLite backup"))
    })?;
    let path = target.map(parse_url).transpose()?;
    let shown = target.map_or_else(|| format!("snapshot {id}"), str::to_string);
    let io = |what: &str, e: std::io::Error| {
        sqlite_error(
            &shown,
            format!("{what}: {}", lifeboat_repo::error::io_words(&e)),
        )
    };
    let mut replaced = false;
    if let Some(p) = &path {
        if p.symlink_metadata().is_ok() {
            if !overwrite {
                return Err(SourceError::Exists {
                    what: p.display().to_string(),
                });
            }
            replaced = true;
        }
    }
    // Beside the target, so the rename into place cannot cross filesystems.
    let dir = match &path {
        Some(p) => parent_dir(p),
        None => std::env::temp_dir(),
    };
    let mut staged = tempfile::Builder::new()
        .prefix(".lifeboat-restore-")
        .tempfile_in(&dir)
        .map_err(|e| io(&format!("cannot create a file in {}", dir.display()), e))?;
    let node = browse::find_node(repo, snapshot, id, &format!("/{}", meta.file))?;
    browse::dump(repo, &node, staged.as_file_mut())?;
    staged
        .as_file()
        .sync_all()
        .map_err(|e| io("cannot sync the restored file", e))?;
    let db = Connection::open_with_flags(staged.path(), OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| sqlite_error(&shown, e))?;
    let integrity = integrity_check(&db).map_err(|e| sqlite_error(&shown, e))?;
    if integrity != "ok" {
        return Err(SourceError::Mismatch(format!(
            "the restored copy of snapshot {id} fails PRAGMA integrity_check: {integrity}; {} was not touched",
            path.as_ref().map_or("nothing".into(), |p| p.display().to_string())
        )));
    }
    let found = count_rows(&db).map_err(|e| sqlite_error(&shown, e))?;
    drop(db);
    let count_of = |t: &TableCount| found.iter().find(|f| f.table == t.table).map(|f| f.rows);
    let result = compare(target.map(str::to_string), &meta.tables, count_of, replaced);
    let Some(path) = path else {
        return Ok(result);
    };
    if let Some(e) = result.mismatch_error(&format!("{} was not touched", path.display())) {
        return Err(e);
    }
    if replaced {
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut stale = path.clone().into_os_string();
            stale.push(suffix);
            match std::fs::remove_file(&stale) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(io(
                        &format!("cannot remove {}", Path::new(&stale).display()),
                        e,
                    ))
                }
            }
        }
    }
    staged
        .persist(&path)
        .map_err(|e| io(&format!("cannot rename into {}", path.display()), e.error))?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(&format!("cannot sync {}", dir.display()), e))?;
    Ok(result)
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms() {
        assert_eq!(
            parse_url("sqlite:///var/lib/app.db").unwrap(),
            Path::new("/var/lib/app.db")
        );
        assert_eq!(parse_url("sqlite://app.db").unwrap(), Path::new("app.db"));
        assert_eq!(
            parse_url("sqlite:///srv/my%20app.db").unwrap(),
            Path::new("/srv/my app.db")
        );
        for (bad, why) in [
            ("sqlite:///x.db?mode=ro", "no parameters"),
            ("sqlite:///srv/", "name the database file"),
            ("sqlite://", "name the database file"),
            ("sqlite:///a%zz", "invalid escape"),
        ] {
            let e = parse_url(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
