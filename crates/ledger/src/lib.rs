//! The ledger: what lifeboat did and measured — every run of a
//! component's backup (start, end, bytes, result, error, snapshot) — kept
//! where every command and the daemon read it. An embedded SQLite file by
//! default (a PostgreSQL ledger for several hosts is to come).
//!
//! The schema is versioned: [`MIGRATIONS`] are applied in order, each in
//! its own transaction, and `PRAGMA user_version` records how far; a
//! ledger written by a newer lifeboat is refused rather than misread.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// The schema, one migration per version (version = index + 1).
pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        component TEXT NOT NULL,
        kind TEXT NOT NULL,
        region TEXT NOT NULL,
        started REAL NOT NULL,
        ended REAL,
        ok INTEGER,
        bytes INTEGER,
        snapshot TEXT,
        error TEXT
    );
    CREATE INDEX runs_by_component ON runs (component, started);",
    "CREATE TABLE verifications (
        id INTEGER PRIMARY KEY,
        component TEXT NOT NULL,
        at REAL NOT NULL,
        result TEXT NOT NULL,
        restore_seconds REAL,
        snapshot TEXT,
        report TEXT NOT NULL
    );
    CREATE INDEX verifications_by_component ON verifications (component, at);",
    // The recoverable point a run leaves in its region: a backup's
    // snapshot time, a copy's newest copied snapshot time.
    "ALTER TABLE runs ADD COLUMN point REAL;",
    // The alerts a receiver was told are firing (until it is told they
    // resolved): what makes an alert fire once and resolve once, also
    // across restarts of the daemon.
    "CREATE TABLE alerts (
        receiver TEXT NOT NULL,
        alert TEXT NOT NULL,
        component TEXT NOT NULL,
        region TEXT NOT NULL,
        since REAL NOT NULL,
        sent REAL,
        PRIMARY KEY (receiver, alert, component, region)
    );",
];

/// The columns of [`Run`], in its order.
const RUN_COLUMNS: &str =
    "id, component, kind, region, started, ended, ok, bytes, snapshot, error, point";

/// A ledger that cannot be used: what and where.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// SQLite failed.
    #[error("ledger {path}: {source}")]
    Sqlite {
        /// The ledger file.
        path: PathBuf,
        /// SQLite's words.
        source: rusqlite::Error,
    },
    /// A newer lifeboat wrote it.
    #[error("ledger {path} has schema version {found}; this lifeboat knows up to {known}: upgrade lifeboat")]
    TooNew {
        /// The ledger file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// Ours.
        known: i64,
    },
}

/// The ledger's result.
pub type Result<T> = std::result::Result<T, LedgerError>;

/// One run, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    /// Its id.
    pub id: i64,
    /// The component.
    pub component: String,
    /// What ran (`backup`).
    pub kind: String,
    /// The region written to.
    pub region: String,
    /// Start, seconds since the epoch.
    pub started: f64,
    /// End (none: still running, or killed).
    pub ended: Option<f64>,
    /// Whether it succeeded (none: not ended).
    pub ok: Option<bool>,
    /// Bytes read from the source.
    pub bytes: Option<u64>,
    /// The snapshot written.
    pub snapshot: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// The newest recoverable point the run left in its region (seconds
    /// since the epoch): a backup's snapshot time, a copy's newest copied
    /// snapshot's.
    pub point: Option<f64>,
}

/// One verification of a component, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    /// When, seconds since the epoch.
    pub at: f64,
    /// `passed`, `warning` or `failed`.
    pub result: String,
    /// How long its restore test took (none: it restored nothing).
    pub restore_seconds: Option<f64>,
    /// The snapshot it verified.
    pub snapshot: Option<String>,
    /// Its findings, as the JSON report has them.
    pub report: String,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// Whether it succeeded.
    pub ok: bool,
    /// Bytes read from the source.
    pub bytes: Option<u64>,
    /// The snapshot written.
    pub snapshot: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// The newest recoverable point it left in its region.
    pub point: Option<f64>,
}

/// An open ledger.
pub struct Ledger {
    db: Connection,
    path: PathBuf,
}

fn now() -> f64 {
    jiff::Timestamp::now().as_microsecond() as f64 / 1e6
}

impl Ledger {
    /// Opens (creating it if missing) the SQLite ledger at `path`, its
    /// schema migrated to this version.
    pub fn open(path: &Path) -> Result<Ledger> {
        let err = |source| LedgerError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let mut db = Connection::open(path).map_err(err)?;
        db.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(err)?;
        db.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        let version: i64 = db
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(LedgerError::TooNew {
                path: path.to_path_buf(),
                found: version,
                known,
            });
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = db.transaction().map_err(err)?;
            tx.execute_batch(m).map_err(err)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(Ledger {
            db,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// The schema version.
    pub fn version(&self) -> Result<i64> {
        self.db
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Records that a run started; its id.
    pub fn start(&self, component: &str, kind: &str, region: &str) -> Result<i64> {
        self.db
            .execute(
                "INSERT INTO runs (component, kind, region, started) VALUES (?1, ?2, ?3, ?4)",
                params![component, kind, region, now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.db.last_insert_rowid())
    }

    /// Records how run `id` ended.
    pub fn finish(&self, id: i64, o: &Outcome) -> Result<()> {
        self.db
            .execute(
                "UPDATE runs SET ended = ?2, ok = ?3, bytes = ?4, snapshot = ?5, error = ?6, point = ?7 WHERE id = ?1",
                params![id, now(), o.ok, o.bytes.map(|b| b as i64), o.snapshot, o.error, o.point],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn run_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
        Ok(Run {
            id: r.get(0)?,
            component: r.get(1)?,
            kind: r.get(2)?,
            region: r.get(3)?,
            started: r.get(4)?,
            ended: r.get(5)?,
            ok: r.get(6)?,
            bytes: r.get::<_, Option<i64>>(7)?.map(|b| b as u64),
            snapshot: r.get(8)?,
            error: r.get(9)?,
            point: r.get(10)?,
        })
    }

    /// The newest `n` runs of `kind` (`backup`, `copy`) of `component`,
    /// newest first.
    pub fn runs(&self, component: &str, kind: &str, n: usize) -> Result<Vec<Run>> {
        let mut q = self
            .db
            .prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE component = ?1 AND kind = ?2
                 ORDER BY started DESC, id DESC LIMIT ?3"
            ))
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map(params![component, kind, n as i64], Ledger::run_of)
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    /// The newest successful backup of `component`.
    pub fn last_success(&self, component: &str) -> Result<Option<Run>> {
        self.db
            .query_row(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE component = ?1 AND kind = 'backup' AND ok = 1
                     ORDER BY started DESC, id DESC LIMIT 1"
                ),
                params![component],
                Ledger::run_of,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The newest copy of `component` into `region`: the newest that
    /// succeeded, or with `any` the newest whatever its result.
    pub fn last_copy(&self, component: &str, region: &str, any: bool) -> Result<Option<Run>> {
        self.db
            .query_row(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE component = ?1 AND kind = 'copy'
                     AND region = ?2 {} ORDER BY started DESC, id DESC LIMIT 1",
                    if any { "" } else { "AND ok = 1" }
                ),
                params![component, region],
                Ledger::run_of,
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

impl Ledger {
    /// A `verifications` row (at, result, restore_seconds, snapshot, report).
    fn verification_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Verification> {
        Ok(Verification {
            at: r.get(0)?,
            result: r.get(1)?,
            restore_seconds: r.get(2)?,
            snapshot: r.get(3)?,
            report: r.get(4)?,
        })
    }

    /// Records a verification of `component`.
    pub fn record_verification(&self, component: &str, v: &Verification) -> Result<()> {
        self.db
            .execute(
                "INSERT INTO verifications (component, at, result, restore_seconds, snapshot, report)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![component, v.at, v.result, v.restore_seconds, v.snapshot, v.report],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The newest verification of `component`; with `restored`, the
    /// newest that ran a restore test.
    pub fn last_verification(
        &self,
        component: &str,
        restored: bool,
    ) -> Result<Option<Verification>> {
        self.db
            .query_row(
                &format!(
                    "SELECT at, result, restore_seconds, snapshot, report FROM verifications
                     WHERE component = ?1 {} ORDER BY at DESC, id DESC LIMIT 1",
                    if restored {
                        "AND restore_seconds IS NOT NULL"
                    } else {
                        ""
                    }
                ),
                params![component],
                Ledger::verification_of,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The newest `n` verifications of `component`, newest first.
    pub fn verifications(&self, component: &str, n: usize) -> Result<Vec<Verification>> {
        let mut q = self
            .db
            .prepare(
                "SELECT at, result, restore_seconds, snapshot, report FROM verifications
                 WHERE component = ?1 ORDER BY at DESC, id DESC LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map(params![component, n as i64], Ledger::verification_of)
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    /// Now, as the ledger stamps it.
    pub fn now() -> f64 {
        now()
    }
}

/// An alert a receiver is to know is firing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertState {
    /// The alert (`LifeboatBackupFailed`).
    pub alert: String,
    /// Its component.
    pub component: String,
    /// Its region.
    pub region: String,
    /// Since when it fires.
    pub since: f64,
    /// When the receiver was last told (none: not yet, or the send failed).
    pub sent: Option<f64>,
}

impl Ledger {
    /// The alerts firing for `receiver`.
    pub fn alerts(&self, receiver: &str) -> Result<Vec<AlertState>> {
        let mut q = self
            .db
            .prepare(
                "SELECT alert, component, region, since, sent FROM alerts WHERE receiver = ?1
                 ORDER BY since, alert, component, region",
            )
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map(params![receiver], |r| {
                Ok(AlertState {
                    alert: r.get(0)?,
                    component: r.get(1)?,
                    region: r.get(2)?,
                    since: r.get(3)?,
                    sent: r.get(4)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    /// Records that `a` fires for `receiver` (kept as it was if it already
    /// does), or — with `sent` — when the receiver was told.
    pub fn alert_firing(&self, receiver: &str, a: &AlertState) -> Result<()> {
        self.db
            .execute(
                "INSERT INTO alerts (receiver, alert, component, region, since, sent)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (receiver, alert, component, region) DO UPDATE SET sent = excluded.sent",
                params![receiver, a.alert, a.component, a.region, a.since, a.sent],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records that `receiver` was told `a` resolved.
    pub fn alert_resolved(&self, receiver: &str, a: &AlertState) -> Result<()> {
        self.db
            .execute(
                "DELETE FROM alerts WHERE receiver = ?1 AND alert = ?2 AND component = ?3 AND region = ?4",
                params![receiver, a.alert, a.component, a.region],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_recorded_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let l = Ledger::open(&path).unwrap();
        assert_eq!(l.version().unwrap(), MIGRATIONS.len() as i64);
        let a = l.start("orders-db", "backup", "primary").unwrap();
        l.finish(
            a,
            &Outcome {
                ok: true,
                bytes: Some(42),
                snapshot: Some("abc".into()),
                error: None,
                point: Some(1000.0),
            },
        )
        .unwrap();
        let b = l.start("orders-db", "backup", "primary").unwrap();
        l.finish(
            b,
            &Outcome {
                ok: false,
                error: Some("pg_dump failed".into()),
                ..Outcome::default()
            },
        )
        .unwrap();
        let open = l.start("orders-db", "backup", "primary").unwrap();
        drop(l);
        let l = Ledger::open(&path).unwrap();
        let c = l.start("orders-db", "copy", "dr").unwrap();
        l.finish(
            c,
            &Outcome {
                ok: true,
                point: Some(900.0),
                ..Outcome::default()
            },
        )
        .unwrap();
        let runs = l.runs("orders-db", "backup", 10).unwrap();
        assert_eq!(
            runs.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![open, b, a]
        );
        assert_eq!(runs[0].ok, None, "a run that never ended");
        assert_eq!(runs[1].error.as_deref(), Some("pg_dump failed"));
        let last = l.last_success("orders-db").unwrap().unwrap();
        assert_eq!(
            (last.id, last.bytes, last.point),
            (a, Some(42), Some(1000.0))
        );
        let copied = l.last_copy("orders-db", "dr", false).unwrap().unwrap();
        assert_eq!((copied.id, copied.point), (c, Some(900.0)));
        assert!(l.last_copy("orders-db", "primary", true).unwrap().is_none());
        assert_eq!(l.runs("orders-db", "copy", 10).unwrap().len(), 1);
        assert!(l.last_success("nothing").unwrap().is_none());
        let v = |result: &str, secs: Option<f64>| Verification {
            at: Ledger::now(),
            result: result.into(),
            restore_seconds: secs,
            snapshot: None,
            report: "[]".into(),
        };
        l.record_verification("orders-db", &v("passed", Some(2.5)))
            .unwrap();
        l.record_verification("orders-db", &v("warning", None))
            .unwrap();
        assert_eq!(
            l.last_verification("orders-db", false)
                .unwrap()
                .unwrap()
                .result,
            "warning"
        );
        assert_eq!(
            l.last_verification("orders-db", true)
                .unwrap()
                .unwrap()
                .restore_seconds,
            Some(2.5)
        );
        let history = l.verifications("orders-db", 10).unwrap();
        assert_eq!(
            history
                .iter()
                .map(|v| v.result.as_str())
                .collect::<Vec<_>>(),
            ["warning", "passed"]
        );
        assert_eq!(l.verifications("orders-db", 1).unwrap().len(), 1);
    }

    #[test]
    fn a_ledger_of_an_older_schema_is_migrated_keeping_its_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(&MIGRATIONS[..2].join(";")).unwrap();
        c.pragma_update(None, "user_version", 2).unwrap();
        c.execute(
            "INSERT INTO runs (component, kind, region, started, ended, ok) VALUES ('a', 'backup', 'p', 5, 6, 1)",
            [],
        )
        .unwrap();
        drop(c);
        let l = Ledger::open(&path).unwrap();
        assert_eq!(l.version().unwrap(), MIGRATIONS.len() as i64);
        let r = l.last_success("a").unwrap().unwrap();
        assert_eq!((r.started, r.point), (5.0, None));
    }

    #[test]
    fn an_alert_fires_once_per_receiver_until_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        let mut a = AlertState {
            alert: "LifeboatBackupFailed".into(),
            component: "db".into(),
            region: "primary".into(),
            since: 10.0,
            sent: None,
        };
        l.alert_firing("hook", &a).unwrap();
        a.sent = Some(11.0);
        a.since = 99.0;
        l.alert_firing("hook", &a).unwrap();
        let got = l.alerts("hook").unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].since, got[0].sent),
            (10.0, Some(11.0)),
            "since stays"
        );
        assert!(l.alerts("other").unwrap().is_empty());
        l.alert_resolved("hook", &a).unwrap();
        assert!(l.alerts("hook").unwrap().is_empty());
    }

    #[test]
    fn a_ledger_from_a_newer_lifeboat_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        drop(Ledger::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        let e = Ledger::open(&path).err().unwrap();
        assert!(e.to_string().contains("schema version 99"), "{e}");
    }
}
