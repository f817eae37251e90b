//! PostgreSQL: logical backups (`pg_dump` at an exported snapshot, with
//! per-table row counts at that same snapshot) and their restore into a new
//! database, validated against the recorded counts.

pub mod ahead;
pub mod delta;
mod logical;
pub mod physical;
pub mod psql;
mod restore;
pub mod stream;
mod tarwatch;
pub mod wal;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::counts::{Restored, TableCheck, TableCount};
pub use logical::{ClusterBackup, ClusterMeta, LogicalBackup};
pub use restore::{restore, restore_cluster, validate, RestoreOptions};

/// The URL schemes of PostgreSQL sources and targets.
pub const SCHEMES: &[&str] = &["postgres", "postgresql"];

/// A libpq program: from `LIFEBOAT_PG_BINDIR` when set (a server's own
/// `bin` directory), else from `PATH`.
pub fn program(name: &str) -> PathBuf {
    match std::env::var_os("LIFEBOAT_PG_BINDIR") {
        Some(dir) => PathBuf::from(dir).join(name),
        None => PathBuf::from(name),
    }
}

/// What a logical backup records in its snapshot (`source`), so that every
/// restore can be validated exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogicalMeta {
    /// Always `postgres`.
    pub kind: String,
    /// Always `logical`.
    pub mode: String,
    /// The source, as shown (no password).
    pub url: String,
    /// The database dumped.
    pub database: String,
    /// The server's version (`server_version`).
    pub server_version: String,
    /// Whether the server was a standby.
    pub in_recovery: bool,
    /// The exported snapshot the dump and the counts shared.
    pub snapshot: String,
    /// The stream holding the dump (`pg_dump` custom format).
    pub dump: String,
    /// `custom`.
    pub format: String,
    /// Rows per table at the snapshot.
    pub tables: Vec<TableCount>,
}

impl LogicalMeta {
    /// The metadata of a snapshot, if it is a PostgreSQL logical backup.
    pub fn of(snapshot: &lifeboat_repo::Snapshot) -> Option<LogicalMeta> {
        let m: LogicalMeta = serde_json::from_value(snapshot.source.clone()?).ok()?;
        (m.kind == "postgres" && m.mode == "logical").then_some(m)
    }
}
