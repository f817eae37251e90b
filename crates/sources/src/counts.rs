//! Row counts: what a database backup records per table at its
//! consistent point, and what a restore or a validation found, compared.
//! Every database source (PostgreSQL, MariaDB, SQLite) validates this way.

use serde::{Deserialize, Serialize};

use crate::error::SourceError;

/// One table's row count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCount {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Rows.
    pub rows: u64,
}

impl TableCount {
    /// `schema.table`, as shown.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

/// One table's recorded and found row counts.
#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    /// `schema.table`.
    pub table: String,
    /// Rows the backup recorded.
    pub recorded: u64,
    /// Rows found in the restored database or the archive (`None`: the
    /// table is missing).
    pub found: Option<u64>,
}

/// What a restore or a validation found.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    /// The target, as shown (`None` for a validation).
    pub target: Option<String>,
    /// Every table compared.
    pub tables: Vec<TableCheck>,
    /// Rows found in all.
    pub rows: u64,
    /// Whether an existing database was replaced.
    pub replaced: bool,
    /// The archived log replayed after the backup was restored (a
    /// point-in-time restore), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed: Option<Replayed>,
}

/// What a point-in-time restore replayed onto the restored backup.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Replayed {
    /// Transactions of the log replayed through (of a one-database
    /// backup, only that database's changes in them are applied).
    pub transactions: u64,
    /// The last one's id (a MariaDB GTID), if any was replayed.
    pub last: Option<String>,
    /// The last one's commit time (RFC 3339), if any was replayed.
    pub last_time: Option<String>,
}

impl Restored {
    /// The tables whose counts differ from the backup's.
    pub fn mismatches(&self) -> Vec<&TableCheck> {
        self.tables
            .iter()
            .filter(|t| t.found != Some(t.recorded))
            .collect()
    }

    /// The error of a restore whose counts differ from the backup's, if
    /// they do; `untouched` says what was left as it was.
    pub fn mismatch_error(&self, untouched: &str) -> Option<SourceError> {
        let bad = self.mismatches();
        if bad.is_empty() {
            return None;
        }
        let list: Vec<String> = bad
            .iter()
            .map(|t| match t.found {
                Some(n) => format!("{}: {n} rows, the backup recorded {}", t.table, t.recorded),
                None => format!(
                    "{}: missing, the backup recorded {} rows",
                    t.table, t.recorded
                ),
            })
            .collect();
        Some(SourceError::Mismatch(format!(
            "the restored database does not match the backup ({}); {untouched}",
            list.join("; ")
        )))
    }
}

/// The recorded tables `want` against what `found` says of each.
pub fn compare(
    target: Option<String>,
    want: &[TableCount],
    found: impl Fn(&TableCount) -> Option<u64>,
    replaced: bool,
) -> Restored {
    let tables: Vec<TableCheck> = want
        .iter()
        .map(|t| TableCheck {
            table: t.qualified(),
            recorded: t.rows,
            found: found(t),
        })
        .collect();
    Restored {
        target,
        rows: tables.iter().filter_map(|t| t.found).sum(),
        tables,
        replaced,
        replayed: None,
    }
}
