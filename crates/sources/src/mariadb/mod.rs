//! MariaDB and MySQL (`mariadb://USER@HOST:PORT/DB`, `mysql://…`): a
//! logical backup is `mariadb-dump --single-transaction` (routines,
//! triggers, events; one consistent snapshot of InnoDB tables) streamed into
//! the repository while [`dumpscan`] reads the same bytes: rows per table,
//! the binary-log coordinates and GTID of the snapshot, and the
//! `-- Dump completed` line without which no snapshot is written. No
//! database named: every database (`--all-databases`, users and grants with
//! the `mysql` schema).
//!
//! Passwords come from the URL (handed on as `MYSQL_PWD`), from the
//! caller's own `MYSQL_PWD`, or from an option file
//! (`?defaults-file=/etc/lifeboat/my.cnf`); never from arguments.

pub mod archive;
pub mod binlog;
pub mod dumpscan;
pub mod physical;
pub mod pitr;
mod restore;
pub mod stream;
pub mod xbstream;

use std::fmt;
use std::process::Command;

use lifeboat_repo::archiver::{SourceFailed, StreamSet};
use lifeboat_repo::Snapshot;
use serde::{Deserialize, Serialize};

use crate::counts::TableCount;
use crate::error::{Result, SourceError};
use crate::producer::Producer;
use crate::tee::{tee, TeedStream};

pub use restore::{restore, restore_to};

/// The URL schemes.
pub const SCHEMES: &[&str] = &["mariadb", "mysql"];

/// Schemas never counted or compared: the server's own.
const SYSTEM: &[&str] = &["mysql", "sys", "performance_schema", "information_schema"];

/// A parsed `mariadb://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct MariadbUrl {
    /// The scheme as given.
    pub scheme: String,
    /// User.
    pub user: Option<String>,
    /// Password, never shown.
    pub password: Option<String>,
    /// Host (none: the client's default, a local socket).
    pub host: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// Database (none: every database).
    pub database: Option<String>,
    /// `?socket=`.
    pub socket: Option<String>,
    /// `?defaults-file=`: an option file with the credentials.
    pub defaults_file: Option<String>,
}

impl fmt::Display for MariadbUrl {
    /// The URL as it may be shown: never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        if let Some(h) = &self.host {
            write!(f, "{h}")?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "/{}", self.database.as_deref().unwrap_or(""))?;
        let mut sep = '?';
        for (k, v) in [
            ("socket", &self.socket),
            ("defaults-file", &self.defaults_file),
        ] {
            if let Some(v) = v {
                write!(f, "{sep}{k}={v}")?;
                sep = '&';
            }
        }
        Ok(())
    }
}

impl fmt::Debug for MariadbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MariadbUrl({self})")
    }
}

impl MariadbUrl {
    /// Parses `mariadb://[USER[:PASSWORD]@]HOST[:PORT][/DB][?socket=PATH&defaults-file=PATH]`.
    pub fn parse(s: &str) -> Result<MariadbUrl> {
        let shown = crate::url::redact(s);
        let bad = |why: &str| SourceError::Usage(format!("invalid URL {shown}: {why}"));
        let (scheme, rest) = s
            .split_once("://")
            .filter(|(sc, _)| SCHEMES.contains(sc))
            .ok_or_else(|| bad("expected mariadb://USER@HOST:PORT/DB"))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let dec = |x: &str| crate::url::decode(x).map_err(|e| bad(&e));
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(ui) => match ui.split_once(':') {
                Some((u, p)) => ((!u.is_empty()).then(|| dec(u)).transpose()?, Some(dec(p)?)),
                None => (Some(dec(ui)?), None),
            },
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                Some(p.parse().map_err(|_| bad(&format!("invalid port {p:?}")))?),
            ),
            None => (hostport, None),
        };
        let mut url = MariadbUrl {
            scheme: scheme.to_string(),
            user,
            password,
            host: (!host.is_empty()).then(|| host.to_string()),
            port,
            database: (!path.is_empty()).then(|| dec(path)).transpose()?,
            socket: None,
            defaults_file: None,
        };
        for kv in query.split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad(&format!("parameter {kv:?} has no value")))?;
            match k {
                "socket" => url.socket = Some(dec(v)?),
                "defaults-file" => url.defaults_file = Some(dec(v)?),
                _ => {
                    return Err(bad(&format!(
                        "unknown parameter {k:?} (socket, defaults-file)"
                    )))
                }
            }
        }
        Ok(url)
    }

    /// The same server, another database (`None`: none).
    pub fn with_database(&self, db: Option<&str>) -> MariadbUrl {
        MariadbUrl {
            database: db.map(str::to_string),
            ..self.clone()
        }
    }

    /// A client program (`mariadb`, `mariadb-dump`) connecting as this URL
    /// says; the database is not given (callers add it where it belongs).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        // An option file must be the first argument.
        if let Some(f) = &self.defaults_file {
            c.arg(format!("--defaults-extra-file={f}"));
        }
        if let Some(h) = &self.host {
            c.arg(format!("--host={h}"));
        }
        if let Some(p) = self.port {
            c.arg(format!("--port={p}"));
        }
        if let Some(u) = &self.user {
            c.arg(format!("--user={u}"));
        }
        if let Some(s) = &self.socket {
            c.arg(format!("--socket={s}"));
        }
        if let Some(p) = &self.password {
            c.env("MYSQL_PWD", p);
        }
        c
    }

    /// Runs `sql` with the `mariadb` client (in `db`, if given): its rows,
    /// tab-separated fields.
    pub fn query(&self, db: Option<&str>, sql: &str) -> Result<Vec<Vec<String>>> {
        let mut c = self.command("mariadb");
        c.args(["--batch", "--skip-column-names", "--raw", "-e", sql]);
        if let Some(d) = db {
            c.arg(format!("--database={d}"));
        }
        let out = c.output().map_err(|e| SourceError::Tool {
            program: "mariadb".into(),
            target: self.to_string(),
            message: format!("cannot run it: {}", lifeboat_repo::error::io_words(&e)),
        })?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            return Err(SourceError::Tool {
                program: "mariadb".into(),
                target: self.to_string(),
                message: said.trim().lines().last().unwrap_or("failed").to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect())
    }
}

/// A SQL string literal for an arbitrary name (as hex: any byte may be in it).
fn hex_literal(s: &str) -> String {
    let hex: String = s.bytes().map(|b| format!("{b:02X}")).collect();
    format!("CONVERT(X'{hex}' USING utf8mb4)")
}

/// A backquoted identifier.
fn ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// What a logical backup records in its snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MariadbMeta {
    /// Always `mariadb`.
    pub kind: String,
    /// `logical`: one database; `logical-server`: every database.
    pub mode: String,
    /// The server, as shown.
    pub url: String,
    /// The database dumped (none: every database).
    pub database: Option<String>,
    /// The server's `VERSION()`.
    pub server_version: String,
    /// The stream holding the dump (plain SQL).
    pub dump: String,
    /// The server's `@@server_id` (with binary logging on): whose archived
    /// binary logs replay onto this dump.
    #[serde(default)]
    pub server_id: Option<u32>,
    /// The binary log file of the dump's consistent point.
    pub binlog_file: Option<String>,
    /// Its position there.
    pub binlog_pos: Option<u64>,
    /// The GTID position of the consistent point.
    pub gtid: Option<String>,
    /// Rows per table in the dump (schema = database).
    pub tables: Vec<TableCount>,
    /// A physical backup: the files in its archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// A physical backup: the InnoDB LSN it is consistent at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<String>,
}

impl MariadbMeta {
    /// The metadata a backup of `url` (its database, if it names one)
    /// starts from, in `mode`, stored as the stream `dump`: the server's
    /// version and, with binary logging on, its server id. It connects
    /// first, so wrong credentials, an unknown database or an unreachable
    /// server are named before anything is stored.
    fn connect(url: &MariadbUrl, mode: &str, dump: String) -> Result<MariadbMeta> {
        let info = url.query(
            url.database.as_deref(),
            "SELECT VERSION(), @@log_bin, @@server_id",
        )?;
        let (version, server_id) = match info.first().map(Vec::as_slice) {
            Some([v, b, id]) => (v.clone(), id.parse().ok().filter(|_| b == "1")),
            _ => (String::new(), None),
        };
        Ok(MariadbMeta {
            kind: "mariadb".into(),
            mode: mode.into(),
            url: url.to_string(),
            database: url.database.clone(),
            server_version: version,
            dump,
            server_id,
            binlog_file: None,
            binlog_pos: None,
            gtid: None,
            tables: vec![],
            files: None,
            lsn: None,
        })
    }

    /// The metadata of a snapshot, if it is a MariaDB backup.
    pub fn of(snapshot: &Snapshot) -> Option<MariadbMeta> {
        let m: MariadbMeta = serde_json::from_value(snapshot.source.clone()?).ok()?;
        (m.kind == "mariadb").then_some(m)
    }
}

/// A MariaDB or MySQL server (one database or all) to back up.
pub struct MariadbSource {
    url: MariadbUrl,
    physical: bool,
}

impl MariadbSource {
    /// The source a `mariadb://` URL names: dumped, or with `physical`
    /// copied by mariadb-backup.
    pub fn open(url: &str, physical: bool) -> Result<MariadbSource> {
        Ok(MariadbSource {
            url: MariadbUrl::parse(url)?,
            physical,
        })
    }
}

impl crate::Source for MariadbSource {
    fn display(&self) -> String {
        self.url.to_string()
    }

    fn backup(&self) -> Result<Box<dyn StreamSet<'static>>> {
        if self.physical {
            return physical::backup(&self.url);
        }
        let db = self.url.database.clone();
        let mode = if db.is_some() {
            "logical"
        } else {
            "logical-server"
        };
        let dump_name = format!("{}.sql", db.as_deref().unwrap_or("all-databases"));
        let mut meta = MariadbMeta::connect(&self.url, mode, dump_name)?;
        let log_bin = meta.server_id.is_some();
        let mut cmd = self.url.command("mariadb-dump");
        cmd.args([
            "--single-transaction",
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",
            "--default-character-set=utf8mb4",
        ]);
        if log_bin {
            // The consistent point's coordinates, as comments.
            cmd.args(["--master-data=2", "--gtid"]);
        }
        match &db {
            Some(d) => {
                cmd.arg(d);
            }
            None => {
                cmd.args(["--all-databases", "--flush-privileges"]);
            }
        }
        let shown = self.url.to_string();
        let dump = Producer::spawn(cmd, "mariadb-dump", &shown, true)?;
        let default_db = db.clone().unwrap_or_default();
        let teed = tee(
            dump,
            "the dump is not a complete mariadb-dump script",
            move |r| dumpscan::scan(r, &default_db),
        );
        Ok(Box::new(TeedStream::new(
            teed,
            meta.dump.clone(),
            format!("the dump of {shown}"),
            move |scan: dumpscan::DumpScan| {
                if !scan.completed {
                    return Err(SourceFailed::io(format!(
                        "the dump of {} lacks its '-- Dump completed' line: it did not run to its end; no snapshot was written",
                        meta.url
                    )));
                }
                meta.binlog_file = scan.binlog_file;
                meta.binlog_pos = scan.binlog_pos;
                meta.gtid = scan.gtid;
                meta.tables = scan
                    .rows
                    .into_iter()
                    .filter(|((db, _), _)| !SYSTEM.contains(&db.as_str()))
                    .map(|((schema, table), rows)| TableCount {
                        schema,
                        table,
                        rows,
                    })
                    .collect();
                serde_json::to_value(&meta).map_err(std::io::Error::other)
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms_and_mistakes() {
        let u =
            MariadbUrl::parse("mariadb://app:pw%21@db1:3307/shop?socket=/run/mysqld/mysqld.sock")
                .unwrap();
        assert_eq!(u.user.as_deref(), Some("app"));
        assert_eq!(u.password.as_deref(), Some("pw!"));
        assert_eq!((u.host.as_deref(), u.port), (Some("db1"), Some(3307)));
        assert_eq!(u.database.as_deref(), Some("shop"));
        assert_eq!(
            u.to_string(),
            "mariadb://app@db1:3307/shop?socket=/run/mysqld/mysqld.sock"
        );
        let all = MariadbUrl::parse("mysql://root@localhost/").unwrap();
        assert_eq!(all.database, None);
        let args: Vec<String> =
            MariadbUrl::parse("mariadb://u:secret@h/d?defaults-file=/etc/x.cnf")
                .unwrap()
                .command("mariadb")
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
        assert_eq!(args[0], "--defaults-extra-file=/etc/x.cnf");
        assert!(!args.iter().any(|a| a.contains("secret")), "{args:?}");
        for (bad, why) in [
            ("postgres://h/d", "expected"),
            ("mariadb://u:hunter2@h:x/d", "invalid port"),
            ("mariadb://u:hunter2@h/d?sslmode=1", "unknown parameter"),
        ] {
            let e = MariadbUrl::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why) && !e.contains("hunter2"), "{bad}: {e}");
        }
    }
}
