//! `lifeboat serve` as a daemon: with short real schedules it runs a
//! backup, its copy to a second region and a restore test by itself, exposes them in /metrics (which
//! `promtool check metrics` accepts) and /api/status, stops cleanly on
//! SIGTERM, and a restarted daemon finds its ledger as it was.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::common::{code, text, Env, PASSWORD};

pub(super) fn get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// A child process killed if the test ends (or fails) while it runs.
pub(super) struct Daemon(pub Child);

impl std::ops::Deref for Daemon {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

pub(super) fn serve(env: &Env, plan: &std::path::Path, port: u16) -> Daemon {
    let child = Command::new(assert_cmd::cargo::cargo_bin("lifeboat"))
        .env("LIFEBOAT_CONFIG", plan)
        .env("LIFEBOAT_INSECURE_FAST_KDF", "1")
        .env_remove("LIFEBOAT_PASSWORD")
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--tick",
            "200ms",
        ])
        .current_dir(env.dir.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Daemon(child)
}

/// Polls `f` until it gives a value, failing if the daemon `alive` ended.
pub(super) fn until_up<T>(daemon: &mut Child, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    until(what, || {
        if let Some(status) = daemon.try_wait().unwrap() {
            panic!("the daemon exited ({status}) while waiting for {what}");
        }
        f()
    })
}

pub(super) fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "waited 90 s for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(super) fn stop(mut c: Daemon) {
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = until("the daemon to exit after SIGTERM", || c.try_wait().unwrap());
    assert!(status.success(), "{status}");
}

#[test]
fn the_daemon_backs_up_verifies_and_exposes_it_then_stops_cleanly() {
    let env = Env::new();
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("x"), b"served").unwrap();
    let pass = env.path("pass");
    std::fs::write(&pass, PASSWORD).unwrap();
    let plan = env.path("lifeboat.toml");
    std::fs::write(
        &plan,
        format!(
            "[regions.primary]\nrepository = \"{}\"\npassword_file = \"{}\"\n\n[regions.dr]\nrepository = \"{}\"\npassword_file = \"{}\"\n\n[components.files]\ntier = \"high\"\nsource = \"files://{}\"\nschedule = \"* * * * *\"\nreplicate_to = [\"dr\"]\nverify = {{ schedule = \"* * * * *\", target = \"{}\", checks = [{{ kind = \"command\", run = \"test -f $LIFEBOAT_RESTORED{}/x\" }}] }}\n",
            env.repo.display(),
            pass.display(),
            env.path("dr").display(),
            pass.display(),
            data.display(),
            env.path("scratch").display(),
            data.display(),
        ),
    )
    .unwrap();
    // The second region, naming blobs as the first.
    let out = env
        .cmd()
        .env("LIFEBOAT_CONFIG", &plan)
        .args(["init", "--plan"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut daemon = serve(&env, &plan, port);
    assert_eq!(
        until_up(&mut daemon, "/healthz", || get(port, "/healthz")),
        "ok\n"
    );
    // It backs up, copies to dr and verifies by itself.
    let status: serde_json::Value =
        until_up(&mut daemon, "a backup, a copy and a verification", || {
            let s: serde_json::Value = serde_json::from_str(&get(port, "/api/status")?).ok()?;
            let c = &s["components"][0];
            (c["last_success"].is_object()
                && c["replication"][0]["last_copy"].is_object()
                && c["last_verification"]["result"] == "passed")
                .then_some(s)
        });
    assert_eq!(status["components"][0]["within_rpo"], true, "{status}");
    let metrics = get(port, "/metrics").unwrap();
    for line in [
        "lifeboat_verification_success{component=\"files\",tier=\"high\",region=\"primary\"} 1",
        "lifeboat_within_rpo{component=\"files\",tier=\"high\",region=\"primary\"} 1",
        "lifeboat_rpo_seconds{component=\"files\",tier=\"high\",region=\"primary\"} 900",
        "lifeboat_replica_data_loss_window_seconds{component=\"files\",tier=\"high\",region=\"dr\",from=\"primary\"} ",
        "lifeboat_replication_lag_seconds{component=\"files\",tier=\"high\",region=\"dr\",from=\"primary\"} ",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    assert!(
        metrics.contains("lifeboat_restore_seconds{component=\"files\""),
        "{metrics}"
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    // The example alerting rules pass their unit tests, and every metric
    // they use is one the daemon exposes.
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/prometheus");
    let tested = Command::new("promtool")
        .args(["test", "rules", "lifeboat-rules.test.yml"])
        .current_dir(rules)
        .output()
        .unwrap();
    assert!(
        tested.status.success(),
        "{}",
        String::from_utf8_lossy(&tested.stdout)
    );
    let text_of_rules = std::fs::read_to_string(format!("{rules}/lifeboat-rules.yml")).unwrap();
    for word in text_of_rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("lifeboat_") {
            assert!(
                metrics.contains(&format!("# TYPE {word} gauge")),
                "{word} is not exposed"
            );
        }
    }
    stop(daemon);
    // Every run it started has ended; the snapshots it wrote are whole.
    env.ok(&["check"]);
    let snaps = env.json(&["snapshots", "--tag", "component=files"], 0);
    assert!(!snaps.as_array().unwrap().is_empty());
    let out = env
        .cmd()
        .env("LIFEBOAT_REPOSITORY", env.path("dr"))
        .args(["--json", "snapshots", "--tag", "component=files"])
        .output()
        .unwrap();
    let copies: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        !copies.as_array().unwrap().is_empty(),
        "dr holds copies: {}",
        text(&out)
    );

    // Restarted, it finds the ledger as it was.
    let mut daemon = serve(&env, &plan, port);
    let again: serde_json::Value = until_up(&mut daemon, "the restarted daemon", || {
        serde_json::from_str(&get(port, "/api/status")?).ok()
    });
    assert_eq!(
        again["components"][0]["last_verification"]["result"], "passed",
        "{again}"
    );
    stop(daemon);
    let out = env
        .cmd()
        .env("LIFEBOAT_CONFIG", &plan)
        .args(["status"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
}

/// Processes whose command line mentions `what`.
fn processes_mentioning(what: &str) -> Vec<String> {
    let mut found = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
            let line = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if line.contains(what) {
                found.push(line);
            }
        }
    }
    found
}

#[test]
fn sigterm_in_the_middle_of_a_backup_leaves_no_snapshot_and_the_next_run_proceeds() {
    let env = Env::new();
    let pass = env.path("pass");
    std::fs::write(&pass, PASSWORD).unwrap();
    let started = env.path("started");
    let plan = env.path("lifeboat.toml");
    let write_plan = |source: &str| {
        std::fs::write(
            &plan,
            format!(
                "[regions.primary]\nrepository = \"{}\"\npassword_file = \"{}\"\n\n[components.slow]\ntier = \"low\"\nsource = \"command:{source}\"\nschedule = \"@daily\"\n",
                env.repo.display(),
                pass.display(),
            ),
        )
        .unwrap();
    };
    // The exporter never ends by itself (it ends when its reader does).
    write_plan(&format!("touch {}; exec yes", started.display()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut daemon = serve(&env, &plan, port);
    until_up(&mut daemon, "the backup to start", || {
        started.exists().then_some(())
    });
    stop(daemon);
    // Nothing of it goes on: not the backup, not its exporter.
    let repo = env.repo.display().to_string();
    until("the backup and its exporter to end", || {
        let left = processes_mentioning(&format!("--repo {repo}")).len()
            + processes_mentioning("yes")
                .iter()
                .filter(|l| l.trim() == "yes")
                .count();
        (left == 0).then_some(())
    });
    assert_eq!(
        env.json(&["snapshots"], 0),
        serde_json::json!([]),
        "no half-written snapshot"
    );
    let c = env.json(&["check"], 0);
    assert!(c["errors"].as_array().unwrap().is_empty(), "{c}");
    // The next run proceeds.
    write_plan("echo the data");
    let out = env
        .cmd()
        .env("LIFEBOAT_CONFIG", &plan)
        .args(["run", "slow"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(env.json(&["snapshots"], 0).as_array().unwrap().len(), 1);
}
