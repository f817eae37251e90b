//! `backup --source postgres://…` and `restore --target postgres://…` /
//! `--validate-only` through the binary, against the cluster scripts/test
//! starts: exit codes, JSON, and no password anywhere in what is printed.

use std::process::Command;

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
        "mysql://h/db".to_string(),
    ] {
        assert_eq!(code(&run(&["backup", "--source", &bad])), 2);
    }
    assert_eq!(env.snapshot_ids().len(), 1);
}
