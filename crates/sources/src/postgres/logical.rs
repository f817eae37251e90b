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
        }))
    }

    fn finish(&mut self) -> std::io::Result<Option<serde_json::Value>> {
        let counts = self
            .counts
            .take()
            .ok_or_else(|| std::io::Error::other("finished twice"))?
            .join()
            .map_err(|_| std::io::Error::other("the row-count thread panicked"))?;
        let (mut session, tables) = counts.map_err(|e| std::io::Error::other(e.to_string()))?;
        session
            .query("COMMIT")
            .and_then(|_| session.close())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        self.meta.tables = tables;
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
