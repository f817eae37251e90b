//! The plan: a platform's DR table as `lifeboat.toml` — where lifeboat
//! keeps its history (the ledger), the regions its repositories live in,
//! and the components it protects, each with a tier, objectives (RTO and
//! RPO), a source, a schedule, retention, replication and a restore test.
//!
//! [`parse`] reads and validates a plan in one pass and reports *every*
//! problem at its line and column (unknown keys with a "did you mean");
//! [`objectives`] holds the tier matrix and the arithmetic of what a plan
//! can achieve before any disaster.

pub mod cron;
pub mod objectives;
mod parse;

use std::collections::BTreeMap;

use serde::Serialize;

pub use cron::Schedule;
pub use objectives::Tier;
pub use parse::parse;

/// One problem of a plan, where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// A validated plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Where lifeboat keeps its history.
    pub ledger: Ledger,
    /// Named repositories, by name.
    pub regions: BTreeMap<String, Region>,
    /// What the plan protects, in the file's order.
    pub components: Vec<Component>,
    /// Where alerts go, by name.
    pub notify: BTreeMap<String, Notifier>,
}

/// The state store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Ledger {
    /// An embedded SQLite file (the default: `lifeboat-ledger.db` beside
    /// the plan).
    Sqlite(String),
    /// A PostgreSQL database shared by several hosts.
    Postgres(String),
}

/// Where a region's repository's password comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum PasswordSource {
    /// A file holding it.
    File(String),
    /// A command printing it.
    Command(String),
    /// An environment variable holding it.
    Env(String),
}

/// A named repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Region {
    /// The repository's location.
    pub repository: String,
    /// Its password.
    pub password: PasswordSource,
}

/// The recovery order groups, first restored first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    /// DNS, networking, secrets: what everything else needs.
    Infrastructure,
    /// Databases and stores.
    Data,
    /// The services the business cannot run without.
    CriticalServices,
    /// Services that support them.
    Supporting,
    /// Everything else.
    Auxiliary,
}

/// Keep rules, as `forget` takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Retention {
    /// The newest N.
    pub last: Option<u32>,
    /// One per hour, the newest N hours.
    pub hourly: Option<u32>,
    /// One per day.
    pub daily: Option<u32>,
    /// One per week.
    pub weekly: Option<u32>,
    /// One per month.
    pub monthly: Option<u32>,
    /// One per year.
    pub yearly: Option<u32>,
    /// Every snapshot younger than this.
    pub within: Option<jiff::SignedDuration>,
}

/// A check a restore test runs on the restored target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Check {
    /// The row (key) counts recorded at backup match the restored ones.
    Counts,
    /// The source's integrity check passes (`integrity_check`, …).
    Integrity,
    /// A query returns the expected text.
    Sql {
        /// The query.
        query: String,
        /// Its expected result (first row, tab-separated).
        expect: String,
    },
    /// A shell command exits 0 (`$LIFEBOAT_RESTORED` names the target).
    Command {
        /// The command.
        run: String,
    },
}

/// A component's restore test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verify {
    /// When it runs.
    pub schedule: Option<Schedule>,
    /// Where it restores: a scratch directory or database server URL.
    pub target: String,
    /// What it checks on the restored target.
    pub checks: Vec<Check>,
}

/// One thing the plan protects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Component {
    /// Its name (`orders-db`).
    pub name: String,
    /// Its tier.
    pub tier: Tier,
    /// The recovery time objective (the tier's unless given).
    pub rto: jiff::SignedDuration,
    /// The recovery point objective (the tier's unless given).
    pub rpo: jiff::SignedDuration,
    /// What is backed up: a source URL (`files:///srv/uploads`,
    /// `postgres://…`, `mariadb://…`, `sqlite:///…`, `redis://…`,
    /// `command:…`).
    pub source: String,
    /// When backups run.
    pub schedule: Option<Schedule>,
    /// Stream the transaction log continuously (PostgreSQL WAL, MariaDB
    /// binary logs) between backups.
    pub continuous: bool,
    /// A physical backup (PostgreSQL base backup, mariadb-backup).
    pub physical: bool,
    /// The region backups are written to.
    pub region: String,
    /// Regions that receive copies.
    pub replicate_to: Vec<String>,
    /// What `forget --plan` keeps.
    pub retention: Retention,
    /// Recovery order group.
    pub priority: Priority,
    /// Who answers for it.
    pub owner: Option<String>,
    /// Its restore test.
    pub verify: Option<Verify>,
    /// The line its table starts on.
    pub line: usize,
}

/// The conditions lifeboat alerts on (named as the Prometheus rules in
/// `examples/prometheus/` name them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The last backup run of a component failed.
    BackupFailed,
    /// A component has no recoverable point within its RPO.
    OutsideRpo,
    /// A region's copy of a component is further behind than the threshold.
    ReplicationLag,
    /// A component's last verification failed.
    VerificationFailed,
}

impl AlertKind {
    /// Every kind.
    pub const ALL: [AlertKind; 4] = [
        AlertKind::BackupFailed,
        AlertKind::OutsideRpo,
        AlertKind::ReplicationLag,
        AlertKind::VerificationFailed,
    ];

    /// Its name in the plan (`backup_failed`).
    pub fn key(self) -> &'static str {
        match self {
            AlertKind::BackupFailed => "backup_failed",
            AlertKind::OutsideRpo => "outside_rpo",
            AlertKind::ReplicationLag => "replication_lag",
            AlertKind::VerificationFailed => "verification_failed",
        }
    }
}

/// One receiver of alerts and what it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notifier {
    /// Where alerts go.
    pub to: Receiver,
    /// Which conditions it is told of (default: every one).
    pub alerts: Vec<AlertKind>,
    /// A webhook or command is told of a condition when it starts and when
    /// it ends; with `repeat`, again after this long while it lasts.
    /// (Alertmanager is re-sent every minute while it lasts, as Prometheus
    /// does, and repeats by its own `repeat_interval`.)
    pub repeat: Option<jiff::SignedDuration>,
    /// How far behind a region's copy may fall before `replication_lag`
    /// fires (default: the component's RPO).
    pub replication_lag: Option<jiff::SignedDuration>,
}

/// Where alerts go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Receiver {
    /// Alertmanager's webhook JSON, POSTed to `url` (`/api/v2/alerts`).
    Alertmanager {
        /// Where.
        url: String,
    },
    /// A plain JSON document POSTed to `url`.
    Webhook {
        /// Where.
        url: String,
    },
    /// A shell command given the alert as JSON on stdin.
    Command {
        /// The command.
        run: String,
    },
}
