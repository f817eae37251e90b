//! Redis sources (`redis://HOST:PORT`): a backup taken while a client
//! writes holds exactly the keys written before its snapshot point, every
//! kind of value (strings, LZF-compressed values, hashes, lists, sets,
//! zsets, streams with consumer groups, expiries, several databases,
//! functions) comes back through `RESTORE`, through a server started on
//! the restored file, and `--validate-only`; bad input is refused and
//! writes no snapshot.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::common::{code, free_port, stderr, text, Env};

fn var(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| {
        panic!("{k} is not set: run the tests with scripts/test, which starts a Redis server")
    })
}

/// A redis-server of this test's own, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// An empty server (or one starting on `dir/dbfilename`).
    fn start(dir: Option<&Path>, extra: &[&str]) -> Server {
        let own = dir.is_none().then(|| tempfile::tempdir().unwrap());
        let dir = dir.map_or_else(
            || own.as_ref().unwrap().path().to_path_buf(),
            Path::to_path_buf,
        );
        let port = free_port();
        let child = Command::new(var("LIFEBOAT_TEST_REDIS_BIN"))
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let s = Server {
            child,
            port,
            _dir: own,
        };
        s.wait_ready();
        s
    }

    /// Polls until the server answers PING (not LOADING).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut c) = TcpStream::connect(("127.0.0.1", self.port)) {
                if reply(&mut c, &[b"PING"]).starts_with(b"+PONG")
                    || reply(&mut c, &[b"PING"]).starts_with(b"-NOAUTH")
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis on {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one command, returns its reply's first line (bulk: the value).
fn reply(c: &mut TcpStream, args: &[&[u8]]) -> Vec<u8> {
    let mut buf = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        buf.extend(format!("${}\r\n", a.len()).as_bytes());
        buf.extend(*a);
        buf.extend(b"\r\n");
    }
    c.write_all(&buf).unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).unwrap();
    if let Some(n) = line.strip_prefix(b"$") {
        let n: i64 = String::from_utf8_lossy(n).trim().parse().unwrap();
        if n < 0 {
            return b"(nil)".to_vec();
        }
        let mut v = vec![0; n as usize + 2];
        r.read_exact(&mut v).unwrap();
        v.truncate(n as usize);
        return v;
    }
    while line.ends_with(b"\n") || line.ends_with(b"\r") {
        line.pop();
    }
    line
}

fn cmd(port: u16, args: &[&str]) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    String::from_utf8_lossy(&reply(&mut c, &a)).into_owned()
}

fn dbsize(port: u16, db: u32) -> u64 {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    reply(&mut c, &[b"SELECT", db.to_string().as_bytes()]);
    let r = reply(&mut c, &[b"DBSIZE"]);
    String::from_utf8_lossy(&r[1..]).parse().unwrap()
}

/// Sets `w:1`, `w:2`, … one acknowledged command at a time until stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(port: u16) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let (s, a) = (stop.clone(), acked.clone());
        let thread = std::thread::spawn(move || {
            let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut n = 1u64;
            while !s.load(Ordering::Relaxed) {
                let k = format!("w:{n}");
                assert_eq!(
                    reply(&mut c, &[b"SET", k.as_bytes(), n.to_string().as_bytes()]),
                    b"+OK"
                );
                a.store(n, Ordering::SeqCst);
                n += 1;
            }
        });
        Writer {
            stop,
            acked,
            thread: Some(thread),
        }
    }

    fn wait_past(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.acked.load(Ordering::SeqCst) <= n {
            assert!(Instant::now() < deadline, "the writer is stuck");
            std::thread::yield_now();
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        self.acked.load(Ordering::SeqCst)
    }
}

const LIB: &str = "#!lua name=lifeboatlib\nredis.register_function('one', function() return 1 end)";

/// Every kind of value in db 0, and a key in db 2.
fn fill(port: u16) {
    let big: String = (0..200_000)
        .map(|i| if i % 7 == 0 { 'x' } else { 'a' })
        .collect();
    for c in [
        vec!["FLUSHALL"],
        vec!["DEBUG", "POPULATE", "20000", "key", "100"],
        vec!["HSET", "h", "f1", "v1", "f2", "v2"],
        vec!["RPUSH", "l", "a", "b", "c"],
        vec!["SADD", "s", "1", "2", "3"],
        vec!["SADD", "s-words", "alpha", "beta"],
        vec!["ZADD", "z", "1.5", "m", "2", "n"],
        vec!["XADD", "st", "*", "f", "1"],
        vec!["XADD", "st", "*", "f", "2"],
        vec!["XADD", "st", "*", "f", "3"],
        vec!["XGROUP", "CREATE", "st", "g", "0"],
        vec![
            "XREADGROUP",
            "GROUP",
            "g",
            "c1",
            "COUNT",
            "1",
            "STREAMS",
            "st",
            ">",
        ],
        vec!["SET", "ttl", "soon", "EX", "100000"],
        vec!["SET", "big", &big],
        vec!["FUNCTION", "LOAD", "REPLACE", LIB],
    ] {
        let r = cmd(port, &c);
        assert!(!r.starts_with('-'), "{c:?}: {r}");
    }
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    reply(&mut c, &[b"SELECT", b"2"]);
    assert_eq!(reply(&mut c, &[b"SET", b"elsewhere", b"1"]), b"+OK");
}

/// What a restored server must hold of [`fill`] and of the writer's `k` keys.
fn assert_restored(port: u16, k: u64) {
    assert_eq!(cmd(port, &["EXISTS", &format!("w:{k}")]), ":1");
    assert_eq!(
        cmd(port, &["EXISTS", &format!("w:{}", k + 1)]),
        ":0",
        "nothing after the snapshot"
    );
    assert_eq!(cmd(port, &["GET", "key:19999"]).len(), 100);
    assert_eq!(cmd(port, &["HGET", "h", "f2"]), "v2");
    assert_eq!(cmd(port, &["LINDEX", "l", "2"]), "c");
    assert_eq!(cmd(port, &["SCARD", "s"]), ":3");
    assert_eq!(cmd(port, &["ZSCORE", "z", "m"]), "1.5");
    assert_eq!(cmd(port, &["XLEN", "st"]), ":3");
    let ttl: i64 = cmd(port, &["TTL", "ttl"])[1..].parse().unwrap();
    assert!(ttl > 90_000, "the expiry survives: {ttl}");
    let big = cmd(port, &["GET", "big"]);
    assert_eq!(big.len(), 200_000);
    assert!(big.starts_with("xaaaaaax"));
    assert_eq!(
        cmd(port, &["FCALL", "one", "0"]),
        ":1",
        "the function library"
    );
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    reply(&mut c, &[b"SELECT", b"2"]);
    assert_eq!(reply(&mut c, &[b"GET", b"elsewhere"]), b"1");
}

#[test]
fn a_backup_while_a_client_writes_restores_exactly_the_keys_written_before_it() {
    let src: u16 = var("LIFEBOAT_TEST_REDIS_PORT").parse().unwrap();
    fill(src);
    let base = dbsize(src, 0);
    let writer = Writer::start(src);
    writer.wait_past(100);
    let before = writer.acked.load(Ordering::SeqCst);
    let env = Env::new();
    let url = format!("redis://127.0.0.1:{src}");
    let doc = env.json(&["backup", "--source", &url], 0);
    let after = writer.acked.load(Ordering::SeqCst);
    writer.stop();
    let id = doc["snapshot_id"].as_str().unwrap().to_string();

    let snaps = env.json(&["snapshots"], 0);
    let source = &snaps[0]["snapshot"]["source"];
    assert_eq!(source["kind"], "redis", "{snaps}");
    assert_eq!(source["checksum_verified"], true);
    assert_eq!(source["functions"], 1);
    assert_eq!(source["replid"].as_str().unwrap().len(), 40, "{source}");
    assert!(source["offset"].is_u64(), "{source}");
    let dbs = source["databases"].as_array().unwrap();
    assert_eq!(dbs.len(), 2, "{source}");
    assert_eq!(
        (dbs[1]["db"].as_u64(), dbs[1]["keys"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(dbs[0]["expires"], 1);
    let k = dbs[0]["keys"].as_u64().unwrap() - base;
    assert!(
        (before..=after).contains(&k),
        "{k} writer keys in the snapshot; the writer was between {before} and {after}"
    );
    let listing = String::from_utf8(env.ok(&["snapshots"]).stdout).unwrap();
    assert!(
        listing.contains(&format!("redis RDB, {} keys", base + k + 1)),
        "{listing}"
    );

    // Into an empty server: every key, every kind, counts compared.
    let target = Server::start(None, &[]);
    let turl = format!("redis://127.0.0.1:{}", target.port);
    let r = env.json(&["restore", &id, "--target", &turl], 0);
    assert_eq!(r["counts_match"], true, "{r}");
    assert_eq!(r["rows"], base + k + 1, "{r}");
    assert_restored(target.port, k);

    // A server that holds keys: refused and untouched; flushed with --overwrite.
    cmd(target.port, &["SET", "precious", "1"]);
    let out = env.run(&["restore", &id, "--target", &turl]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(stderr(&out).contains("--overwrite"), "{}", text(&out));
    assert_eq!(cmd(target.port, &["GET", "precious"]), "1");
    let r = env.json(&["restore", &id, "--target", &turl, "--overwrite"], 0);
    assert_eq!(
        (r["counts_match"].as_bool(), r["replaced"].as_bool()),
        (Some(true), Some(true)),
        "{r}"
    );
    assert_eq!(cmd(target.port, &["EXISTS", "precious"]), ":0");

    // The file itself: a server started on it holds the same.
    let dir = env.path("files");
    env.ok(&["restore", &id, "--target", dir.to_str().unwrap()]);
    let started = Server::start(Some(&dir), &["--dbfilename", "dump.rdb"]);
    assert_eq!(dbsize(started.port, 0), base + k);
    assert_restored(started.port, k);

    let v = env.json(&["restore", &id, "--validate-only"], 0);
    assert_eq!(v["counts_match"], true, "{v}");
}

/// A fake server that answers the handshake and sends `rdb` as the
/// snapshot (then closes).
fn fake_master(rdb: Vec<u8>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap() == 0 {
                return;
            }
            let n: usize = line.trim().trim_start_matches('*').parse().unwrap();
            let mut words = vec![];
            for _ in 0..n {
                let mut len = String::new();
                r.read_line(&mut len).unwrap();
                let len: usize = len.trim().trim_start_matches('$').parse().unwrap();
                let mut w = vec![0; len + 2];
                r.read_exact(&mut w).unwrap();
                words.push(String::from_utf8_lossy(&w[..len]).to_uppercase());
            }
            if words[0] == "PSYNC" {
                let head = format!("+FULLRESYNC {} 7\r\n${}\r\n", "a".repeat(40), rdb.len());
                s.write_all(head.as_bytes()).unwrap();
                s.write_all(&rdb).unwrap();
                return;
            }
            s.write_all(if words[0] == "PING" {
                b"+PONG\r\n"
            } else {
                b"+OK\r\n"
            })
            .unwrap();
        }
    });
    port
}

/// An unreachable server, wrong or missing passwords, TLS, and snapshots
/// that arrive truncated or damaged: each a clear error, a non-zero exit,
/// no snapshot, and the password nowhere in what is printed.
#[test]
fn bad_redis_input_is_refused_and_writes_no_snapshot() {
    let env = Env::new();
    let none = |env: &Env| env.json(&["snapshots"], 0).as_array().unwrap().is_empty();

    let out = env.run(&[
        "backup",
        "--source",
        &format!("redis://127.0.0.1:{}", free_port()),
    ]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(stderr(&out).contains("cannot connect"), "{}", text(&out));

    let out = env.run(&["backup", "--source", "rediss://127.0.0.1:6380"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(stderr(&out).contains("TLS"), "{}", text(&out));

    let locked = Server::start(None, &["--requirepass", "s3cret-pw"]);
    let url = format!("redis://127.0.0.1:{}", locked.port);
    let out = env
        .cmd()
        .env_remove("REDISCLI_AUTH")
        .args(["backup", "--source", &url])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(stderr(&out).contains("REDISCLI_AUTH"), "{}", text(&out));
    let out = env
        .cmd()
        .env("REDISCLI_AUTH", "wrong-pw")
        .args(["backup", "--source", &url])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stderr(&out).contains("authentication failed"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("wrong-pw"), "{}", text(&out));
    assert!(none(&env));
    cmd_auth(locked.port, "s3cret-pw", &["SET", "a", "1"]);
    let out = env
        .cmd()
        .env("REDISCLI_AUTH", "s3cret-pw")
        .args(["--json", "backup", "--source", &url])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let snaps = String::from_utf8(env.ok(&["--json", "snapshots"]).stdout).unwrap();
    assert!(
        !text(&out).contains("s3cret") && !snaps.contains("s3cret"),
        "{snaps}"
    );
    // The password in the URL works too and is never shown.
    let out = env.run(&[
        "--json",
        "backup",
        "--source",
        &format!("redis://:s3cret-pw@127.0.0.1:{}", locked.port),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(!text(&out).contains("s3cret"), "{}", text(&out));

    // A real snapshot, then served truncated and with a flipped byte.
    let rdb_dir = tempfile::tempdir().unwrap();
    let rdb_file = rdb_dir.path().join("x.rdb");
    let st = Command::new("redis-cli")
        .args(["-p", &locked.port.to_string(), "--rdb"])
        .arg(&rdb_file)
        .env("REDISCLI_AUTH", "s3cret-pw")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let rdb = std::fs::read(&rdb_file).unwrap();
    let good = env.json(&["snapshots"], 0).as_array().unwrap().len();
    for (what, bytes) in [
        ("truncated", rdb[..rdb.len() - 20].to_vec()),
        ("checksum", {
            let mut b = rdb.clone();
            let i = b.len() / 2;
            b[i] ^= 0x40;
            b
        }),
    ] {
        let port = fake_master(bytes);
        let out = env.run(&["backup", "--source", &format!("redis://127.0.0.1:{port}")]);
        assert_eq!(code(&out), 1, "{what}: {}", text(&out));
        assert!(
            stderr(&out).contains("no snapshot was written")
                || stderr(&out).contains("not a valid RDB"),
            "{what}: {}",
            text(&out)
        );
        assert_eq!(
            env.json(&["snapshots"], 0).as_array().unwrap().len(),
            good,
            "{what}: no snapshot"
        );
    }

    // A restore into a server that is not there.
    let out = env.run(&[
        "restore",
        "latest",
        "--target",
        &format!("redis://127.0.0.1:{}", free_port()),
    ]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(stderr(&out).contains("cannot connect"), "{}", text(&out));
}

fn cmd_auth(port: u16, pw: &str, args: &[&str]) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert_eq!(reply(&mut c, &[b"AUTH", pw.as_bytes()]), b"+OK");
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    assert!(!reply(&mut c, &a).starts_with(b"-"));
}
