//! `lifeboat serve`: the daemon. It runs the plan's schedules — due
//! backups (each followed by its copies to the regions it replicates to),
//! copies a region still lacks, due restore tests — one at a time (so never two runs of one
//! component at once), each as a child `lifeboat` whose outcome the ledger
//! records; a component that failed is retried with backoff (1 min,
//! doubling, at most 1 h). On one port it serves `/metrics` (Prometheus
//! text format), `/healthz` and `/api/status` (what `status --json`
//! shows). SIGTERM stops it cleanly: the running child is asked to stop
//! (a backup stopped so writes no snapshot, and removes its partial
//! objects) and waited for, then the server closes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use lifeboat_plan::Plan;

use crate::args::ServeArgs;
use crate::cmd::plan::{ledger, load};
use crate::cmd::Ctx;
use crate::exit;

pub fn run(ctx: &Ctx, a: ServeArgs) -> Result<u8> {
    let (plan, path) = load(ctx)?;
    // The ledger opens (and migrates) before anything is served.
    drop(ledger(&plan, &path)?);
    let tick = crate::cmd::parse_duration(&a.tick)?.max(Duration::from_millis(100));
    let jitter = if a.jitter == "0" {
        Duration::ZERO
    } else {
        crate::cmd::parse_duration(&a.jitter)?
    };
    let stop = crate::interrupt::graceful();
    let listener = std::net::TcpListener::bind(&a.listen).map_err(|e| {
        crate::UsageError(format!(
            "cannot listen on {}: {}",
            a.listen,
            lifeboat_repo::error::io_words(&e)
        ))
    })?;
    listener.set_nonblocking(true)?;
    tracing::info!("serving /metrics, /healthz and /api/status on {}", a.listen);
    if !ctx.global.quiet && !ctx.global.json {
        eprintln!(
            "lifeboat serve: {} components of {}; http://{}/metrics",
            plan.components.len(),
            path.display(),
            a.listen
        );
    }
    let shared = Arc::new((plan, path));
    let scheduler = {
        let shared = Arc::clone(&shared);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || schedule(&shared.0, &shared.1, tick, jitter, &stop))
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let served = rt.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let app = routes(Arc::clone(&shared));
        let stopping = Arc::clone(&stop);
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                while !stopping.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
            .await
    });
    stop.store(true, Ordering::Relaxed);
    let _ = scheduler.join();
    served?;
    Ok(exit::SUCCESS)
}

type Shared = Arc<(Plan, PathBuf)>;

fn routes(shared: Shared) -> axum::Router {
    use axum::routing::get;
    let metrics_state = Arc::clone(&shared);
    let status_state = shared;
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || {
                let s = Arc::clone(&metrics_state);
                async move { respond(metrics(&s.0, &s.1), "text/plain; version=0.0.4") }
            }),
        )
        .route(
            "/api/status",
            get(move || {
                let s = Arc::clone(&status_state);
                async move { respond(status(&s.0, &s.1), "application/json") }
            }),
        )
}

fn respond(body: Result<String>, kind: &'static str) -> axum::response::Response {
    use axum::response::IntoResponse;
    match body {
        Ok(b) => ([(axum::http::header::CONTENT_TYPE, kind)], b).into_response(),
        Err(e) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("lifeboat: {e:#}\n"),
        )
            .into_response(),
    }
}

fn status(plan: &Plan, path: &Path) -> Result<String> {
    let l = ledger(plan, path)?;
    let (rows, over) = crate::cmd::status::posture(plan, &l)?;
    Ok(serde_json::to_string_pretty(&serde_json::json!({
        "plan": path.display().to_string(),
        "components": rows,
        "outside_rpo": over,
    }))?)
}

/// The Prometheus text exposition of every component's posture.
fn metrics(plan: &Plan, path: &Path) -> Result<String> {
    let l = ledger(plan, path)?;
    let (rows, _) = crate::cmd::status::posture(plan, &l)?;
    let mut out = String::new();
    let mut family = |name: &str, help: &str, value: &dyn Fn(&serde_json::Value) -> Option<f64>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for r in &rows {
            if let Some(v) = value(r) {
                // Component names are letters, digits, - and _ (the plan
                // refuses others): nothing to escape.
                let _ = writeln!(
                    out,
                    "{name}{{component=\"{}\",tier=\"{}\",region=\"{}\"}} {v}",
                    r["component"].as_str().unwrap_or(""),
                    r["tier"].as_str().unwrap_or(""),
                    r["region"].as_str().unwrap_or("")
                );
            }
        }
    };
    let b = |x: bool| if x { 1.0 } else { 0.0 };
    family(
        "lifeboat_rpo_seconds",
        "The component's recovery point objective.",
        &|r| r["rpo_seconds"].as_f64(),
    );
    family(
        "lifeboat_rto_seconds",
        "The component's recovery time objective.",
        &|r| r["rto_seconds"].as_f64(),
    );
    family(
        "lifeboat_achievable_rpo_seconds",
        "The worst data loss the plan's schedule or log stream allows.",
        &|r| r["achievable_rpo_seconds"].as_f64(),
    );
    family(
        "lifeboat_data_loss_window_seconds",
        "The age of the component's newest backup.",
        &|r| r["data_loss_window_seconds"].as_f64(),
    );
    family(
        "lifeboat_within_rpo",
        "1 when the newest backup is within the RPO.",
        &|r| Some(b(r["within_rpo"].as_bool().unwrap_or(false))),
    );
    family(
        "lifeboat_last_success_timestamp_seconds",
        "When the last successful backup started.",
        &|r| r["last_success"]["started"].as_f64(),
    );
    family(
        "lifeboat_backup_duration_seconds",
        "How long the last successful backup took.",
        &|r| Some(r["last_success"]["ended"].as_f64()? - r["last_success"]["started"].as_f64()?),
    );
    family(
        "lifeboat_backup_bytes",
        "Bytes the last successful backup read.",
        &|r| r["last_success"]["bytes"].as_f64(),
    );
    family(
        "lifeboat_last_run_success",
        "1 when the last backup run succeeded.",
        &|r| r["last_run"]["ok"].as_bool().map(b),
    );
    family(
        "lifeboat_verification_success",
        "1 when the last verification did not fail.",
        &|r| {
            r["last_verification"]["result"]
                .as_str()
                .map(|v| b(v != "failed"))
        },
    );
    family(
        "lifeboat_restore_seconds",
        "How long the last restore test took.",
        &|r| r["last_verification"]["restore_seconds"].as_f64(),
    );
    // Per component and the region it replicates to (`region` is the
    // replica's here; `from` the home region).
    let mut replica =
        |name: &str,
         help: &str,
         value: &dyn Fn(&serde_json::Value, &serde_json::Value) -> Option<f64>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for r in &rows {
                for c in r["replication"].as_array().into_iter().flatten() {
                    if let Some(v) = value(r, c) {
                        let v = if v.is_infinite() {
                            "+Inf".to_string()
                        } else {
                            v.to_string()
                        };
                        let _ = writeln!(
                            out,
                            "{name}{{component=\"{}\",tier=\"{}\",region=\"{}\",from=\"{}\"}} {v}",
                            r["component"].as_str().unwrap_or(""),
                            r["tier"].as_str().unwrap_or(""),
                            c["region"].as_str().unwrap_or(""),
                            r["region"].as_str().unwrap_or("")
                        );
                    }
                }
            }
        };
    replica(
        "lifeboat_replication_lag_seconds",
        "How far the region's newest copy is behind the newest backup (+Inf: never copied).",
        &|r, c| {
            c["lag_seconds"]
                .as_f64()
                .or_else(|| r["last_success"].is_object().then_some(f64::INFINITY))
        },
    );
    replica(
        "lifeboat_replica_data_loss_window_seconds",
        "The age of the newest copy in the region: what losing the home region loses now.",
        &|_, c| c["data_loss_window_seconds"].as_f64(),
    );
    replica(
        "lifeboat_last_copy_timestamp_seconds",
        "When the last successful copy to the region started.",
        &|_, c| c["last_copy"]["started"].as_f64(),
    );
    let _ = writeln!(
        out,
        "# HELP lifeboat_scheduler_ticks_total Passes of the scheduler since the daemon started.\n# TYPE lifeboat_scheduler_ticks_total counter\nlifeboat_scheduler_ticks_total {}",
        TICKS.load(Ordering::Relaxed)
    );
    Ok(out)
}

/// What is due now, as the arguments of a child `lifeboat`: backups by
/// the ledger's last success and the schedule (a backup goes on to its
/// copies), copies whose region lacks the newest backup (the copy after a
/// backup failed), restore tests by the last verification and the verify
/// schedule.
fn due(
    plan: &Plan,
    path: &Path,
    backoff: &HashMap<String, Instant>,
    jitter: Duration,
) -> Result<Vec<Due>> {
    let l = ledger(plan, path)?;
    let real_now = jiff::Timestamp::now();
    let mut todo = vec![];
    for c in &plan.components {
        // Its work is due once its schedule's time is `offset` past.
        let offset = c
            .schedule
            .as_ref()
            .map_or(Duration::ZERO, |s| offset(&c.name, s, jitter, real_now));
        let now = real_now
            .checked_sub(jiff::SignedDuration::try_from(offset).unwrap_or_default())
            .unwrap_or(real_now);
        if backoff.get(&c.name).is_some_and(|t| Instant::now() < *t) {
            continue;
        }
        let job = |args: &[&str]| Due {
            component: c.name.clone(),
            args: args
                .iter()
                .map(|a| a.to_string())
                .chain([c.name.clone()])
                .collect(),
        };
        let last_backup = l.last_success(&c.name)?.map(|r| r.started);
        if c.schedule.as_ref().is_some_and(|s| s.due(last_backup, now)) {
            todo.push(job(&["run"]));
            continue;
        }
        let Some(backed_up) = last_backup else {
            continue;
        };
        for to in &c.replicate_to {
            let copied = l.last_copy(&c.name, to, false)?.map(|r| r.started);
            if copied.is_none_or(|t| t < backed_up) {
                todo.push(job(&["copy", "--to", to]));
            }
        }
        let last_verify = l.last_verification(&c.name, false)?.map(|v| v.at);
        if c.verify
            .as_ref()
            .and_then(|v| v.schedule.as_ref())
            .is_some_and(|s| s.due(last_verify, now))
        {
            todo.push(job(&["verify"]));
        }
    }
    Ok(todo)
}

/// How long after its scheduled time component `name`'s work starts: a
/// fixed pseudo-random offset up to `max`, and at most a tenth of the
/// schedule's interval now (so it never slips into the next slot).
fn offset(
    name: &str,
    s: &lifeboat_plan::Schedule,
    max: Duration,
    now: jiff::Timestamp,
) -> Duration {
    let interval = match (s.last_before(now), s.next_after(now)) {
        (Some(a), Some(b)) => b.duration_since(a).unsigned_abs(),
        _ => Duration::ZERO,
    };
    let cap = max.min(interval / 10).as_secs();
    let h = blake3::hash(name.as_bytes());
    let n = u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or_default());
    Duration::from_secs(n % (cap + 1))
}

/// One piece of due work: whose, and the child's arguments.
struct Due {
    component: String,
    args: Vec<String>,
}

/// Scheduler passes since the daemon started (`lifeboat_scheduler_ticks_total`).
static TICKS: AtomicU64 = AtomicU64::new(0);

/// The scheduler: every `tick`, what is due, one child at a time; then
/// the notifications.
fn schedule(plan: &Plan, path: &Path, tick: Duration, jitter: Duration, stop: &AtomicBool) {
    let mut failures: HashMap<String, u32> = HashMap::new();
    let mut backoff: HashMap<String, Instant> = HashMap::new();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the scheduler's runtime: {e}");
            return;
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let todo = match due(plan, path, &backoff, jitter) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("cannot tell what is due: {e:#}");
                vec![]
            }
        };
        for Due { component, args } in todo {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            // A component whose first piece of work failed this tick waits.
            if backoff.get(&component).is_some_and(|t| Instant::now() < *t) {
                continue;
            }
            let what = args.join(" ");
            let ok = child(path, &args, stop);
            if ok {
                failures.remove(&component);
                backoff.remove(&component);
            } else {
                let n = failures.entry(component.clone()).or_insert(0);
                *n += 1;
                let wait = Duration::from_secs((60u64 << (*n - 1).min(6)).min(3600));
                tracing::warn!("{what} failed; next try in {}s", wait.as_secs());
                backoff.insert(component, Instant::now() + wait);
            }
        }
        if !plan.notify.is_empty() {
            let told = ledger(plan, path).and_then(|l| {
                let (rows, _) = crate::cmd::status::posture(plan, &l)?;
                crate::cmd::notify::tick(plan, &l, &rows, &rt);
                Ok(())
            });
            if let Err(e) = told {
                tracing::error!("cannot tell what to notify: {e:#}");
            }
        }
        TICKS.fetch_add(1, Ordering::Relaxed);
        let until = Instant::now() + tick;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Runs `lifeboat -c PLAN ARGS…` to its end (asked to stop on shutdown,
/// and waited for); whether it succeeded.
fn child(path: &Path, args: &[String], stop: &AtomicBool) -> bool {
    let what = args.join(" ");
    let Ok(exe) = std::env::current_exe() else {
        return false;
    };
    let spawned = Command::new(exe)
        .arg("-q")
        .arg("-c")
        .arg(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn();
    let mut c = match spawned {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot start {what}: {e}");
            return false;
        }
    };
    let mut asked = false;
    loop {
        match c.try_wait() {
            Ok(Some(status)) => {
                tracing::info!("{what}: {status}");
                return status.success();
            }
            Ok(None) => {}
            Err(_) => return false,
        }
        if stop.load(Ordering::Relaxed) && !asked {
            // SAFETY: signalling our own child by its pid.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
            asked = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_fixed_per_component_and_within_a_tenth_of_the_interval() {
        let now: jiff::Timestamp = "2026-12-08T02:30:00Z".parse().unwrap();
        let hourly = lifeboat_plan::Schedule::parse("@hourly").unwrap();
        let minutely = lifeboat_plan::Schedule::parse("* * * * *").unwrap();
        let max = Duration::from_secs(300);
        let offsets: Vec<Duration> = (0..50)
            .map(|i| offset(&format!("c{i}"), &hourly, max, now))
            .collect();
        assert!(offsets.iter().all(|o| *o <= max), "{offsets:?}");
        assert!(
            offsets
                .iter()
                .collect::<std::collections::HashSet<_>>()
                .len()
                > 10,
            "spread out: {offsets:?}"
        );
        assert_eq!(offset("c7", &hourly, max, now), offsets[7], "fixed");
        for i in 0..50 {
            let o = offset(&format!("c{i}"), &minutely, max, now);
            assert!(o <= Duration::from_secs(6), "a tenth of a minute: {o:?}");
        }
        assert_eq!(offset("c1", &hourly, Duration::ZERO, now), Duration::ZERO);
    }
}
