//! MariaDB sources (`mariadb://…`) against the server scripts/test starts:
//! a dump taken while a client inserts holds a consistent prefix of its
//! rows, restores into a new database with its counts, views, routines and
//! triggers, validates without a server, and bad input is refused with
//! nothing written.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::common::{code, free_port, stderr, text, Env};

pub(super) fn port() -> String {
    std::env::var("LIFEBOAT_TEST_MARIADB_PORT").unwrap_or_else(|_| {
        panic!("LIFEBOAT_TEST_MARIADB_PORT is not set: run the tests with scripts/test, which starts a MariaDB server")
    })
}

pub(super) fn sql(db: &str, q: &str) -> String {
    let out = Command::new("mariadb")
        .args([
            "--host=127.0.0.1",
            &format!("--port={}", port()),
            "--user=root",
            "-N",
            "-B",
            "-e",
            q,
        ])
        .args((!db.is_empty()).then(|| format!("--database={db}")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{q}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub(super) fn url(db: &str) -> String {
    format!("mariadb://root@127.0.0.1:{}/{db}", port())
}

#[test]
fn a_dump_taken_while_a_client_inserts_restores_a_consistent_prefix_with_its_routines() {
    let db = format!("lb_shop_{}", std::process::id());
    let new = format!("{db}_restored");
    sql(
        "",
        &format!(
            "DROP DATABASE IF EXISTS {db}; DROP DATABASE IF EXISTS {new}; CREATE DATABASE {db}"
        ),
    );
    sql(
        &db,
        "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, note TEXT, data BLOB) ENGINE=InnoDB;
         CREATE TABLE empty_one (id INT PRIMARY KEY) ENGINE=InnoDB;
         CREATE TABLE audit (n INT) ENGINE=InnoDB;
         CREATE TRIGGER count_orders AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit VALUES (NEW.id);
         CREATE VIEW recent AS SELECT id, note FROM orders WHERE id > 10;
         CREATE PROCEDURE total(OUT n INT) SELECT COUNT(*) INTO n FROM orders;
         INSERT INTO orders (note, data) SELECT CONCAT('it''s (', seq, '),\n\\\\ ;'), UNHEX('00FF28293B27') FROM seq_1_to_5000;",
    );
    // A client inserting one row per statement, autocommit, until stopped.
    let stop = Arc::new(AtomicBool::new(false));
    let mut client = Command::new("mariadb")
        .args([
            "--host=127.0.0.1",
            &format!("--port={}", port()),
            "--user=root",
            &format!("--database={db}"),
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    let s = stop.clone();
    let writer = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            if stdin
                .write_all(b"INSERT INTO orders (note) VALUES ('during');\n")
                .is_err()
            {
                break;
            }
        }
    });
    let count = || {
        sql(&db, "SELECT COUNT(*) FROM orders")
            .parse::<u64>()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while count() < 5100 {
        assert!(std::time::Instant::now() < deadline, "the client is stuck");
    }
    let before = count();
    let env = Env::new();
    let doc = env.json(&["backup", "--source", &url(&db)], 0);
    let after = count();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let _ = client.wait();
    let id = doc["snapshot_id"].as_str().unwrap().to_string();

    let snaps = env.json(&["snapshots"], 0);
    let source = &snaps[0]["snapshot"]["source"];
    assert_eq!(
        (source["kind"].as_str(), source["mode"].as_str()),
        (Some("mariadb"), Some("logical")),
        "{snaps}"
    );
    assert!(
        source["gtid"].as_str().is_some_and(|g| !g.is_empty()),
        "{source}"
    );
    assert!(
        source["binlog_file"].is_string() && source["binlog_pos"].is_u64(),
        "{source}"
    );
    let rows = |t: &str| {
        source["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["table"] == t)
            .map(|x| x["rows"].as_u64().unwrap())
    };
    let recorded = rows("orders").unwrap();
    assert!(
        (before..=after).contains(&recorded),
        "{recorded} not within {before}..={after}"
    );
    assert_eq!(rows("empty_one"), Some(0));
    assert_eq!(
        rows("audit"),
        Some(recorded),
        "the trigger's rows, at the same point"
    );
    assert_eq!(rows("recent"), None, "a view is no table");
    let listing = String::from_utf8(env.ok(&["snapshots"]).stdout).unwrap();
    assert!(
        listing.contains(&format!("mariadb dump of {db}, at GTID")),
        "{listing}"
    );

    let r = env.json(&["restore", &id, "--target", &url(&new)], 0);
    assert_eq!(r["counts_match"], true, "{r}");
    let nth = sql(
        &db,
        &format!(
            "SELECT id FROM orders ORDER BY id LIMIT 1 OFFSET {}",
            recorded - 1
        ),
    );
    assert_eq!(
        sql(&new, "SELECT COUNT(*), MAX(id) FROM orders"),
        format!("{recorded}\t{nth}"),
        "exactly the first {recorded} rows the client committed"
    );
    assert_eq!(
        sql(&new, "SELECT HEX(data) FROM orders WHERE id = 7"),
        "00FF28293B27"
    );
    assert_eq!(
        sql(&new, "SELECT note FROM orders WHERE id = 7"),
        "it's (7),\\n\\\\ ;"
    );
    assert_eq!(
        sql(&new, "SELECT COUNT(*) FROM recent"),
        (recorded - 10).to_string()
    );
    assert_eq!(sql(&new, "CALL total(@n); SELECT @n"), recorded.to_string());
    sql(&new, "INSERT INTO orders (note) VALUES ('after')");
    assert_eq!(
        sql(&new, "SELECT COUNT(*) FROM audit"),
        (recorded + 1).to_string(),
        "the trigger fires"
    );

    // An existing database: refused untouched; replaced with --overwrite.
    let out = env.run(&["restore", &id, "--target", &url(&new)]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(stderr(&out).contains("--overwrite"), "{}", text(&out));
    assert_eq!(
        sql(&new, "SELECT COUNT(*) FROM orders"),
        (recorded + 1).to_string()
    );
    let r = env.json(&["restore", &id, "--target", &url(&new), "--overwrite"], 0);
    assert_eq!(
        (r["counts_match"].as_bool(), r["replaced"].as_bool()),
        (Some(true), Some(true)),
        "{r}"
    );
    assert_eq!(
        sql(&new, "SELECT COUNT(*) FROM orders"),
        recorded.to_string()
    );
    assert_eq!(
        sql("", "SHOW DATABASES LIKE 'lifeboat_restore%'"),
        "",
        "no staging database left"
    );

    let v = env.json(&["restore", &id, "--validate-only"], 0);
    assert_eq!(v["counts_match"], true, "{v}");

    // One table, into a new database: that table alone, counted.
    let one = format!("{db}_one");
    let r = env.json(
        &["restore", &id, "--table", "orders", "--target", &url(&one)],
        0,
    );
    assert_eq!(r["counts_match"], true, "{r}");
    assert_eq!(r["tables"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(sql(&one, "SHOW FULL TABLES"), "orders\tBASE TABLE");
    assert_eq!(
        sql(&one, "SELECT COUNT(*) FROM orders"),
        recorded.to_string()
    );
    let out = env.run(&[
        "restore",
        &id,
        "--table",
        "no_such",
        "--target",
        &url(&format!("{db}_none")),
    ]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains("holds no table no_such"),
        "{}",
        text(&out)
    );
    sql("", &format!("DROP DATABASE {one}"));

    // Every database: the dump holds ours, with the same counts.
    let all = env.json(&["backup", "--source", &url("")], 0);
    let all_id = all["snapshot_id"].as_str().unwrap();
    let v = env.json(&["restore", all_id, "--validate-only"], 0);
    assert!(
        v["tables"].to_string().contains(&format!("{db}.orders")),
        "{v}"
    );
    sql("", &format!("DROP DATABASE {db}; DROP DATABASE {new}"));
}

#[test]
fn bad_mariadb_input_is_refused_and_writes_nothing() {
    let env = Env::new();
    let none = |env: &Env| env.json(&["snapshots"], 0).as_array().unwrap().is_empty();
    let user = format!("lb_user_{}", std::process::id());
    sql("", &format!("DROP USER IF EXISTS {user}@'%'; CREATE USER {user}@'%' IDENTIFIED BY 'right-pw'; GRANT ALL ON *.* TO {user}@'%'"));

    let wrong = format!("mariadb://{user}:wrong-pw@127.0.0.1:{}/mysql", port());
    let out = env.run(&["backup", "--source", &wrong]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(stderr(&out).contains("Access denied"), "{}", text(&out));
    assert!(!text(&out).contains("wrong-pw"), "{}", text(&out));

    let missing = url("no_such_database_here");
    let out = env.run(&["backup", "--source", &missing]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stderr(&out).contains("no_such_database_here"),
        "{}",
        text(&out)
    );

    let nowhere = format!("mariadb://root@127.0.0.1:{}/x", free_port());
    let out = env.run(&["backup", "--source", &nowhere]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(stderr(&out).contains("Can't connect"), "{}", text(&out));
    assert!(none(&env));

    // The password from MYSQL_PWD, never an argument.
    let ok = format!("mariadb://{user}@127.0.0.1:{}/mysql", port());
    let out = env
        .cmd()
        .env("MYSQL_PWD", "right-pw")
        .args(["--json", "backup", "--source", &ok])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = env.run(&["backup", "--source", &ok, "--physical"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(stderr(&out).contains("whole server"), "{}", text(&out));
    sql("", &format!("DROP USER {user}@'%'"));
}

#[test]
fn a_physical_backup_restores_into_a_data_directory_a_server_starts_on() {
    let env = Env::new();
    let db = format!("lb_phys_{}", std::process::id());
    sql(
        "",
        &format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}"),
    );
    sql(
        &db,
        "CREATE TABLE parts (id INT PRIMARY KEY, name TEXT) ENGINE=InnoDB;
         INSERT INTO parts SELECT seq, CONCAT('part ', seq) FROM seq_1_to_2000;",
    );
    let b = env.json(&["backup", "--source", &url(""), "--physical"], 0);
    let id = b["snapshot_id"].as_str().unwrap().to_string();
    let snaps = env.json(&["snapshots"], 0);
    let source = &snaps[0]["snapshot"]["source"];
    assert_eq!(source["mode"], "physical", "{snaps}");
    assert!(
        source["binlog_file"].as_str().is_some(),
        "the binlog point is recorded: {snaps}"
    );
    assert!(source["files"].as_u64().unwrap() > 10, "{snaps}");
    env.ok(&["restore", &id, "--validate-only"]);

    let datadir = env.path("datadir");
    let out = env.run(&["restore", &id, "--target", datadir.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("prepared"), "{}", text(&out));
    // Not over a data directory that is there.
    let out = env.run(&["restore", &id, "--target", datadir.to_str().unwrap()]);
    assert_eq!(code(&out), 2, "{}", text(&out));

    // A server on the restored directory has every row.
    let port = free_port();
    let mut server = Command::new("mariadbd")
        .arg("--no-defaults")
        .arg("--user=root")
        .arg(format!("--datadir={}", datadir.display()))
        .arg(format!("--socket={}", env.path("restored.sock").display()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!(
            "--log-error={}",
            env.path("restored.log").display()
        ))
        .spawn()
        .unwrap();
    let count = || {
        Command::new("mariadb")
            .args([
                "--host=127.0.0.1",
                &format!("--port={port}"),
                "--user=root",
                "-N",
                "-B",
            ])
            .args(["-e", &format!("SELECT COUNT(*), MAX(name) FROM {db}.parts")])
            .output()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let got = loop {
        let out = count();
        if out.status.success() {
            break String::from_utf8(out.stdout).unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server on the restored directory did not answer: {}",
            std::fs::read_to_string(env.path("restored.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(got.trim(), "2000\tpart 999");
    sql("", &format!("DROP DATABASE {db}"));
}
