//! MariaDB point-in-time recovery against the server scripts/test starts:
//! `binlog stream` archives the binary logs (killed and restarted on the
//! way, across a rotation) while a client commits rows stamped with their
//! time and GTID; restores of the dump to several instants and GTIDs hold
//! exactly the rows committed up to each, and targets the archive cannot
//! reach are refused with nothing created.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::common::{code, stderr, text, Env, PASSWORD};
use super::mariadb::{port, sql, url};

/// `binlog stream` in the background, killed when dropped.
struct Streamer(Child);

impl Streamer {
    fn start(env: &Env) -> Streamer {
        let child = Command::new(assert_cmd::cargo::cargo_bin("lifeboat"))
            .env("LIFEBOAT_REPOSITORY", &env.repo)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .env("LIFEBOAT_INSECURE_FAST_KDF", "1")
            .args(["-q", "binlog", "stream", "--source", &url("")])
            .arg("--spool")
            .arg(env.path("spool"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Streamer(child)
    }
}

impl Drop for Streamer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The sequence number of the last archived transaction of domain 0.
fn archived_seq(env: &Env) -> u64 {
    let v = env.json(&["binlog", "verify"], 0);
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["ranges"].as_array().unwrap().clone())
        .filter_map(|r| r["last_gtid"].as_str().map(str::to_string))
        .filter_map(|g| {
            g.strip_prefix("0-")
                .and_then(|r| r.split('-').nth(1))
                .map(|n| n.parse::<u64>().unwrap())
        })
        .max()
        .unwrap_or(0)
}

/// The current sequence number of domain 0 on the server.
fn server_seq() -> u64 {
    let pos = sql("", "SELECT @@gtid_binlog_pos");
    pos.split(',')
        .find_map(|g| g.strip_prefix("0-"))
        .and_then(|r| r.split('-').nth(1))
        .map_or(0, |n| n.parse().unwrap())
}

fn wait_archived(env: &Env, seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while archived_seq(env) < seq {
        assert!(
            Instant::now() < deadline,
            "the stream did not archive up to 0-?-{seq} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ids(db: &str) -> Vec<u64> {
    let got = sql(db, "SELECT id FROM events ORDER BY id");
    got.lines().map(|l| l.parse().unwrap()).collect()
}

#[test]
fn restores_to_instants_and_gtids_hold_exactly_the_rows_committed_up_to_each() {
    let env = Env::new();
    let db = format!("lb_pitr_{}", std::process::id());
    sql(
        "",
        &format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}"),
    );
    sql(
        &db,
        "CREATE TABLE events (id INT PRIMARY KEY, at DATETIME(6) NOT NULL, gtid VARCHAR(40)) ENGINE=InnoDB;
         INSERT INTO events (id, at) VALUES (1, NOW(6)), (2, NOW(6))",
    );
    let mut streamer = Streamer::start(&env);
    env.ok(&["backup", "--source", &url(&db)]);

    // A client committing one row at a time (statement and row logging
    // alternating), each stamped with its time; the stream killed and
    // restarted half-way and the server's log rotated.
    let mut committed: Vec<(u64, f64, String)> = vec![];
    for id in 3..=40u64 {
        let format = if id % 2 == 0 { "ROW" } else { "STATEMENT" };
        let out = sql(
            &db,
            &format!(
                "SET SESSION binlog_format={format}; INSERT INTO events (id, at) VALUES ({id}, NOW(6)); SELECT @@last_gtid, UNIX_TIMESTAMP(at) FROM events WHERE id = {id}"
            ),
        );
        let (gtid, at) = out.split_once('\t').unwrap();
        committed.push((id, at.parse().unwrap(), gtid.to_string()));
        if id == 15 {
            drop(streamer);
            streamer = Streamer::start(&env);
        }
        if id == 25 {
            sql("", "FLUSH BINARY LOGS");
        }
        std::thread::sleep(Duration::from_millis(120));
    }
    wait_archived(&env, server_seq());
    let verify = env.run(&["binlog", "verify"]);
    assert_eq!(code(&verify), 0, "{}", text(&verify));

    let restore = |args: &[&str], into: &str| {
        let mut a = vec!["restore", "latest"];
        a.extend_from_slice(args);
        let target = url(into);
        a.extend(["--target", &target]);
        env.run(&a)
    };

    // Instants: whole seconds inside the writer's run.
    let first = committed.first().unwrap().1.ceil() as i64;
    let last = committed.last().unwrap().1.floor() as i64;
    assert!(last > first, "the writer ran over more than one second");
    for (n, t) in (first..=last).enumerate() {
        let into = format!("{db}_t{n}");
        let when = jiff::Timestamp::from_second(t).unwrap().to_string();
        let out = restore(&["--time", &when], &into);
        assert_eq!(code(&out), 0, "--time {when}: {}", text(&out));
        let mut want: Vec<u64> = vec![1, 2];
        want.extend(
            committed
                .iter()
                .filter(|(_, at, _)| *at < t as f64)
                .map(|(id, _, _)| *id),
        );
        assert_eq!(ids(&into), want, "--time {when}");
        sql("", &format!("DROP DATABASE {into}"));
    }

    // GTIDs: up to and including each.
    for k in [3usize, 12, 13, 22, 23, 37] {
        let (id, _, gtid) = &committed[k];
        let into = format!("{db}_g{k}");
        let out = restore(&["--gtid", gtid], &into);
        assert_eq!(code(&out), 0, "--gtid {gtid}: {}", text(&out));
        let want: Vec<u64> = (1..=*id).collect();
        assert_eq!(ids(&into), want, "--gtid {gtid}");
        sql("", &format!("DROP DATABASE {into}"));
    }

    // Everything archived, and the JSON says what was replayed.
    let latest = format!("{db}_latest");
    let out = env.json(
        &["restore", "latest", "--latest", "--target", &url(&latest)],
        0,
    );
    // Through every transaction of the server's logs (other tests write
    // to the same server), this database's 38 among them.
    let through = out["replayed"]["transactions"].as_u64().unwrap();
    assert!(through >= 38, "{out}");
    let last_seq = |g: &str| g.rsplit('-').next().unwrap().parse::<u64>().unwrap();
    assert!(
        last_seq(out["replayed"]["last"].as_str().unwrap())
            >= last_seq(&committed.last().unwrap().2),
        "{out}"
    );
    assert_eq!(ids(&latest), (1..=40).collect::<Vec<u64>>());

    // Into an existing database: only with --overwrite, proven beside it first.
    let out = restore(&["--gtid", &committed[0].2], &latest);
    assert_eq!(code(&out), 2, "{}", text(&out));
    let out = restore(&["--gtid", &committed[0].2, "--overwrite"], &latest);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(ids(&latest), vec![1, 2, 3]);
    sql("", &format!("DROP DATABASE {latest}"));

    // Targets the archive cannot reach: refused, nothing created.
    let never = format!("{db}_never");
    let before = jiff::Timestamp::from_second(first - 3600)
        .unwrap()
        .to_string();
    let after = jiff::Timestamp::from_second(last + 3600)
        .unwrap()
        .to_string();
    for (args, want_code, says) in [
        (
            vec!["--time", before.as_str()],
            1,
            "before the oldest MariaDB backup",
        ),
        (
            vec!["--time", after.as_str()],
            1,
            "past the end of the binary logs",
        ),
        (vec!["--gtid", "0-1-999999999"], 1, "not in the binary logs"),
        (vec!["--gtid", "0-1"], 2, "not a GTID"),
        (vec!["--time", "2026-12-07T10:00:00.5Z"], 2, "whole seconds"),
    ] {
        let out = restore(&args, &never);
        assert_eq!(code(&out), want_code, "{args:?}: {}", text(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", text(&out));
        assert_eq!(
            sql("", &format!("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '{never}'")),
            "0",
            "{args:?} created the target"
        );
    }
    drop(streamer);

    // A damaged archived log: named, and nothing created.
    let log = std::fs::read_dir(env.repo.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("binlog-")
        })
        .min()
        .unwrap();
    let mut bytes = std::fs::read(&log).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&log, bytes).unwrap();
    let out = restore(&["--latest"], &never);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let name = log.file_name().unwrap().to_str().unwrap();
    assert!(stderr(&out).contains(name), "{}", text(&out));
    assert_eq!(
        sql(
            "",
            &format!(
                "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '{never}'"
            )
        ),
        "0"
    );
    let out = env.run(&["binlog", "verify"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    sql("", &format!("DROP DATABASE {db}"));
}

#[test]
fn a_stream_that_cannot_connect_says_so_and_stores_nothing() {
    let env = Env::new();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spool = env.path("spool");
    let spool = spool.to_str().unwrap();
    let nowhere = format!("mariadb://root@127.0.0.1:{free}/");
    let out = env.run(&["binlog", "stream", "--source", &nowhere, "--spool", spool]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(stderr(&out).contains("Can't connect"), "{}", text(&out));
    let wrong = format!("mariadb://root:not-the-password@127.0.0.1:{}/", port());
    let user = format!("lb_stream_{}", std::process::id());
    sql(
        "",
        &format!("DROP USER IF EXISTS {user}@'%'; CREATE USER {user}@'%' IDENTIFIED BY 'right-pw'"),
    );
    let wrong = wrong.replace("root", &user);
    let out = env.run(&["binlog", "stream", "--source", &wrong, "--spool", spool]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(stderr(&out).contains("Access denied"), "{}", text(&out));
    assert!(!text(&out).contains("not-the-password"), "{}", text(&out));
    sql("", &format!("DROP USER {user}@'%'"));
    assert!(std::fs::read_dir(env.repo.join("logs"))
        .unwrap()
        .next()
        .is_none());
    let out = env.run(&["restore", "latest", "--gtid", "0-1-5", "--target", "/tmp/x"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
}
