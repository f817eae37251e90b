//! `backup --source postgres://…` and `restore --target postgres://…` /
//! `--validate-only` through the binary, against the cluster scripts/test
//! starts: exit codes, JSON, and no password anywhere in what is printed.

use std::process::{Command, Stdio};

use super::common::{code, stderr, text, Env};

fn pg() -> (String, String, String) {
    let var = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!("{k} is not set: run the tests with scripts/test, which starts a PostgreSQL cluster")
        })
    };
    (
        var("LIFEBOAT_TEST_PG_HOST"),
        var("LIFEBOAT_TEST_PG_PORT"),
        var("LIFEBOAT_TEST_PG_BIN"),
    )
}

fn psql(db: &str, sql: &str) -> String {
    let (host, port, bin) = pg();
    let out = Command::new(format!("{bin}/psql"))
        .args([
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            &host,
            "-p",
            &port,
            "-U",
            "postgres",
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

#[test]
fn a_database_backs_up_restores_and_validates_from_the_command_line() {
    let (host, port, bin) = pg();
    let env = Env::new();
    let db = format!("lb_cli_{}", std::process::id());
    psql("postgres", &format!("CREATE DATABASE {db}"));
    psql(&db, "CREATE TABLE orders (id serial PRIMARY KEY, note text); INSERT INTO orders (note) SELECT 'line\nbreak ' || g FROM generate_series(1, 1234) g");
    // The password is in the URL (trust auth ignores it): it must show nowhere.
    let url = |db: &str| format!("postgres://postgres:hunter2@/{db}?host={host}&port={port}");
    let run = |args: &[&str]| {
        let mut c = env.cmd();
        c.env("LIFEBOAT_PG_BINDIR", &bin).args(args);
        c.output().unwrap()
    };
    let out = run(&["--json", "backup", "--source", &url(&db)]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(!text(&out).contains("hunter2"), "{}", text(&out));
    let snaps = env.json(&["snapshots"], 0);
    let source = &snaps[0]["snapshot"]["source"];
    assert_eq!(source["kind"], "postgres");
    assert_eq!(source["tables"][0]["table"], "orders");
    assert_eq!(source["tables"][0]["rows"], 1234);
    assert!(!snaps.to_string().contains("hunter2"));

    let out = run(&["--json", "restore", "latest", "--validate-only"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["counts_match"], true);
    assert_eq!(doc["rows"], 1234);

    let target = format!("{db}_copy");
    let out = run(&["restore", "latest", "--target", &url(&target)]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("1 table of 1 match the counts recorded at backup (1234 rows)"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("hunter2"), "{}", text(&out));
    assert_eq!(
        psql(
            &target,
            "SELECT count(*) FROM orders WHERE note LIKE 'line\nbreak %'"
        ),
        "1234"
    );

    // Again into the same name: refused (usage), the database untouched.
    psql(
        &target,
        "INSERT INTO orders (note) VALUES ('added after the restore')",
    );
    let out = run(&["restore", "latest", "--target", &url(&target)]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains("already exists") && stderr(&out).contains("--overwrite"),
        "{}",
        text(&out)
    );
    assert_eq!(psql(&target, "SELECT count(*) FROM orders"), "1235");

    // A server that is not there, a database that does not exist: exit 1, no snapshot.
    for bad in [
        format!("postgres://postgres:hunter2@127.0.0.1:1/{db}"),
        url("lb_no_such_database"),
    ] {
        let out = run(&["backup", "--source", &bad]);
        assert_eq!(code(&out), 1, "{}", text(&out));
        assert!(!text(&out).contains("hunter2"), "{}", text(&out));
    }
    // A mistyped parameter and an unknown scheme are usage errors.
    for bad in [
        format!("{}&sslmod=require", url(&db)),
        "oracle://h/db".to_string(),
    ] {
        assert_eq!(code(&run(&["backup", "--source", &bad])), 2);
    }
    assert_eq!(env.snapshot_ids().len(), 1);
}

/// A private cluster of the test's own (archive settings need a restart),
/// run as the `postgres` user under the test's directory; stopped on drop.
struct Cluster {
    data: std::path::PathBuf,
    bin: String,
    sock: std::path::PathBuf,
    port: u16,
}

impl Cluster {
    fn start(dir: &std::path::Path, conf: &str) -> Cluster {
        Cluster::start_with(dir, conf, "")
    }

    fn start_with(dir: &std::path::Path, conf: &str, initdb: &str) -> Cluster {
        let (_, _, bin) = pg();
        let sock = dir.join("sock");
        let data = dir.join("pgdata");
        std::fs::create_dir_all(&sock).unwrap();
        sh(&format!(
            "chown postgres: {} {}",
            dir.display(),
            sock.display()
        ));
        as_postgres(&format!(
            "{bin}/initdb -D {} -A trust -U postgres {initdb} >/dev/null",
            data.display()
        ));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        use std::io::Write;
        writeln!(f, "port = {port}\nunix_socket_directories = '{}'\nlisten_addresses = ''\nfsync = off\n{conf}", sock.display()).unwrap();
        as_postgres(&format!(
            "{bin}/pg_ctl -D {} -l {}/log -w start >/dev/null",
            data.display(),
            dir.display()
        ));
        Cluster {
            data,
            bin,
            sock,
            port,
        }
    }

    fn stop(&self) {
        as_postgres(&format!(
            "{}/pg_ctl -D {} -m fast -w stop >/dev/null",
            self.bin,
            self.data.display()
        ));
    }

    fn restart(&self) {
        as_postgres(&format!(
            "{}/pg_ctl -D {} -l {}/log -w start >/dev/null",
            self.bin,
            self.data.display(),
            self.data.parent().unwrap().display()
        ));
    }

    fn psql(&self, sql: &str) -> String {
        let out = Command::new(format!("{}/psql", self.bin))
            .args([
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .env("PGHOST", &self.sock)
            .env("PGPORT", self.port.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                &format!("{}/pg_ctl", self.bin),
                "-D",
            ])
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn sh(cmd: &str) {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn as_postgres(cmd: &str) {
    sh(&format!(
        "runuser -u postgres -- sh -c {}",
        shell_quote(cmd)
    ));
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Polls `cond` until it holds or `secs` pass.
fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn wal_push_as_archive_command_is_durable_idempotent_fetchable_and_verified() {
    let env = Env::new();
    let dir = env.path("pg");
    std::fs::create_dir_all(dir.join("copies")).unwrap();
    let pwfile = env.path("pg/password");
    std::fs::write(&pwfile, super::common::PASSWORD).unwrap();
    let lifeboat = assert_cmd::cargo::cargo_bin("lifeboat");
    // Each archived file is also copied aside, to compare what comes back.
    let archive = format!(
        "archive_mode = on\narchive_command = 'LIFEBOAT_REPOSITORY={} LIFEBOAT_PASSWORD_FILE={} {} -q wal push %p && cp %p {}/copies/%f'",
        env.repo.display(),
        pwfile.display(),
        lifeboat.display(),
        dir.display()
    );
    sh(&format!(
        "chown -R postgres: {} {}",
        env.repo.display(),
        env.path("pg").display()
    ));
    let c = Cluster::start(&dir, &archive);
    c.psql("CREATE TABLE t (x int)");
    for i in 0..4 {
        c.psql(&format!(
            "INSERT INTO t SELECT generate_series(1, 1000) + {i}"
        ));
        c.psql("SELECT pg_switch_wal()");
    }
    wait_for(120, "4 archived segments", || {
        c.psql("SELECT archived_count FROM pg_stat_archiver")
            .parse::<u64>()
            .unwrap()
            >= 4
    });
    assert_eq!(
        c.psql("SELECT failed_count FROM pg_stat_archiver"),
        "0",
        "no push failed"
    );

    let report = env.json(&["wal", "verify"], 0);
    let tl = &report[0]["timelines"][0];
    assert_eq!(tl["timeline"], 1);
    assert_eq!(tl["ranges"].as_array().unwrap().len(), 1, "{report}");
    let segments = tl["ranges"][0]["segments"].as_u64().unwrap();
    assert!(segments >= 4, "{report}");
    let first = tl["ranges"][0]["first"].as_str().unwrap().to_string();
    let last = tl["ranges"][0]["last"].as_str().unwrap().to_string();

    // What comes back is what PostgreSQL archived, byte for byte.
    let pgdata = c.data.display().to_string();
    let back = env.path("back");
    for name in [&first, &last] {
        let out = env.run(&[
            "wal",
            "fetch",
            name,
            back.to_str().unwrap(),
            "--pgdata",
            &pgdata,
        ]);
        assert_eq!(code(&out), 0, "{}", text(&out));
        let original = std::fs::read(dir.join("copies").join(name)).unwrap();
        assert!(std::fs::read(&back).unwrap() == original, "{name} differs");
        assert_eq!(original.len(), 16 << 20);
    }
    // Pushed again: success. Different bytes under an archived name: refused.
    let copy = dir.join("copies").join(&first);
    let out = env.run(&["wal", "push", copy.to_str().unwrap(), "--pgdata", &pgdata]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("already archived"), "{}", text(&out));
    let mut bytes = std::fs::read(&copy).unwrap();
    bytes[100_000] ^= 1;
    let forged = env.path("forged");
    std::fs::create_dir_all(&forged).unwrap();
    std::fs::write(forged.join(&first), &bytes).unwrap();
    let out = env.run(&[
        "wal",
        "push",
        forged.join(&first).to_str().unwrap(),
        "--pgdata",
        &pgdata,
    ]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(stderr(&out).contains("different content"), "{}", text(&out));
    assert!(std::fs::read(&back).is_ok());

    // Not archived: exit 1 (PostgreSQL asks past the end). Not a WAL name: usage.
    let out = env.run(&[
        "wal",
        "fetch",
        "0000000100000000000000FF",
        back.to_str().unwrap(),
        "--pgdata",
        &pgdata,
    ]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let out = env.run(&[
        "wal",
        "fetch",
        "../../etc/passwd",
        back.to_str().unwrap(),
        "--pgdata",
        &pgdata,
    ]);
    assert_eq!(code(&out), 2, "{}", text(&out));

    // A segment lost from the archive is a gap that verify names.
    let logs: Vec<_> = std::fs::read_dir(env.repo.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let mut segs: Vec<_> = logs
        .iter()
        .filter(|p| p.file_name().unwrap().len() > 40)
        .cloned()
        .collect();
    segs.sort();
    let gone = &segs[1];
    std::fs::remove_file(gone).unwrap();
    let gone_name = gone
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .rsplit('-')
        .next()
        .unwrap()
        .to_string();
    let out = env.run(&["wal", "verify"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stderr(&out).contains("missing after") && stderr(&out).contains(&gone_name),
        "{gone_name}: {}",
        text(&out)
    );
}

impl Cluster {
    /// A cluster on a restored data directory (archiving off: a test restore
    /// must not add timelines to the archive the next restore reads).
    fn start_restored(data: &std::path::Path, dir: &std::path::Path) -> Cluster {
        Cluster::start_restored_archiving(data, dir, false)
    }

    fn start_restored_archiving(
        data: &std::path::Path,
        dir: &std::path::Path,
        archive: bool,
    ) -> Cluster {
        let (_, _, bin) = pg();
        let sock = dir.join("sock");
        std::fs::create_dir_all(&sock).unwrap();
        sh(&format!(
            "chown postgres: {} {}",
            dir.display(),
            sock.display()
        ));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.auto.conf"))
            .unwrap();
        use std::io::Write;
        writeln!(
            f,
            "port = {port}\nunix_socket_directories = '{}'",
            sock.display()
        )
        .unwrap();
        if !archive {
            writeln!(f, "archive_mode = off").unwrap();
        }
        as_postgres(&format!(
            "{bin}/pg_ctl -D {} -l {}/log -w -t 120 start >/dev/null",
            data.display(),
            dir.display()
        ));
        let c = Cluster {
            data: data.to_path_buf(),
            bin,
            sock,
            port,
        };
        wait_for(120, "recovery to end", || {
            c.psql("SELECT pg_is_in_recovery()") == "f"
        });
        c
    }

    /// Runs SQL statements one per transaction (autocommit), from stdin.
    fn script(&self, sql: &str) {
        use std::io::Write;
        let mut child = Command::new(format!("{}/psql", self.bin))
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .env("PGHOST", &self.sock)
            .env("PGPORT", self.port.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
}

/// A cluster under `env`'s `pg` directory archiving into `env`'s repository
/// with `lifeboat wal push` as its archive_command (the password in the
/// file `pg/password`), `extra` settings added; and its URL.
fn archiving_cluster(env: &Env, extra: &str) -> (Cluster, String) {
    let dir = env.path("pg");
    std::fs::create_dir_all(&dir).unwrap();
    let pwfile = env.path("pg/password");
    std::fs::write(&pwfile, super::common::PASSWORD).unwrap();
    let conf = format!(
        "archive_mode = on\n{extra}\narchive_command = 'LIFEBOAT_REPOSITORY={} LIFEBOAT_PASSWORD_FILE={} {} -q wal push %p'",
        env.repo.display(),
        pwfile.display(),
        assert_cmd::cargo::cargo_bin("lifeboat").display()
    );
    sh(&format!(
        "chown -R postgres: {} {}",
        env.repo.display(),
        dir.display()
    ));
    let c = Cluster::start(&dir, &conf);
    let url = format!(
        "postgres://postgres@/postgres?host={}&port={}",
        c.sock.display(),
        c.port
    );
    (c, url)
}

/// Runs lifeboat on `env`'s repository with the server's programs and the
/// password in the file an [`archiving_cluster`] has (a restore's
/// restore_command needs a file).
fn run_pg(env: &Env, args: &[&str]) -> std::process::Output {
    let (_, _, bin) = pg();
    env.cmd()
        .env("LIFEBOAT_PG_BINDIR", &bin)
        .env("LIFEBOAT_PASSWORD_FILE", env.path("pg/password"))
        .env_remove("LIFEBOAT_PASSWORD")
        .args(args)
        .output()
        .unwrap()
}

/// The PITR exactness: transactions committed one by one across
/// several WAL segments and two base backups; for target times in every
/// stretch, the restored cluster holds exactly the transactions committed
/// at or before the target (commit times from `track_commit_timestamp`).
/// Targets before the first backup or past the last commit are refused
/// with nothing written.
#[test]
fn point_in_time_restores_hold_exactly_the_transactions_committed_by_the_target() {
    let env = Env::new();
    let (c, url) = archiving_cluster(&env, "track_commit_timestamp = on");
    let run = |args: &[&str]| run_pg(&env, args);
    c.psql("CREATE TABLE ledger (id int PRIMARY KEY)");
    let mut next = 0;
    let mut write = |rows: usize, switch_every: usize| {
        let mut sql = String::new();
        for i in 0..rows {
            next += 1;
            sql += &format!("INSERT INTO ledger VALUES ({next});\nSELECT pg_sleep(0.002);\n");
            if (i + 1) % switch_every == 0 {
                sql += "SELECT pg_switch_wal();\n";
            }
        }
        c.script(&sql);
    };
    write(100, 50);
    let out = run(&["backup", "--source", &url, "--physical"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    write(150, 50);
    let out = run(&["backup", "--source", &url, "--physical"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    write(150, 50);
    // The segment holding the last commit, closed and archived.
    let last = c.psql("SELECT pg_walfile_name(pg_switch_wal())");
    wait_for(120, "the last segment archived", || {
        c.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") >= last
    });
    let commits: Vec<(i64, String)> = c
        .psql("SELECT id, to_char(pg_xact_commit_timestamp(xmin) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM ledger ORDER BY id")
        .lines()
        .map(|l| {
            let (id, ts) = l.split_once('|').unwrap();
            (id.parse().unwrap(), ts.to_string())
        })
        .collect();
    assert_eq!(commits.len(), 400);
    let snaps = env.json(&["snapshots"], 0);
    let ends: Vec<String> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["snapshot"]["source"]["end_time"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ends.len(), 2);
    assert_eq!(snaps[0]["snapshot"]["source"]["timeline"], 1);
    assert!(snaps[0]["snapshot"]["source"]["stop_lsn"]
        .as_str()
        .unwrap()
        .contains('/'));

    // Refused, nothing written: before the first backup, past the last commit.
    let nowhere = env.path("nowhere");
    for (t, says) in [
        (
            commits[10].1.clone(),
            "before the oldest usable base backup",
        ),
        (
            "2099-01-01T00:00:00Z".to_string(),
            "last commit in the archived WAL",
        ),
        (commits[399].1.clone(), "last commit in the archived WAL"),
    ] {
        let out = run(&[
            "restore",
            "latest",
            "--time",
            &t,
            "--target",
            nowhere.to_str().unwrap(),
        ]);
        assert_eq!(code(&out), 1, "{}", text(&out));
        assert!(stderr(&out).contains(says), "{t}: {}", text(&out));
        assert!(!nowhere.exists(), "nothing written");
    }

    // Targets: in the stretch after each backup, and the last that can be
    // reached (replay stops on seeing the next commit).
    let after = |end: &str| {
        commits
            .iter()
            .position(|(_, ts)| ts.as_str() > end)
            .unwrap()
    };
    let picks = [
        after(&ends[0]) + 20,
        after(&ends[1]) + 7,
        after(&ends[1]) + 90,
        commits.len() - 2,
    ];
    for (k, &i) in picks.iter().enumerate() {
        let t = &commits[i].1;
        let data = env.path(&format!("restored{k}/data"));
        let out = run(&[
            "--json",
            "restore",
            "latest",
            "--time",
            t,
            "--target",
            data.to_str().unwrap(),
        ]);
        assert_eq!(code(&out), 0, "{}", text(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let want_snap = if i > after(&ends[1]) {
            &snaps[1]
        } else {
            &snaps[0]
        };
        assert_eq!(
            doc["snapshot_id"], want_snap["id"],
            "the newest backup that reaches {t}"
        );
        let r = Cluster::start_restored(&data, &env.path(&format!("restored{k}")));
        let expected: Vec<i64> = commits
            .iter()
            .filter(|(_, ts)| ts <= t)
            .map(|(id, _)| *id)
            .collect();
        let got: Vec<i64> = r
            .psql("SELECT id FROM ledger ORDER BY id")
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        assert_eq!(
            got, expected,
            "restored to {t}: exactly what committed by then"
        );
    }

    // An xid target: through that transaction's commit, nothing after.
    let xid_row = after(&ends[1]) + 40;
    let xid = c.psql(&format!(
        "SELECT xmin FROM ledger WHERE id = {}",
        commits[xid_row].0
    ));
    let data = env.path("restored-xid/data");
    let out = run(&[
        "restore",
        "latest",
        "--xid",
        &xid,
        "--target",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let r = Cluster::start_restored(&data, &env.path("restored-xid"));
    assert_eq!(
        r.psql("SELECT max(id) FROM ledger"),
        commits[xid_row].0.to_string()
    );
    drop(r);

    // A copy in another repository restores to the same points: the WAL
    // that continues its base backups went with them.
    let copy = env.path("copy");
    let in_copy = || {
        let mut c = env.cmd();
        c.env("LIFEBOAT_REPOSITORY", &copy)
            .env("LIFEBOAT_PG_BINDIR", &pg().2)
            .env("LIFEBOAT_PASSWORD_FILE", env.path("pg/password"))
            .env_remove("LIFEBOAT_PASSWORD");
        c
    };
    let out = in_copy().arg("init").output().unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = env
        .cmd()
        .env("LIFEBOAT_TO_PASSWORD", super::common::PASSWORD)
        .args(["--json", "copy", "--to-repo", copy.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["snapshots_copied"], 2, "{doc}");
    assert!(doc["logs_copied"].as_u64().unwrap() >= 8, "{doc}");
    sh(&format!("chown -R postgres: {}", copy.display()));
    let wal_here = env.json(&["wal", "verify"], 0);
    let out = in_copy()
        .args(["--json", "wal", "verify"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let wal_there: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(wal_there[0]["timelines"], wal_here[0]["timelines"]);
    let t = &commits[picks[2]].1;
    let data = env.path("from-copy/data");
    let out = in_copy()
        .args([
            "restore",
            "latest",
            "--time",
            t,
            "--target",
            data.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let r = Cluster::start_restored(&data, &env.path("from-copy"));
    let expected: Vec<String> = commits
        .iter()
        .filter(|(_, ts)| ts <= t)
        .map(|(id, _)| id.to_string())
        .collect();
    assert_eq!(
        r.psql("SELECT id FROM ledger ORDER BY id")
            .lines()
            .collect::<Vec<_>>(),
        expected,
        "the copy restored to {t}"
    );
    drop(r);

    // Forgetting the first base backup expires the WAL only it needed.
    let start2 = snaps[1]["snapshot"]["source"]["start_wal"]
        .as_str()
        .unwrap()
        .to_string();
    let first_archived = env.json(&["wal", "verify"], 0)[0]["timelines"][0]["ranges"][0]["first"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(first_archived < start2);
    let doc = env.json(&["forget", "--keep-last", "1", "--prune"], 0);
    let wal = &doc["prune"]["wal"][0];
    assert_eq!(wal["keep_from"], start2.as_str(), "{doc}");
    assert!(wal["deleted"].as_u64().unwrap() > 0, "{doc}");
    let report = env.json(&["wal", "verify"], 0);
    assert_eq!(
        report[0]["timelines"][0]["ranges"][0]["first"],
        start2.as_str(),
        "{report}"
    );
    assert_eq!(
        report[0]["timelines"][0]["ranges"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // What the kept backup needs still restores.
    let t = &commits[after(&ends[1]) + 50].1;
    let data = env.path("after-forget/data");
    let out = run(&[
        "restore",
        "latest",
        "--time",
        t,
        "--target",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    // A timeline the archive does not have is refused, nothing written.
    let out = run(&[
        "restore",
        "latest",
        "--latest",
        "--timeline",
        "7",
        "--target",
        nowhere.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stderr(&out).contains("timeline 7 does not exist in the archive"),
        "{}",
        text(&out)
    );
    assert!(!nowhere.exists(), "nothing written");

    // A segment deleted after the kept backup: a restore that needs it
    // names it and writes nothing; one that stops before it still works.
    let range = &report[0]["timelines"][0]["ranges"][0];
    let last_seg = range["last"].as_str().unwrap();
    let per_log = 0x1_0000_0000u64 / (16 << 20);
    let no = lifeboat_sources::postgres::wal::segment_number(last_seg, per_log).unwrap();
    let gone = lifeboat_sources::postgres::wal::seg_name(1, no - 1, per_log);
    let stop_seg = snaps[1]["snapshot"]["source"]["stop_lsn"].as_str().unwrap();
    let stop_no = lifeboat_sources::postgres::physical::parse_lsn(stop_seg).unwrap() / (16 << 20);
    assert!(stop_no < no - 1, "the gap lies after the backup");
    let object = std::fs::read_dir(env.repo.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(&gone))
        .unwrap();
    std::fs::remove_file(object).unwrap();
    for goal in [
        vec!["--latest"],
        vec!["--time", commits[commits.len() - 2].1.as_str()],
    ] {
        let mut args = vec!["restore", "latest"];
        args.extend(goal.iter().copied());
        args.extend(["--target", nowhere.to_str().unwrap()]);
        let out = run(&args);
        assert_eq!(code(&out), 1, "{goal:?}: {}", text(&out));
        assert!(
            stderr(&out).contains(&format!("lacks WAL segment {gone}")),
            "{goal:?}: {}",
            text(&out)
        );
        assert!(!nowhere.exists(), "nothing written");
    }
    let out = env.run(&["wal", "verify"]);
    assert_eq!(code(&out), 1, "a gap fails verify: {}", text(&out));
    assert!(text(&out).contains(&gone), "{}", text(&out));
}

/// A corrupt page fails the base backup (checksums are verified as pages
/// are read) and writes no snapshot; `wal_level = minimal` is named; after
/// a promotion (a restore recovering into timeline 2) archiving goes on,
/// with the timeline's history file, and `wal verify` shows both timelines.
#[test]
fn corrupt_pages_fail_a_base_backup_and_archiving_follows_a_promotion() {
    let env = Env::new();
    let (_, _, bin) = pg();
    let dir = env.path("pg");
    std::fs::create_dir_all(&dir).unwrap();
    let pwfile = env.path("pg/password");
    std::fs::write(&pwfile, super::common::PASSWORD).unwrap();
    let lifeboat = assert_cmd::cargo::cargo_bin("lifeboat");
    let archive = format!(
        "archive_mode = on\narchive_command = 'LIFEBOAT_REPOSITORY={} LIFEBOAT_PASSWORD_FILE={} {} -q wal push %p'",
        env.repo.display(),
        pwfile.display(),
        lifeboat.display()
    );
    sh(&format!(
        "chown -R postgres: {} {}",
        env.repo.display(),
        dir.display()
    ));
    let run = |args: &[&str]| {
        let mut cmd = env.cmd();
        cmd.env("LIFEBOAT_PG_BINDIR", &bin)
            .env("LIFEBOAT_PASSWORD_FILE", &pwfile)
            .env_remove("LIFEBOAT_PASSWORD");
        cmd.args(args).output().unwrap()
    };
    let url = |c: &Cluster| {
        format!(
            "postgres://postgres@/postgres?host={}&port={}",
            c.sock.display(),
            c.port
        )
    };

    // wal_level = minimal: named, exit 2, nothing written.
    let minimal = Cluster::start(
        &env.path("minimal"),
        "wal_level = minimal\nmax_wal_senders = 0",
    );
    let out = run(&["backup", "--source", &url(&minimal), "--physical"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains("wal_level is minimal"),
        "{}",
        text(&out)
    );
    drop(minimal);

    let c = Cluster::start_with(&dir, &archive, "--data-checksums");
    c.psql(
        "CREATE TABLE t AS SELECT g AS x, repeat('y', 100) AS pad FROM generate_series(1, 5000) g",
    );
    let out = run(&["backup", "--source", &url(&c), "--physical"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let snaps = env.json(&["snapshots"], 0);
    assert_eq!(snaps[0]["snapshot"]["source"]["data_checksums"], true);

    // Restore it and let it recover to the end and promote: timeline 2,
    // archiving into the same repository.
    let data = env.path("promoted/data");
    let out = run(&["restore", "latest", "--target", data.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let p = Cluster::start_restored_archiving(&data, &env.path("promoted"), true);
    // At the end of the archive, recovery ends and the server promotes.
    p.psql("INSERT INTO t VALUES (0, 'after the promotion')");
    let last = p.psql("SELECT pg_walfile_name(pg_switch_wal())");
    assert!(last.starts_with("00000002"), "{last}");
    wait_for(120, "timeline 2 archived", || {
        p.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") >= last
    });
    drop(p);
    let report = env.json(&["wal", "verify"], 0);
    let tls = report[0]["timelines"].as_array().unwrap();
    assert_eq!(
        tls.iter()
            .map(|t| t["timeline"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2],
        "{report}"
    );
    assert_eq!(tls[1]["history"], true, "{report}");

    // A flipped byte in a table's page: the backup fails, naming checksums.
    let file = c.psql("SELECT pg_relation_filepath('t')");
    c.psql("CHECKPOINT");
    c.stop();
    let path = c.data.join(&file);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8192 + 4000] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    c.restart();
    let out = run(&["backup", "--source", &url(&c), "--physical"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(stderr(&out).contains("checksum"), "{}", text(&out));
    assert_eq!(
        env.snapshot_ids().len(),
        1,
        "no snapshot of the corrupt cluster"
    );
}

/// `wal push` killed with SIGKILL at moments spread over its run, then
/// retried as PostgreSQL retries: the archive holds nothing or the whole
/// segment after every kill, the retry succeeds, and four pushes of one
/// segment at once all succeed with one object stored.
#[test]
fn wal_push_killed_at_any_moment_loses_nothing_and_retries_succeed() {
    let env = Env::new();
    let pgdata = env.path("pgdata");
    std::fs::create_dir_all(pgdata.join("global")).unwrap();
    let sys: u64 = 7_443_254_837_113_460_316;
    let mut control = vec![0u8; 8192];
    control[..8].copy_from_slice(&sys.to_le_bytes());
    std::fs::write(pgdata.join("global/pg_control"), &control).unwrap();
    let segment = |n: u64| {
        let mut b = super::common::random_bytes(16 << 20, n);
        b[24..32].copy_from_slice(&sys.to_le_bytes());
        b[32..36].copy_from_slice(&(16u32 << 20).to_le_bytes());
        b
    };
    let wal = env.path("pg_wal");
    std::fs::create_dir_all(&wal).unwrap();
    let name = "000000010000000000000007";
    let bytes = segment(7);
    std::fs::write(wal.join(name), &bytes).unwrap();
    let seg = wal.join(name);
    let back = env.path("back");
    let fetch = || {
        env.run(&[
            "wal",
            "fetch",
            name,
            back.to_str().unwrap(),
            "--pgdata",
            pgdata.to_str().unwrap(),
        ])
    };
    let mut stored_once = false;
    for i in 0..24u64 {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("lifeboat"))
            .args([
                "-q",
                "wal",
                "push",
                seg.to_str().unwrap(),
                "--pgdata",
                pgdata.to_str().unwrap(),
            ])
            .env("LIFEBOAT_REPOSITORY", &env.repo)
            .env("LIFEBOAT_PASSWORD", super::common::PASSWORD)
            .spawn()
            .unwrap();
        // Kill moments spread from at once to after the push would end.
        std::thread::sleep(std::time::Duration::from_millis(i * i / 2));
        let _ = child.kill();
        child.wait().unwrap();
        match code(&fetch()) {
            0 => {
                assert!(
                    std::fs::read(&back).unwrap() == bytes,
                    "after kill {i}: whole or nothing"
                );
                stored_once = true;
            }
            1 => assert!(
                !stored_once,
                "after kill {i}: a stored segment never disappears"
            ),
            c => panic!("fetch exit {c}"),
        }
    }
    let out = env.run(&[
        "wal",
        "push",
        seg.to_str().unwrap(),
        "--pgdata",
        pgdata.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(code(&fetch()), 0);
    assert!(std::fs::read(&back).unwrap() == bytes);

    // Four pushes of one new segment at once: all succeed, one object.
    let name2 = "000000010000000000000008";
    std::fs::write(wal.join(name2), segment(8)).unwrap();
    let pushes: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("lifeboat"))
                .args([
                    "wal",
                    "push",
                    wal.join(name2).to_str().unwrap(),
                    "--pgdata",
                    pgdata.to_str().unwrap(),
                ])
                .env("LIFEBOAT_REPOSITORY", &env.repo)
                .env("LIFEBOAT_PASSWORD", super::common::PASSWORD)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for p in pushes {
        let out = p.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "{}", text(&out));
    }
    let objects: Vec<String> = std::fs::read_dir(env.repo.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(objects.len(), 2, "{objects:?}");
    let report = env.json(&["wal", "verify"], 0);
    assert_eq!(
        report[0]["timelines"][0]["ranges"][0]["segments"], 2,
        "{report}"
    );

    // A fetch starts fetching the next segments ahead; a later fetch is
    // served from that spool (here even after the object is gone).
    for n in 9..=11u64 {
        let name = format!("0000000100000000000000{n:02X}");
        std::fs::write(wal.join(&name), segment(n)).unwrap();
        env.ok(&[
            "wal",
            "push",
            wal.join(&name).to_str().unwrap(),
            "--pgdata",
            pgdata.to_str().unwrap(),
        ]);
    }
    assert_eq!(code(&fetch()), 0);
    let spool = pgdata.join("pg_wal/lifeboat-prefetch");
    wait_for(60, "the next segments prefetched", || {
        (8..=11u64).all(|n| {
            spool
                .join(format!("0000000100000000000000{n:02X}"))
                .exists()
        })
    });
    let ninth = "000000010000000000000009";
    let object = std::fs::read_dir(env.repo.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(ninth))
        .unwrap();
    std::fs::remove_file(object).unwrap();
    let out = env.run(&[
        "wal",
        "fetch",
        ninth,
        back.to_str().unwrap(),
        "--pgdata",
        pgdata.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        std::fs::read(&back).unwrap() == segment(9),
        "the prefetched segment, whole"
    );
    assert!(!spool.join(ninth).exists(), "handed over, not copied");
    assert!(
        !spool.join("000000010000000000000008").exists(),
        "older ones dropped"
    );
}

/// A URL without a database backs up every database and the globals; it
/// restores onto another server whole (roles first), each database
/// validated, or one database alone with --database; --validate-only
/// checks them all.
#[test]
fn a_whole_server_backs_up_and_restores_onto_another_with_its_roles() {
    let env = Env::new();
    let (_, _, bin) = pg();
    let a = Cluster::start(&env.path("a"), "");
    let b = Cluster::start(&env.path("b"), "");
    a.psql("CREATE ROLE reporting LOGIN");
    for (db, rows) in [("shop", 321), ("billing", 45)] {
        a.psql(&format!("CREATE DATABASE {db} OWNER reporting"));
        let out = Command::new(format!("{bin}/psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-d", db, "-c"])
            .arg(format!("CREATE TABLE items AS SELECT generate_series(1, {rows}) AS id; ALTER TABLE items OWNER TO reporting"))
            .env("PGHOST", &a.sock)
            .env("PGPORT", a.port.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let server = |c: &Cluster| {
        format!(
            "postgres://postgres@/?host={}&port={}",
            c.sock.display(),
            c.port
        )
    };
    let run = |args: &[&str]| {
        let mut cmd = env.cmd();
        cmd.env("LIFEBOAT_PG_BINDIR", &bin).args(args);
        cmd.output().unwrap()
    };
    let out = run(&["backup", "--source", &server(&a)]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let snaps = env.json(&["snapshots"], 0);
    let paths: Vec<&str> = snaps[0]["snapshot"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/globals.sql",
            "/billing.pgdump",
            "/postgres.pgdump",
            "/shop.pgdump"
        ]
    );

    let out = run(&["--json", "restore", "latest", "--validate-only"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["rows"], 366, "{doc}");

    let out = run(&["restore", "latest", "--target", &server(&b)]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let count = |db: &str| {
        let out = Command::new(format!("{bin}/psql"))
            .args(["-X", "-At", "-U", "postgres", "-d", db, "-c", "SELECT count(*), pg_get_userbyid(relowner) FROM items, pg_class WHERE relname = 'items' GROUP BY 2"])
            .env("PGHOST", &b.sock)
            .env("PGPORT", b.port.to_string())
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(count("shop"), "321|reporting", "owned by the restored role");
    assert_eq!(count("billing"), "45|reporting");

    // One database of it, into a new name.
    let one = format!(
        "postgres://postgres@/shop_copy?host={}&port={}",
        b.sock.display(),
        b.port
    );
    let out = run(&["restore", "latest", "--database", "shop", "--target", &one]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(count("shop_copy"), "321|reporting");
    // Without --database into a named database: which one is ambiguous.
    let out = run(&[
        "restore",
        "latest",
        "--target",
        &format!(
            "postgres://postgres@/x?host={}&port={}",
            b.sock.display(),
            b.port
        ),
    ]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(stderr(&out).contains("--database"), "{}", text(&out));
}

/// The streaming RPO: with `wal stream` running, kill -9 the
/// primary mid-write, restore the base backup with all streamed WAL, and
/// count the acknowledged commits lost: at most those of the last second
/// (async), none with --synchronous.
#[test]
fn wal_stream_loses_at_most_a_second_of_commits_and_none_when_synchronous() {
    for synchronous in [false, true] {
        let env = Env::new();
        let (_, _, bin) = pg();
        let dir = env.path("pg");
        std::fs::create_dir_all(&dir).unwrap();
        let pwfile = env.path("password");
        std::fs::write(&pwfile, super::common::PASSWORD).unwrap();
        sh(&format!(
            "chown -R postgres: {} {}",
            env.repo.display(),
            dir.display()
        ));
        let conf = if synchronous {
            "synchronous_standby_names = 'lifeboat'"
        } else {
            ""
        };
        let c = Cluster::start(&dir, conf);
        let url = format!(
            "postgres://postgres@/postgres?host={}&port={}",
            c.sock.display(),
            c.port
        );
        let lifeboat = |args: &[&str]| {
            let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("lifeboat"));
            cmd.env("LIFEBOAT_REPOSITORY", &env.repo)
                .env("LIFEBOAT_PASSWORD_FILE", &pwfile)
                .env("LIFEBOAT_PG_BINDIR", &bin)
                .args(args);
            cmd
        };
        let spool = env.path("spool");
        let mut stream_args = vec![
            "-q",
            "wal",
            "stream",
            "--source",
            &url,
            "--spool",
            spool.to_str().unwrap(),
        ];
        if synchronous {
            stream_args.push("--synchronous");
        }
        let mut streamer = lifeboat(&stream_args)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let out = lifeboat(&["backup", "--source", &url, "--physical"])
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{}", text(&out));
        c.psql("CREATE TABLE acked (id int PRIMARY KEY)");
        // Commits, each acknowledged when psql returns; then the crash.
        let mut acked = vec![];
        let start = std::time::Instant::now();
        for id in 1.. {
            c.psql(&format!("INSERT INTO acked VALUES ({id})"));
            acked.push((id, std::time::Instant::now()));
            if start.elapsed() > std::time::Duration::from_secs(3) {
                break;
            }
        }
        let pid = std::fs::read_to_string(c.data.join("postmaster.pid")).unwrap();
        sh(&format!("kill -9 {}", pid.lines().next().unwrap()));
        let crashed = std::time::Instant::now();

        // Restore the base backup; wait until the stream's last upload is in
        // the repository (the partial segment equals the spool's), then replay.
        let data = env.path("restored/data");
        let out = lifeboat(&["restore", "latest", "--target", data.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{}", text(&out));
        let partial = std::fs::read_dir(&spool)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .find(|n| n.ends_with(".partial"))
            .expect("a partial segment in the spool");
        let seg = partial.trim_end_matches(".partial").to_string();
        let probe = env.path("probe");
        wait_for(30, "the last streamed WAL uploaded", || {
            let ok = lifeboat(&[
                "wal",
                "fetch",
                &seg,
                probe.to_str().unwrap(),
                "--pgdata",
                data.to_str().unwrap(),
            ])
            .env("LIFEBOAT_WAL_PREFETCH", "0")
            .output()
            .unwrap()
            .status
            .success();
            ok && std::fs::read(&probe).ok() == std::fs::read(spool.join(&partial)).ok()
        });
        let _ = streamer.kill();
        streamer.wait().unwrap();
        drop(c);
        // The stream ran as root; the restored server reads as postgres.
        sh(&format!("chown -R postgres: {}", env.repo.display()));
        let r = Cluster::start_restored(&data, &env.path("restored"));
        let present: std::collections::HashSet<i64> = r
            .psql("SELECT id FROM acked")
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        let lost: Vec<_> = acked
            .iter()
            .filter(|(id, _)| !present.contains(id))
            .collect();
        eprintln!(
            "synchronous={synchronous}: {} commits acknowledged, {} lost",
            acked.len(),
            lost.len()
        );
        if synchronous {
            assert!(
                lost.is_empty(),
                "synchronous: no acknowledged commit is lost: {lost:?}"
            );
        } else {
            for (id, at) in &lost {
                assert!(
                    crashed.duration_since(*at) <= std::time::Duration::from_secs(1),
                    "commit {id} lost though acknowledged {:?} before the crash",
                    crashed.duration_since(*at)
                );
            }
        }
        assert!(!present.is_empty());
    }
}

/// `restore --delta` rebuilds a failed primary in place: a stopped data
/// directory that went on past the backup (changed rows, stray files)
/// becomes exactly what a fresh restore writes, with most blocks found
/// already right rather than rewritten; a running server, another
/// cluster's directory, a non-empty directory without --delta and a file
/// snapshot are refused with nothing changed.
#[test]
fn a_delta_restore_rewrites_a_failed_primary_into_the_backup_in_place() {
    use super::common::{assert_same, manifest, Manifest};
    let env = Env::new();
    let (c, url) = archiving_cluster(&env, "");
    let run = |args: &[&str]| run_pg(&env, args);
    c.psql("CREATE TABLE t (id int PRIMARY KEY, pad text)");
    c.psql("INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 200000) g");
    c.psql("CHECKPOINT");
    let doc = serde_json::from_slice::<serde_json::Value>(
        &run(&["--json", "backup", "--source", &url, "--physical"]).stdout,
    )
    .unwrap();
    let id = doc["snapshot_id"].as_str().unwrap().to_string();

    // The primary goes on past the backup, then fails.
    c.psql("UPDATE t SET pad = 'changed' WHERE id <= 10");
    c.psql("INSERT INTO t VALUES (0, 'after the backup')");
    c.psql("CHECKPOINT");
    let data = c.data.clone();
    let delta = |extra: &[&str]| {
        let mut args = vec!["--json", "restore", id.as_str(), "--immediate", "--delta"];
        args.extend(extra);
        args.extend(["--target", data.to_str().unwrap()]);
        run(&args)
    };
    let out = delta(&[]);
    assert_eq!(code(&out), 2, "a running server: {}", text(&out));
    assert!(stderr(&out).contains("postmaster.pid"), "{}", text(&out));
    c.stop();

    let other = env.path("other");
    std::fs::create_dir_all(&other).unwrap();
    sh(&format!("chown postgres: {}", other.display()));
    as_postgres(&format!(
        "{}/initdb -D {}/data -U postgres >/dev/null",
        c.bin,
        other.display()
    ));
    let theirs = manifest(&other.join("data"));
    let mut args = vec!["restore", id.as_str(), "--immediate", "--delta", "--target"];
    let other_data = other.join("data");
    args.push(other_data.to_str().unwrap());
    let out = run(&args);
    assert_eq!(code(&out), 2, "another cluster: {}", text(&out));
    assert!(
        stderr(&out).contains("belongs to cluster"),
        "{}",
        text(&out)
    );
    assert_same(&theirs, &manifest(&other_data));

    std::fs::write(data.join("base/stray"), b"left by the failed primary").unwrap();
    std::fs::write(data.join("pg_wal/0000000100000000000000F0"), b"junk").unwrap();
    std::fs::write(data.join("standby.signal"), b"").unwrap();
    let out = run(&[
        "restore",
        &id,
        "--immediate",
        "--target",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 2, "not empty, no --delta: {}", text(&out));
    assert!(stderr(&out).contains("--delta"), "{}", text(&out));
    assert!(data.join("base/stray").exists(), "nothing changed");

    let files = env.path("files");
    std::fs::create_dir_all(&files).unwrap();
    let file_snap = env.backup(&[&files]);
    let out = env.run(&[
        "restore",
        &file_snap,
        "--delta",
        "--target",
        env.path("files-out").to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 2, "a file snapshot: {}", text(&out));

    // The rebuild.
    let out = delta(&[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &doc["delta"];
    let n = |k: &str| d[k].as_u64().unwrap();
    assert!(n("removed") >= 3, "the strays: {doc}");
    assert!(n("bytes_written") > 0, "the changed blocks: {doc}");
    assert_eq!(
        n("bytes_written") + n("bytes_unchanged"),
        n("bytes"),
        "{doc}"
    );
    assert!(
        n("bytes_unchanged") > 3 * n("bytes_written"),
        "most of the directory was already right: {doc}"
    );
    for stray in [
        "base/stray",
        "pg_wal/0000000100000000000000F0",
        "standby.signal",
    ] {
        assert!(!data.join(stray).exists(), "{stray} removed");
    }

    // Exactly what a fresh restore writes (times aside of directories and
    // links, which follow the order entries were made in, and of the two
    // files the restore writes itself).
    let fresh = env.path("fresh/data");
    let out = run(&[
        "restore",
        &id,
        "--immediate",
        "--target",
        fresh.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let normal = |mut m: Manifest| {
        for (p, e) in m.iter_mut() {
            if e.kind != 'f'
                || p.ends_with("postgresql.auto.conf")
                || p.ends_with("recovery.signal")
            {
                e.mtime_ns = 0;
            }
        }
        m
    };
    assert_same(&normal(manifest(&fresh)), &normal(manifest(&data)));
    use std::os::unix::fs::MetadataExt;
    // One owner throughout, the server's user: pg_basebackup's own
    // backup_manifest (2048:1024 in its tar) included.
    let server_uid = std::fs::metadata(c.data.join("PG_VERSION")).unwrap().uid();
    let owners: std::collections::BTreeSet<u32> =
        manifest(&fresh).values().map(|e| e.uid).collect();
    assert_eq!(owners, [server_uid].into(), "owners of the restored files");

    // Restored as the server's user itself (nothing to chown): the same.
    let mine = env.path("mine");
    std::fs::create_dir_all(&mine).unwrap();
    sh(&format!(
        "chown -R postgres: {} {}",
        mine.display(),
        env.repo.display()
    ));
    as_postgres(&format!(
        "LIFEBOAT_REPOSITORY={} LIFEBOAT_PASSWORD_FILE={} LIFEBOAT_PG_BINDIR={} {} -q restore {id} --immediate --target {}/data",
        env.repo.display(),
        env.path("pg/password").display(),
        c.bin,
        assert_cmd::cargo::cargo_bin("lifeboat").display(),
        mine.display()
    ));
    assert_same(
        &normal(manifest(&fresh)),
        &normal(manifest(&mine.join("data"))),
    );

    // A second delta finds everything right but what the first added:
    // the recovery settings and recovery.signal.
    let out = delta(&[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["delta"]["removed"], 1, "{doc}");
    assert!(
        doc["delta"]["bytes_written"].as_u64().unwrap() < 4096,
        "{doc}"
    );

    // And the server starts on it with the backup's rows, not the later ones.
    let r = Cluster::start_restored(&data, &env.path("delta-run"));
    assert_eq!(r.psql("SELECT count(*) FROM t"), "200000");
    assert_eq!(
        r.psql("SELECT count(*) FROM t WHERE pad = 'changed' OR id = 0"),
        "0"
    );
}

/// `wal push` archives the files waiting behind it (`.ready` in
/// `pg_wal/archive_status`) ahead, in the background; the server's push of
/// one of them then returns without opening the repository (here: with no
/// password at all), and only for exactly the recorded bytes: a file
/// changed since falls back to an ordinary push, which refuses it.
#[test]
fn wal_push_archives_waiting_files_ahead_and_acknowledges_them_without_the_repository() {
    let env = Env::new();
    let pgdata = env.path("pgdata");
    let status = pgdata.join("pg_wal/archive_status");
    std::fs::create_dir_all(pgdata.join("global")).unwrap();
    std::fs::create_dir_all(&status).unwrap();
    let sys: u64 = 7_443_254_837_113_460_999;
    let mut control = vec![0u8; 8192];
    control[..8].copy_from_slice(&sys.to_le_bytes());
    std::fs::write(pgdata.join("global/pg_control"), &control).unwrap();
    let segment = |n: u64| {
        let mut b = super::common::random_bytes(16 << 20, n);
        b[24..32].copy_from_slice(&sys.to_le_bytes());
        b[32..36].copy_from_slice(&(16u32 << 20).to_le_bytes());
        b
    };
    let name = |n: u64| format!("0000000100000000000000{n:02X}");
    for n in 1..=5 {
        std::fs::write(pgdata.join("pg_wal").join(name(n)), segment(n)).unwrap();
        std::fs::write(status.join(format!("{}.ready", name(n))), b"").unwrap();
    }
    let push = |n: u64, with_password: bool| {
        let mut cmd = env.cmd();
        if !with_password {
            cmd.env_remove("LIFEBOAT_PASSWORD")
                .env_remove("LIFEBOAT_PASSWORD_FILE");
        }
        let path = pgdata.join("pg_wal").join(name(n));
        cmd.args(["--json", "wal", "push", path.to_str().unwrap(), "--pgdata"])
            .arg(&pgdata)
            .output()
            .unwrap()
    };
    // The server pushes 1, and marks it done.
    let out = push(1, true);
    assert_eq!(code(&out), 0, "{}", text(&out));
    std::fs::rename(
        status.join(format!("{}.ready", name(1))),
        status.join(format!("{}.done", name(1))),
    )
    .unwrap();
    let records = pgdata.join("pg_wal/lifeboat-pushed");
    wait_for(60, "2 to 5 archived ahead", || {
        (2..=5).all(|n| records.join(name(n)).exists())
    });
    assert!(
        !records.join(name(1)).exists(),
        "the pushed one is not recorded"
    );
    let report = env.json(&["wal", "verify"], 0);
    assert_eq!(
        report[0]["timelines"][0]["ranges"][0]["segments"], 5,
        "{report}"
    );

    // 2 is acknowledged without the repository: no password is needed.
    let out = push(2, false);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["archived_ahead"], true, "{doc}");
    assert!(!records.join(name(2)).exists(), "a record is used once");

    // 3 changed after it was archived ahead: no shortcut, the ordinary
    // push finds the different content and fails.
    let mut other = segment(33);
    other[..8].copy_from_slice(&segment(3)[..8]);
    std::fs::write(pgdata.join("pg_wal").join(name(3)), &other).unwrap();
    let out = push(3, false);
    assert_ne!(code(&out), 0, "no password, no shortcut: {}", text(&out));
    let out = push(3, true);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(stderr(&out).contains("different"), "{}", text(&out));
}
