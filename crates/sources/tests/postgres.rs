//! PostgreSQL logical backups against the real server `scripts/test`
//! starts (LIFEBOAT_TEST_PG_*): round trips while pgbench writes, damaged
//! dumps, mismatched counts and existing targets.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use lifeboat_repo::archiver::{backup, BackupOptions, BackupSource};
use lifeboat_repo::crypto::KdfParams;
use lifeboat_repo::progress::NoProgress;
use lifeboat_repo::{IndexedRepository, InitOptions, Repository, Snapshot};
use lifeboat_sources::postgres::{self, LogicalBackup, LogicalMeta, RestoreOptions};
use lifeboat_sources::{ConnUrl, SourceError};

struct Pg {
    host: String,
    port: String,
    bin: String,
}

static DBS: AtomicUsize = AtomicUsize::new(0);

impl Pg {
    fn from_env() -> Pg {
        let var = |k: &str| {
            std::env::var(k).unwrap_or_else(|_| {
                panic!("{k} is not set: run the tests with scripts/test, which starts a PostgreSQL cluster")
            })
        };
        let pg = Pg {
            host: var("LIFEBOAT_TEST_PG_HOST"),
            port: var("LIFEBOAT_TEST_PG_PORT"),
            bin: var("LIFEBOAT_TEST_PG_BIN"),
        };
        std::env::set_var("LIFEBOAT_PG_BINDIR", &pg.bin);
        pg
    }

    fn url(&self, db: &str) -> ConnUrl {
        ConnUrl::parse(
            &format!(
                "postgres://postgres@/{db}?host={}&port={}",
                self.host, self.port
            ),
            postgres::SCHEMES,
        )
        .unwrap()
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(format!("{}/{program}", self.bin));
        c.env("PGHOST", &self.host)
            .env("PGPORT", &self.port)
            .env("PGUSER", "postgres");
        c
    }

    fn psql(&self, db: &str, sql: &str) -> String {
        let out = self
            .cmd("psql")
            .args([
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn exists(&self, db: &str) -> bool {
        self.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
        ) == "1"
    }

    /// A new database with pgbench's tables at `scale`.
    fn pgbench_db(&self, prefix: &str, scale: u32) -> String {
        let db = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            DBS.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {db}"));
        let out = self
            .cmd("pgbench")
            .args(["-i", "-q", "-s", &scale.to_string(), &db])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        db
    }

    fn fresh_name(&self, prefix: &str) -> String {
        format!(
            "{prefix}_{}_{}",
            std::process::id(),
            DBS.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// pgbench writing to `db` until killed.
    fn writer(&self, db: &str) -> Child {
        self.cmd("pgbench")
            .args(["-c", "2", "-T", "600", "-n", db])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

fn new_repo(dir: &std::path::Path) -> Repository {
    let store = Arc::from(lifeboat_store::open(dir.join("repo").to_str().unwrap()).unwrap());
    Repository::init(
        store,
        b"pw",
        InitOptions {
            kdf: KdfParams::INSECURE_FAST,
            ..Default::default()
        },
    )
    .unwrap()
}

fn logical_backup(repo: &Repository, url: &ConnUrl) -> Snapshot {
    let mut r = repo.clone().load_index().unwrap();
    let set = LogicalBackup::start(url).unwrap();
    backup(
        &mut r,
        BackupSource::Streams(Box::new(set)),
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap()
    .snapshot
}

fn indexed(repo: &Repository) -> IndexedRepository {
    repo.clone().load_index().unwrap()
}

/// A snapshot holding `bytes` as the dump, with `meta` as its metadata:
/// a dump damaged before lifeboat stored it, or counts that lie.
fn stored_as_dump(repo: &Repository, meta: &LogicalMeta, bytes: Vec<u8>) -> Snapshot {
    let mut r = repo.clone().load_index().unwrap();
    let opts = BackupOptions {
        source_meta: Some(serde_json::to_value(meta).unwrap()),
        ..Default::default()
    };
    backup(
        &mut r,
        BackupSource::stream(meta.dump.clone(), std::io::Cursor::new(bytes)),
        &opts,
        &NoProgress,
    )
    .unwrap()
    .snapshot
}

fn dump_bytes(repo: &Repository, snap: &Snapshot, meta: &LogicalMeta) -> Vec<u8> {
    let r = indexed(repo);
    let node = lifeboat_repo::browse::find_node(&r, snap, "s", &format!("/{}", meta.dump)).unwrap();
    let mut out = vec![];
    lifeboat_repo::browse::dump(&r, &node, &mut out).unwrap();
    out
}

#[test]
fn a_backup_while_pgbench_writes_restores_exactly_the_counts_recorded_at_its_snapshot() {
    let pg = Pg::from_env();
    let dir = tempfile::tempdir().unwrap();
    let repo = new_repo(dir.path());
    let db = pg.pgbench_db("lb_busy", 2);
    let mut writer = pg.writer(&db);
    // Wait until the writer has committed something (poll, no sleep-as-condition).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while pg.psql(&db, "SELECT count(*) FROM pgbench_history") == "0" {
        assert!(
            std::time::Instant::now() < deadline,
            "pgbench wrote nothing"
        );
        std::thread::yield_now();
    }
    let before: u64 = pg
        .psql(&db, "SELECT count(*) FROM pgbench_history")
        .parse()
        .unwrap();
    let snap = logical_backup(&repo, &pg.url(&db));
    let after: u64 = pg
        .psql(&db, "SELECT count(*) FROM pgbench_history")
        .parse()
        .unwrap();
    writer.kill().unwrap();
    writer.wait().unwrap();

    let meta = LogicalMeta::of(&snap).expect("logical metadata");
    assert_eq!(snap.paths, [format!("/{db}.pgdump")]);
    let rows = |t: &str| meta.tables.iter().find(|c| c.table == t).unwrap().rows;
    assert_eq!(rows("pgbench_accounts"), 200_000);
    let history = rows("pgbench_history");
    assert!(
        before <= history && history <= after,
        "{before} ≤ {history} ≤ {after}"
    );
    assert!(after > before, "the writer kept writing during the backup");

    let target = pg.fresh_name("lb_restored");
    let restored = postgres::restore(
        &indexed(&repo),
        &snap,
        "s",
        &pg.url(&target),
        &RestoreOptions::default(),
    )
    .unwrap();
    assert!(restored.mismatches().is_empty(), "{restored:?}");
    assert_eq!(restored.tables.len(), meta.tables.len());
    // Checked apart from lifeboat's own comparison: the same rows.
    assert_eq!(
        pg.psql(&target, "SELECT count(*) FROM pgbench_history"),
        history.to_string()
    );
    assert_eq!(
        pg.psql(&target, "SELECT sum(abalance) FROM pgbench_accounts"),
        pg.psql(&target, "SELECT sum(delta) FROM pgbench_history"),
        "the accounts and the history are of one consistent instant"
    );
    assert!(
        !pg.exists(&format!("lifeboat_restore_{target}")),
        "the staging database is gone"
    );

    let valid = postgres::validate(&indexed(&repo), &snap, "s", None, None).unwrap();
    assert!(valid.mismatches().is_empty(), "{valid:?}");
    assert_eq!(valid.rows, restored.rows);
    let one = postgres::validate(
        &indexed(&repo),
        &snap,
        "s",
        None,
        Some("public.pgbench_tellers"),
    )
    .unwrap();
    assert_eq!(one.tables.len(), 1);
    assert_eq!(one.rows, 20);
}

#[test]
fn validate_only_detects_a_truncated_or_bit_flipped_dump() {
    let pg = Pg::from_env();
    let dir = tempfile::tempdir().unwrap();
    let repo = new_repo(dir.path());
    let db = pg.pgbench_db("lb_damage", 1);
    let snap = logical_backup(&repo, &pg.url(&db));
    let meta = LogicalMeta::of(&snap).unwrap();
    let good = dump_bytes(&repo, &snap, &meta);

    let truncated = stored_as_dump(&repo, &meta, good[..good.len() * 2 / 3].to_vec());
    let err = postgres::validate(&indexed(&repo), &truncated, "t", None, None);
    assert!(
        matches!(&err, Err(SourceError::Tool { .. }))
            || err.as_ref().is_ok_and(|r| !r.mismatches().is_empty()),
        "a truncated dump is not valid: {err:?}"
    );
    for at in [good.len() / 3, good.len() / 2, good.len() * 3 / 4] {
        let mut flipped = good.clone();
        flipped[at] ^= 0x10;
        let snap = stored_as_dump(&repo, &meta, flipped);
        let res = postgres::validate(&indexed(&repo), &snap, "f", None, None);
        assert!(
            res.is_err() || res.as_ref().is_ok_and(|r| !r.mismatches().is_empty()),
            "a flip at {at} is found: {res:?}"
        );
    }
    let fine = stored_as_dump(&repo, &meta, good);
    assert!(postgres::validate(&indexed(&repo), &fine, "g", None, None)
        .unwrap()
        .mismatches()
        .is_empty());
}

#[test]
fn a_restore_whose_counts_differ_replaces_nothing_and_an_existing_target_needs_overwrite() {
    let pg = Pg::from_env();
    let dir = tempfile::tempdir().unwrap();
    let repo = new_repo(dir.path());
    let db = pg.pgbench_db("lb_guard", 1);
    let snap = logical_backup(&repo, &pg.url(&db));
    let mut meta = LogicalMeta::of(&snap).unwrap();

    // The target exists: refused without --overwrite, and left as it was.
    let target = pg.fresh_name("lb_existing");
    pg.psql("postgres", &format!("CREATE DATABASE {target}"));
    pg.psql(
        &target,
        "CREATE TABLE precious (x int); INSERT INTO precious VALUES (1)",
    );
    let err = postgres::restore(
        &indexed(&repo),
        &snap,
        "s",
        &pg.url(&target),
        &RestoreOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, SourceError::Exists { .. }) && err.is_usage(),
        "{err}"
    );
    assert_eq!(pg.psql(&target, "SELECT count(*) FROM precious"), "1");

    // Counts that do not match: an error naming the table, nothing replaced.
    for t in &mut meta.tables {
        if t.table == "pgbench_accounts" {
            t.rows += 1;
        }
    }
    let good = dump_bytes(&repo, &snap, &meta);
    let lying = stored_as_dump(&repo, &meta, good);
    let opts = RestoreOptions {
        overwrite: true,
        ..Default::default()
    };
    let err = postgres::restore(&indexed(&repo), &lying, "l", &pg.url(&target), &opts).unwrap_err();
    assert!(matches!(err, SourceError::Mismatch(_)), "{err}");
    assert!(
        err.to_string()
            .contains("pgbench_accounts: 100000 rows, the backup recorded 100001"),
        "{err}"
    );
    assert_eq!(
        pg.psql(&target, "SELECT count(*) FROM precious"),
        "1",
        "the target is untouched"
    );
    assert!(!pg.exists(&format!("lifeboat_restore_{target}")));

    // With --overwrite and true counts the target is replaced.
    let r = postgres::restore(&indexed(&repo), &snap, "s", &pg.url(&target), &opts).unwrap();
    assert!(r.replaced && r.mismatches().is_empty());
    assert_eq!(
        pg.psql(&target, "SELECT count(*) FROM pgbench_accounts"),
        "100000"
    );
    assert_eq!(
        pg.psql(
            &target,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'precious'"
        ),
        "0"
    );
}

#[test]
fn unreachable_servers_missing_databases_and_file_snapshots_are_clear_errors() {
    let pg = Pg::from_env();
    let dir = tempfile::tempdir().unwrap();
    let repo = new_repo(dir.path());
    for (url, says) in [
        (
            pg.url("lb_no_such_db"),
            "database \"lb_no_such_db\" does not exist",
        ),
        (
            ConnUrl::parse(
                "postgres://postgres:hunter2@127.0.0.1:1/x",
                postgres::SCHEMES,
            )
            .unwrap(),
            "Connection refused",
        ),
    ] {
        let err = LogicalBackup::start(&url).err().expect("fails");
        let text = err.to_string();
        assert!(text.contains(says), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
    assert!(repo.snapshots().unwrap().0.is_empty());
    // A snapshot of files is not a database backup.
    let mut r = indexed(&repo);
    let files = backup(
        &mut r,
        BackupSource::stream("notes.txt", &b"hello"[..]),
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap()
    .snapshot;
    let err = postgres::validate(&indexed(&repo), &files, "f", None, None).unwrap_err();
    assert!(
        err.is_usage() && err.to_string().contains("not a PostgreSQL logical backup"),
        "{err}"
    );
}
