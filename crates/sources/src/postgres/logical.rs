//! A logical backup: one exported snapshot shared by `pg_dump` (streamed
//! into the repository as it writes) and the row counts, taken on the
//! exporting session while the dump runs.

use std::process::Command;
use std::thread::JoinHandle;

use lifeboat_repo::archiver::{NamedStream, StreamSet};

use super::psql::{ident, Session};
use super::{program, LogicalMeta, TableCount};
use crate::error::{Result, SourceError};
use crate::producer::Producer;
use crate::url::ConnUrl;
use lifeboat_repo::archiver::SourceFailed;

/// The user tables of the current database that `pg_dump` dumps the data
/// of (names hex-encoded: any byte may be in a name).
const TABLES: &str = "SELECT encode(convert_to(n.nspname, 'UTF8'), 'hex'), encode(convert_to(c.relname, 'UTF8'), 'hex') \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%' \
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e') \
     ORDER BY 1, 2";

/// The exporting session, still in its transaction, and the counts it took.
type Counted = (Session, Vec<TableCount>);

/// A logical backup in progress: the dump to store, and the counts being
/// taken beside it.
pub struct LogicalBackup {
    meta: LogicalMeta,
    dump: Option<Producer>,
    counts: Option<JoinHandle<Result<Counted>>>,
}

impl LogicalBackup {
    /// Opens the snapshot on `url`'s database and starts `pg_dump` at it.
    pub fn start(url: &ConnUrl) -> Result<LogicalBackup> {
        let database = url.dbname.clone().ok_or_else(|| {
            SourceError::Usage(format!(
                "{url}: name the database to dump (postgres://…/DBNAME)"
            ))
        })?;
        let shown = url.to_string();
        let mut session = Session::connect(url)?;
        session.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
        let snapshot = session.value("SELECT pg_export_snapshot()")?;
        let info =
            session.query("SELECT current_setting('server_version'), pg_is_in_recovery()")?;
        let (server_version, in_recovery) = match info.as_slice() {
            [row] if row.len() == 2 => (row[0].clone(), row[1] == "t"),
            _ => (String::new(), false),
        };
        let mut tables = vec![];
        for row in session.query(TABLES)? {
            let [schema, table] = row.as_slice() else {
                continue;
            };
            tables.push((unhex(schema), unhex(table)));
        }
        let mut cmd = Command::new(program("pg_dump"));
        cmd.args(["--format=custom", "--no-password"])
            .arg(format!("--snapshot={snapshot}"))
            .envs(url.env())
            .env("PGAPPNAME", "lifeboat");
        let dump = Producer::spawn(cmd, "pg_dump", &shown, true)?;
        // Counted on the exporting session, so at the dump's own snapshot,
        // while the dump runs (and it keeps the snapshot alive meanwhile).
        let counts = std::thread::spawn(move || {
            let mut counted = Vec::with_capacity(tables.len());
            for (schema, table) in tables {
                let n = session.value(&format!(
                    "SELECT count(*) FROM ONLY {}.{}",
                    ident(&schema),
                    ident(&table)
                ))?;
                let rows = n.parse().map_err(|_| SourceError::Tool {
                    program: "psql".into(),
                    target: String::new(),
                    message: format!("count of {schema}.{table} is not a number: {n:?}"),
                })?;
                counted.push(TableCount {
                    schema,
                    table,
                    rows,
                });
            }
            Ok((session, counted))
        });
        Ok(LogicalBackup {
            meta: LogicalMeta {
                kind: "postgres".into(),
                mode: "logical".into(),
                url: shown,
                dump: format!("{database}.pgdump"),
                database,
                server_version,
                in_recovery,
                snapshot,
                format: "custom".into(),
                tables: vec![],
            },
            dump: Some(dump),
            counts: Some(counts),
        })
    }
}

impl StreamSet<'static> for LogicalBackup {
    fn next_stream(&mut self) -> std::io::Result<Option<NamedStream<'static>>> {
        Ok(self.dump.take().map(|d| NamedStream {
            name: self.meta.dump.clone(),
            reader: Box::new(d),
            chunking: Default::default(),
        }))
    }

    fn finish(&mut self) -> std::io::Result<Option<serde_json::Value>> {
        let meta = self.finish_meta()?;
        serde_json::to_value(&meta)
            .map(Some)
            .map_err(std::io::Error::other)
    }
}

impl LogicalBackup {
    /// Once the dump was read: the counts, the snapshot released.
    fn finish_meta(&mut self) -> std::io::Result<LogicalMeta> {
        let counts = self
            .counts
            .take()
            .ok_or_else(|| std::io::Error::other("finished twice"))?
            .join()
            .map_err(|_| std::io::Error::other("the row-count thread panicked"))?;
        let (mut session, tables) = counts.map_err(|e| SourceFailed::io(e.to_string()))?;
        session
            .query("COMMIT")
            .and_then(|_| session.close())
            .map_err(|e| SourceFailed::io(e.to_string()))?;
        self.meta.tables = tables;
        Ok(self.meta.clone())
    }
}

/// What a backup of every database records.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClusterMeta {
    /// Always `postgres`.
    pub kind: String,
    /// Always `logical-cluster`.
    pub mode: String,
    /// The server, as shown.
    pub url: String,
    /// The stream of roles, tablespaces and other globals (`pg_dumpall
    /// --globals-only`, plain SQL).
    pub globals: String,
    /// Each database, as its own logical backup would record it.
    pub databases: Vec<LogicalMeta>,
}

impl ClusterMeta {
    /// The metadata of a snapshot, if it is a backup of every database.
    pub fn of(snapshot: &lifeboat_repo::Snapshot) -> Option<ClusterMeta> {
        let m: ClusterMeta = serde_json::from_value(snapshot.source.clone()?).ok()?;
        (m.kind == "postgres" && m.mode == "logical-cluster").then_some(m)
    }
}

/// A backup of every database of a server and its globals: the globals
/// first, then each database dumped at a snapshot of its own, taken when
/// its turn comes (a snapshot cannot span databases).
pub struct ClusterBackup {
    url: ConnUrl,
    globals: Option<Producer>,
    left: std::collections::VecDeque<String>,
    current: Option<LogicalBackup>,
    meta: ClusterMeta,
}

impl ClusterBackup {
    /// Lists the databases of the server `url` names and starts the globals.
    pub fn start(url: &ConnUrl) -> Result<ClusterBackup> {
        let shown = url.to_string();
        let mut s = Session::connect(&url.with_dbname("postgres"))?;
        let dbs: Vec<String> = s
            .query("SELECT encode(convert_to(datname, 'UTF8'), 'hex') FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname")?
            .into_iter()
            .filter_map(|r| r.first().map(|h| unhex(h)))
            .collect();
        s.close()?;
        let mut cmd = Command::new(program("pg_dumpall"));
        cmd.args(["--globals-only", "--no-password"])
            .envs(url.with_dbname("postgres").env())
            .env("PGAPPNAME", "lifeboat");
        let globals = Producer::spawn(cmd, "pg_dumpall", &shown, true)?;
        Ok(ClusterBackup {
            url: url.clone(),
            globals: Some(globals),
            left: dbs.into(),
            current: None,
            meta: ClusterMeta {
                kind: "postgres".into(),
                mode: "logical-cluster".into(),
                url: shown,
                globals: "globals.sql".into(),
                databases: vec![],
            },
        })
    }

    fn finish_current(&mut self) -> std::io::Result<()> {
        if let Some(mut db) = self.current.take() {
            self.meta.databases.push(db.finish_meta()?);
        }
        Ok(())
    }
}

impl StreamSet<'static> for ClusterBackup {
    fn next_stream(&mut self) -> std::io::Result<Option<NamedStream<'static>>> {
        if let Some(g) = self.globals.take() {
            return Ok(Some(NamedStream {
                name: self.meta.globals.clone(),
                reader: Box::new(g),
                chunking: Default::default(),
            }));
        }
        self.finish_current()?;
        let Some(db) = self.left.pop_front() else {
            return Ok(None);
        };
        let mut backup = LogicalBackup::start(&self.url.with_dbname(&db))
            .map_err(|e| SourceFailed::io(e.to_string()))?;
        let stream = backup.next_stream()?;
        self.current = Some(backup);
        Ok(stream)
    }

    fn finish(&mut self) -> std::io::Result<Option<serde_json::Value>> {
        self.finish_current()?;
        serde_json::to_value(&self.meta)
            .map(Some)
            .map_err(std::io::Error::other)
    }
}

fn unhex(h: &str) -> String {
    let bytes: Vec<u8> = (0..h.len() / 2)
        .filter_map(|i| u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
