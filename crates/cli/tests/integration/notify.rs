//! Notifications from `lifeboat serve`: a webhook and a command are told
//! once when a backup fails — also across a restart of the daemon — and
//! once when it recovers; a real Alertmanager (`prometheus-alertmanager`)
//! accepts the alerts and sees them resolve.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::common::{code, free_port, text, Env, PASSWORD};
use super::serve::{get, serve, stop, until, until_up, Daemon};

/// A local HTTP receiver keeping every JSON body POSTed to it.
struct Hook {
    port: u16,
    bodies: Arc<Mutex<Vec<Value>>>,
}

fn hook() -> Hook {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(vec![]));
    let kept = Arc::clone(&bodies);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_ok() {
                if let Ok(v) = serde_json::from_slice(&body) {
                    kept.lock().unwrap().push(v);
                }
            }
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    Hook { port, bodies }
}

impl Hook {
    fn statuses(&self) -> Vec<String> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| {
                assert_eq!(b["alert"], "LifeboatBackupFailed", "{b}");
                assert_eq!(b["labels"]["component"], "files", "{b}");
                b["status"].as_str().unwrap().to_string()
            })
            .collect()
    }
}

/// A plan backing up `data` (missing at first: the backup fails) every
/// minute, with `notify` appended.
fn plan(env: &Env, data: &Path, notify: &str) -> PathBuf {
    let pass = env.path("pass");
    std::fs::write(&pass, PASSWORD).unwrap();
    let plan = env.path("lifeboat.toml");
    std::fs::write(
        &plan,
        format!(
            "[regions.primary]\nrepository = \"{}\"\npassword_file = \"{}\"\n\n[components.files]\ntier = \"high\"\nsource = \"files://{}\"\nschedule = \"* * * * *\"\n\n{notify}",
            env.repo.display(),
            pass.display(),
            data.display(),
        ),
    )
    .unwrap();
    plan
}

fn ticks(port: u16) -> Option<u64> {
    get(port, "/metrics")?
        .lines()
        .find_map(|l| l.strip_prefix("lifeboat_scheduler_ticks_total "))?
        .parse()
        .ok()
}

/// Waits until the daemon has made `n` more passes of its scheduler.
fn passes(daemon: &mut Child, port: u16, n: u64) {
    let start = until_up(daemon, "/metrics", || ticks(port));
    until_up(daemon, "scheduler passes", || {
        ticks(port).filter(|t| *t >= start + n)
    });
}

/// The data appears and a backup is run by hand: the failure is over.
fn recover(env: &Env, plan: &Path, data: &Path) {
    std::fs::create_dir_all(data).unwrap();
    std::fs::write(data.join("x"), b"back").unwrap();
    let out = env
        .cmd()
        .env("LIFEBOAT_CONFIG", plan)
        .args(["run", "files"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[test]
fn a_failed_backup_is_told_once_and_its_recovery_once() {
    let env = Env::new();
    let data = env.path("data");
    let h = hook();
    let log = env.path("alerts.log");
    let plan = plan(
        &env,
        &data,
        &format!(
            "[notify.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{}/hook\"\nalerts = [\"backup_failed\"]\n\n[notify.log]\nkind = \"command\"\ncommand = \"(echo $LIFEBOAT_ALERT_STATUS; cat; echo) >> {}\"\nalerts = [\"backup_failed\"]\n",
            h.port,
            log.display()
        ),
    );
    let port = free_port();
    let mut daemon = serve(&env, &plan, port);
    until_up(&mut daemon, "the firing alert", || {
        (!h.bodies.lock().unwrap().is_empty()).then_some(())
    });
    passes(&mut daemon, port, 10);
    assert_eq!(h.statuses(), ["firing"], "told once, not once per pass");
    let first = h.bodies.lock().unwrap()[0].clone();
    assert!(
        first["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{first}"
    );
    // A restarted daemon remembers what it told.
    stop(daemon);
    let mut daemon = serve(&env, &plan, port);
    passes(&mut daemon, port, 10);
    assert_eq!(h.statuses(), ["firing"], "not told again after a restart");

    recover(&env, &plan, &data);
    until_up(&mut daemon, "the resolved alert", || {
        (h.bodies.lock().unwrap().len() >= 2).then_some(())
    });
    passes(&mut daemon, port, 10);
    assert_eq!(h.statuses(), ["firing", "resolved"]);
    stop(daemon);
    let told = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = told.lines().collect();
    assert_eq!(lines.len(), 4, "{told}");
    assert_eq!((lines[0], lines[2]), ("firing", "resolved"), "{told}");
    let doc: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(doc["labels"]["severity"], "warning", "{doc}");
}

#[test]
fn a_real_alertmanager_receives_the_alert_and_sees_it_resolve() {
    let env = Env::new();
    let am_dir = env.path("alertmanager");
    std::fs::create_dir_all(&am_dir).unwrap();
    std::fs::write(
        am_dir.join("am.yml"),
        "route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n",
    )
    .unwrap();
    let am_port = free_port();
    let am = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", am_dir.join("am.yml").display()))
        .arg(format!("--storage.path={}", am_dir.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus-alertmanager (Debian package; scripts/test installs it)");
    let _am = Daemon(am);
    let alerts = || -> Option<Vec<Value>> {
        let body = get(am_port, "/api/v2/alerts")?;
        let v: Value = serde_json::from_str(&body).ok()?;
        Some(
            v.as_array()?
                .iter()
                .filter(|a| {
                    a["labels"]["alertname"] == "LifeboatBackupFailed"
                        && a["labels"]["component"] == "files"
                })
                .cloned()
                .collect(),
        )
    };
    until("alertmanager to answer", alerts);

    let data = env.path("data");
    let plan = plan(
        &env,
        &data,
        &format!(
            "[notify.am]\nkind = \"alertmanager\"\nurl = \"http://127.0.0.1:{am_port}/api/v2/alerts\"\nalerts = [\"backup_failed\"]\n"
        ),
    );
    let port = free_port();
    let mut daemon = serve(&env, &plan, port);
    let firing = until_up(&mut daemon, "the alert in alertmanager", || {
        alerts().filter(|a| !a.is_empty())
    });
    assert_eq!(firing.len(), 1, "{firing:?}");
    let a = &firing[0];
    assert_eq!(a["status"]["state"], "active", "{a}");
    assert_eq!(a["labels"]["severity"], "warning", "{a}");
    assert_eq!(a["labels"]["region"], "primary", "{a}");
    assert!(a["annotations"]["summary"]
        .as_str()
        .unwrap()
        .contains("the last backup of files failed"));

    recover(&env, &plan, &data);
    until_up(&mut daemon, "the alert to resolve in alertmanager", || {
        alerts().filter(|a| a.is_empty())
    });
    stop(daemon);
}
