//! SQLite sources (`sqlite:///PATH`): a consistent copy of a database that
//! another process writes throughout the backup, restored to a new file
//! that passes `integrity_check` and holds exactly a prefix of the
//! writer's commits, and every kind of bad input refused with nothing
//! half-written.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use super::common::{code, stderr, text, Env};

/// A database of `rows` 1 KiB rows in `commits` and 100 in `notes`.
fn make_db(path: &Path, journal_mode: &str, rows: u64) {
    let db = Connection::open(path).unwrap();
    let mode: String = db
        .query_row(&format!("PRAGMA journal_mode = {journal_mode}"), [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(mode, journal_mode);
    db.execute_batch(
        "CREATE TABLE commits (id INTEGER PRIMARY KEY, payload BLOB NOT NULL);
         CREATE TABLE \"odd \"\"name\" (x);
         CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
         CREATE INDEX notes_body ON notes (body);",
    )
    .unwrap();
    let tx = db.unchecked_transaction().unwrap();
    for i in 1..=rows {
        tx.execute(
            "INSERT INTO commits (id, payload) VALUES (?1, randomblob(1024))",
            [i as i64],
        )
        .unwrap();
    }
    for i in 0..100 {
        tx.execute(
            "INSERT INTO notes (body) VALUES (?1)",
            [format!("note {i}")],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// Commits rows with the next ids, one transaction each, until stopped;
/// `last` is the id last committed.
struct Writer {
    stop: Arc<AtomicBool>,
    last: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(path: &Path, first: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let last = Arc::new(AtomicU64::new(first - 1));
        let (s, l, p) = (stop.clone(), last.clone(), path.to_path_buf());
        let thread = std::thread::spawn(move || {
            let db = Connection::open(&p).unwrap();
            db.busy_timeout(Duration::from_secs(30)).unwrap();
            let mut id = first;
            while !s.load(Ordering::Relaxed) {
                db.execute(
                    "INSERT INTO commits (id, payload) VALUES (?1, randomblob(1024))",
                    [id as i64],
                )
                .unwrap();
                l.store(id, Ordering::SeqCst);
                id += 1;
            }
        });
        Writer {
            stop,
            last,
            thread: Some(thread),
        }
    }

    /// Waits until the writer committed past `id` (it has started).
    fn wait_past(&self, id: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.last.load(Ordering::SeqCst) <= id {
            assert!(std::time::Instant::now() < deadline, "the writer is stuck");
            std::thread::yield_now();
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        self.last.load(Ordering::SeqCst)
    }
}

fn count(db: &Connection, table: &str) -> u64 {
    db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
        r.get::<_, i64>(0)
    })
    .unwrap() as u64
}

/// In WAL mode and in rollback-journal mode: a backup while a writer
/// commits holds a consistent prefix of its commits, restores to a new
/// file (integrity_check ok, the recorded counts), refuses an existing
/// target without --overwrite and replaces it with it.
#[test]
fn a_database_being_written_backs_up_and_restores_a_prefix_of_its_commits() {
    for mode in ["wal", "delete"] {
        let env = Env::new();
        let db_path = env.path(&format!("app-{mode}.db"));
        make_db(&db_path, mode, 20_000);
        let writer = Writer::start(&db_path, 20_001);
        writer.wait_past(20_001);
        let before = writer.last.load(Ordering::SeqCst);
        let url = format!("sqlite://{}", db_path.display());
        let doc = env.json(&["backup", "--source", &url], 0);
        let after_backup = writer.last.load(Ordering::SeqCst);
        let last = writer.stop();
        assert!(
            after_backup > before,
            "{mode}: the writer went on during the backup"
        );
        let id = doc["snapshot_id"].as_str().unwrap().to_string();

        let snaps = env.json(&["snapshots"], 0);
        let source = &snaps[0]["snapshot"]["source"];
        assert_eq!(source["kind"], "sqlite", "{snaps}");
        assert_eq!(source["journal_mode"], mode);
        assert_eq!(source["integrity"], "ok");
        let tables = source["tables"].as_array().unwrap();
        let names: Vec<&str> = tables
            .iter()
            .map(|t| t["table"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["commits", "notes", "odd \"name"], "{source}");
        let recorded = tables[0]["rows"].as_u64().unwrap();
        assert!(
            (before..=after_backup).contains(&recorded),
            "{mode}: {recorded} rows recorded, the writer was between {before} and {after_backup}"
        );
        let listing = String::from_utf8(env.ok(&["snapshots"]).stdout).unwrap();
        assert!(
            listing.contains(&format!("sqlite copy of app-{mode}.db, 3 tables")),
            "{listing}"
        );

        // Restored: whole, and exactly the commits up to the copy.
        let new = env.path(&format!("restored-{mode}.db"));
        let target = format!("sqlite://{}", new.display());
        let r = env.json(&["restore", &id, "--target", &target], 0);
        assert_eq!(r["counts_match"], true, "{r}");
        let db = Connection::open(&new).unwrap();
        let ok: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        assert_eq!(count(&db, "commits"), recorded);
        let max: i64 = db
            .query_row("SELECT max(id) FROM commits", [], |r| r.get(0))
            .unwrap();
        assert_eq!(max as u64, recorded, "{mode}: a prefix, no gaps");
        assert_eq!(count(&db, "notes"), 100);
        drop(db);
        assert!(last > recorded, "{mode}: later commits are not in the copy");

        // An existing target: refused, untouched; replaced with --overwrite.
        std::fs::write(&new, b"precious").unwrap();
        let out = env.run(&["restore", &id, "--target", &target]);
        assert_eq!(code(&out), 2, "{}", text(&out));
        assert!(stderr(&out).contains("--overwrite"), "{}", text(&out));
        assert_eq!(std::fs::read(&new).unwrap(), b"precious");
        let wal = env.path(&format!("restored-{mode}.db-wal"));
        std::fs::write(&wal, b"a stale WAL that must not be replayed").unwrap();
        let r = env.json(&["restore", &id, "--target", &target, "--overwrite"], 0);
        assert_eq!(r["replaced"], true, "{r}");
        assert!(!wal.exists(), "the stale WAL is removed");
        let db = Connection::open(&new).unwrap();
        assert_eq!(count(&db, "commits"), recorded);
        drop(db);

        let v = env.json(&["restore", &id, "--validate-only"], 0);
        assert_eq!(v["counts_match"], true, "{v}");
        assert_eq!(v["rows"], recorded + 100, "{v}");
        // And as a plain file, into a directory.
        let dir = env.path(&format!("files-{mode}"));
        env.ok(&["restore", &id, "--target", dir.to_str().unwrap()]);
        let plain = Connection::open(dir.join(format!("app-{mode}.db"))).unwrap();
        assert_eq!(count(&plain, "commits"), recorded);
    }
}

/// A missing file, a file that is no database, a damaged database and a
/// restore into a missing directory: each a clear error naming it, a
/// non-zero exit, and no snapshot or file written.
#[test]
fn bad_sqlite_input_is_refused_and_writes_nothing() {
    let env = Env::new();
    let snapshots = |env: &Env| env.json(&["snapshots"], 0).as_array().unwrap().len();

    let missing = env.path("missing.db");
    let out = env.run(&[
        "backup",
        "--source",
        &format!("sqlite://{}", missing.display()),
    ]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(stderr(&out).contains("missing.db"), "{}", text(&out));
    assert!(!missing.exists(), "nothing is created");

    let junk = env.path("junk.db");
    std::fs::write(&junk, vec![7u8; 10_000]).unwrap();
    let out = env.run(&[
        "backup",
        "--source",
        &format!("sqlite://{}", junk.display()),
    ]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stderr(&out).contains("not a database") && stderr(&out).contains("junk.db"),
        "{}",
        text(&out)
    );

    // A database damaged inside a table's pages: integrity_check fails.
    let damaged = env.path("damaged.db");
    make_db(&damaged, "delete", 2_000);
    let mut bytes = std::fs::read(&damaged).unwrap();
    let page = 4096;
    for b in &mut bytes[page * 40 + 8..page * 40 + 200] {
        *b = 0xA5;
    }
    std::fs::write(&damaged, &bytes).unwrap();
    let out = env.run(&[
        "backup",
        "--source",
        &format!("sqlite://{}", damaged.display()),
    ]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(stderr(&out).contains("damaged.db"), "{}", text(&out));
    assert_eq!(
        snapshots(&env),
        0,
        "no snapshot was written: {}",
        text(&out)
    );

    // A restore into a directory that does not exist.
    let good = env.path("good.db");
    make_db(&good, "wal", 10);
    let doc = env.json(
        &[
            "backup",
            "--source",
            &format!("sqlite://{}", good.display()),
        ],
        0,
    );
    let id = doc["snapshot_id"].as_str().unwrap();
    let nowhere = env.path("no/such/dir/x.db");
    let out = env.run(&[
        "restore",
        id,
        "--target",
        &format!("sqlite://{}", nowhere.display()),
    ]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(stderr(&out).contains("no/such/dir"), "{}", text(&out));
    // --table has no meaning for a SQLite file.
    let out = env.run(&["restore", id, "--validate-only", "--table", "notes"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    // Nothing left beside a target after a refused restore.
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".lifeboat"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
