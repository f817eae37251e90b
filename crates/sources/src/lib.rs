//! lifeboat's sources: how each kind of data is read out into a repository
//! and written back. A source produces named streams (or trees) plus
//! metadata for the snapshot, through the repository's
//! [`StreamSet`](lifeboat_repo::archiver::StreamSet) seam; the repository
//! learns nothing about databases.
//!
//! Sources and targets are addressed by URL (`postgres://user@host/db`),
//! the forms plan files use too. Passwords reach the programs a source
//! drives through their environment, never their arguments, and are never
//! shown.

pub mod command;
pub mod counts;
pub mod error;
pub mod mariadb;
pub mod partial;
pub mod postgres;
pub mod producer;
pub mod receiver;
pub mod redis;
pub mod sqlite;
pub mod tee;
pub mod url;

use lifeboat_repo::archiver::StreamSet;

pub use error::{Result, SourceError};
pub use url::ConnUrl;

/// One kind of data that lifeboat backs up and restores.
pub trait Source: Send {
    /// The source as it may be shown (no password).
    fn display(&self) -> String;
    /// Starts a backup: the streams to store, and the snapshot's metadata
    /// once they were read in full.
    fn backup(&self) -> Result<Box<dyn StreamSet<'static>>>;
}

/// A PostgreSQL database, backed up logically.
pub struct PostgresLogical {
    url: ConnUrl,
}

impl Source for PostgresLogical {
    fn display(&self) -> String {
        self.url.to_string()
    }
    fn backup(&self) -> Result<Box<dyn StreamSet<'static>>> {
        // No database named: every database, and the roles and other globals.
        Ok(match self.url.dbname {
            Some(_) => Box::new(postgres::LogicalBackup::start(&self.url)?),
            None => Box::new(postgres::ClusterBackup::start(&self.url)?),
        })
    }
}

/// A PostgreSQL cluster, backed up physically (a base backup).
pub struct PostgresPhysical {
    url: ConnUrl,
}

impl Source for PostgresPhysical {
    fn display(&self) -> String {
        self.url.to_string()
    }
    fn backup(&self) -> Result<Box<dyn StreamSet<'static>>> {
        Ok(Box::new(postgres::physical::PhysicalBackup::start(
            &self.url,
        )?))
    }
}

/// How a source is read.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    /// A database's files rather than a logical dump (PostgreSQL: a base backup).
    pub physical: bool,
    /// A command source's stream name (default `stdout`).
    pub stream_name: Option<String>,
    /// A command source's restore command, recorded for `restore`.
    pub restore_command: Option<String>,
}

/// The source a URL names.
pub fn open(url: &str, opts: SourceOptions) -> Result<Box<dyn Source>> {
    if let Some(command) = url.strip_prefix(command::PREFIX) {
        return Ok(Box::new(command::CommandSource {
            command: command.to_string(),
            stream: opts.stream_name.clone().unwrap_or_else(|| "stdout".into()),
            restore_command: opts.restore_command.clone(),
        }));
    }
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
    if postgres::SCHEMES.contains(&scheme) {
        let url = ConnUrl::parse(url, postgres::SCHEMES)?;
        return Ok(if opts.physical {
            Box::new(PostgresPhysical { url })
        } else {
            Box::new(PostgresLogical { url })
        });
    }
    if scheme == redis::SCHEME || scheme == redis::TLS_SCHEME {
        if opts.physical {
            return Err(SourceError::Usage(
                "--physical is for PostgreSQL; a Redis backup is always the server's RDB snapshot"
                    .into(),
            ));
        }
        return Ok(Box::new(redis::RedisSource::open(url)?));
    }
    if mariadb::SCHEMES.contains(&scheme) {
        return Ok(Box::new(mariadb::MariadbSource::open(url, opts.physical)?));
    }
    if scheme == sqlite::SCHEME {
        if opts.physical {
            return Err(SourceError::Usage(
                "--physical is for PostgreSQL; a SQLite backup is always a copy of the database file".into(),
            ));
        }
        return Ok(Box::new(sqlite::SqliteSource::open(url)?));
    }
    Err(SourceError::Usage(format!(
        "unsupported source {}: use postgres://USER@HOST:PORT/DBNAME, mariadb://USER@HOST:PORT/DB, sqlite:///PATH, redis://HOST:PORT or command:CMD",
        url::redact(url)
    )))
}

/// Restores a database snapshot into the target URL (`None`: validates
/// it), replacing what is there only with `overwrite`; the counts found
/// against the recorded ones.
pub type RestoreFn = fn(
    &lifeboat_repo::IndexedRepository,
    &lifeboat_repo::Snapshot,
    &str,
    Option<&str>,
    bool,
) -> Result<counts::Restored>;

/// The restore of a snapshot restored whole (SQLite, MariaDB, Redis), and
/// what it is in words; `None` for the rest (PostgreSQL dumps take
/// `--table` and `--database`, files and commands restore otherwise).
pub fn restorer_of(snapshot: &lifeboat_repo::Snapshot) -> Option<(&'static str, RestoreFn)> {
    if sqlite::SqliteMeta::of(snapshot).is_some() {
        Some(("a SQLite database", sqlite::restore))
    } else if mariadb::MariadbMeta::of(snapshot).is_some() {
        Some(("a MariaDB backup", mariadb::restore))
    } else if redis::RedisMeta::of(snapshot).is_some() {
        Some(("a Redis snapshot", redis::restore))
    } else {
        None
    }
}

/// The prefix of the names of the log objects that continue `snapshot`'s
/// source past it (a PostgreSQL cluster's WAL, a MariaDB server's binary
/// logs; see `postgres::wal::object_name` and `mariadb::stream::object_name`),
/// if it has any: what a copy to another region sends with the snapshot.
pub fn log_prefix(snapshot: &lifeboat_repo::Snapshot) -> Option<String> {
    let m = snapshot.source.as_ref()?;
    match m.get("kind")?.as_str()? {
        "postgres" => {
            let sys: u64 = m.get("system_id")?.as_str()?.parse().ok()?;
            Some(postgres::wal::object_name(sys, ""))
        }
        "mariadb" => Some(format!("binlog-{}-", m.get("server_id")?.as_u64()?)),
        _ => None,
    }
}

/// What a snapshot holds, in a few words for listings: the source kind
/// and the point it recovers to (`postgres base backup, to 0/5000100 on
/// timeline 1`; `postgres dump of shop`; `command kubectl`); `-` for
/// files and plain streams.
pub fn describe(snapshot: &lifeboat_repo::Snapshot) -> String {
    let Some(m) = snapshot.source.as_ref() else {
        return "-".into();
    };
    let field = |k: &str| m.get(k).and_then(|v| v.as_str()).unwrap_or("");
    match (field("kind"), field("mode")) {
        ("postgres", "physical") => format!(
            "postgres base backup, to {} on timeline {}",
            field("stop_lsn"),
            m.get("timeline").and_then(|v| v.as_u64()).unwrap_or(0)
        ),
        ("postgres", "logical") => format!("postgres dump of {}", field("database")),
        ("postgres", "logical-cluster") => "postgres dump of every database".into(),
        ("mariadb", mode) => {
            let what = match m.get("database").and_then(|d| d.as_str()) {
                Some(d) if mode == "logical" => format!("mariadb dump of {d}"),
                _ if mode == "physical" => "mariadb physical backup".into(),
                _ => "mariadb dump of every database".into(),
            };
            match (m.get("gtid").and_then(|g| g.as_str()), field("binlog_file")) {
                (Some(g), _) if !g.is_empty() => format!("{what}, at GTID {g}"),
                (_, f) if !f.is_empty() => format!(
                    "{what}, at {f}:{}",
                    m.get("binlog_pos").and_then(|p| p.as_u64()).unwrap_or(0)
                ),
                _ => what,
            }
        }
        ("sqlite", _) => format!(
            "sqlite copy of {}, {}",
            field("file"),
            match m
                .get("tables")
                .and_then(|t| t.as_array())
                .map_or(0, Vec::len)
            {
                1 => "1 table".to_string(),
                n => format!("{n} tables"),
            }
        ),
        ("redis", _) => {
            let keys: u64 = m
                .get("databases")
                .and_then(|d| d.as_array())
                .map_or(0, |dbs| {
                    dbs.iter().filter_map(|d| d.get("keys")?.as_u64()).sum()
                });
            match m.get("offset").and_then(|o| o.as_u64()) {
                Some(o) => format!("redis RDB, {keys} keys, at offset {o}"),
                None => format!("redis RDB, {keys} keys"),
            }
        }
        ("command", _) => {
            let program = field("command").split_whitespace().next().unwrap_or("");
            format!("command {program}")
        }
        (kind, _) => kind.to_string(),
    }
}

/// Whether `s` is a source or target URL rather than a path.
pub fn is_url(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+')
    })
}
