//! Notifications, sent by `serve`: each receiver of the plan's `[notify]`
//! is told when a condition starts (a backup failed, no recoverable point
//! within the RPO, a region's copy too far behind, a verification failed)
//! and when it ends — once each, not once per tick, also across restarts:
//! what each receiver was told is kept in the ledger.
//!
//! Alertmanager receivers get its API's JSON (`POST /api/v2/alerts`),
//! re-sent every minute while the alert lasts with an end five minutes
//! ahead, as Prometheus does (Alertmanager then notifies once and repeats
//! by its own `repeat_interval`; if lifeboat stops, the alerts expire and
//! `up == 0` is for Prometheus to see). Webhooks get one JSON document per
//! change of state (and again after `repeat` while it lasts); commands get
//! the same document on stdin.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::Duration;

use anyhow::{anyhow, Result};
use lifeboat_ledger::{AlertState, Ledger};
use lifeboat_plan::{AlertKind, Notifier, Plan, Receiver};
use serde_json::{json, Value};

/// How often a firing alert is re-sent to Alertmanager.
const ALERTMANAGER_RESEND: f64 = 60.0;
/// How long Alertmanager keeps an alert that is not re-sent.
const ALERTMANAGER_HOLD: f64 = 300.0;
/// How long one send may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// One condition that holds now.
#[derive(Debug, Clone)]
struct Alert {
    name: &'static str,
    component: String,
    tier: String,
    region: String,
    severity: &'static str,
    summary: String,
    description: String,
}

impl Alert {
    fn key(&self) -> (String, String, String) {
        (
            self.name.to_string(),
            self.component.clone(),
            self.region.clone(),
        )
    }
}

/// The conditions that hold now for what `n` is told of, from the posture
/// rows (`status::posture`).
fn firing(plan: &Plan, rows: &[Value], n: &Notifier) -> Vec<Alert> {
    let mut out = vec![];
    for (c, r) in plan.components.iter().zip(rows) {
        let alert = |name, region: &str, severity, summary: String, description: String| Alert {
            name,
            component: c.name.clone(),
            tier: r["tier"].as_str().unwrap_or("").to_string(),
            region: region.to_string(),
            severity,
            summary,
            description,
        };
        let ended = r["last_run"]["ended"].is_number();
        for kind in &n.alerts {
            match kind {
                AlertKind::BackupFailed if r["last_run"]["ok"] == false => out.push(alert(
                    alert_name(*kind),
                    &c.region,
                    severity(*kind),
                    format!("lifeboat: the last backup of {} failed", c.name),
                    r["last_run"]["error"].as_str().unwrap_or("").to_string(),
                )),
                AlertKind::OutsideRpo
                    if r["within_rpo"] == false && (r["last_success"].is_object() || ended) =>
                {
                    out.push(alert(
                        alert_name(*kind),
                        &c.region,
                        severity(*kind),
                        format!(
                            "lifeboat: {} has no recoverable point within its RPO",
                            c.name
                        ),
                        format!(
                            "The newest backup is older than the RPO of {}.",
                            lifeboat_plan::objectives::words(c.rpo)
                        ),
                    ))
                }
                AlertKind::ReplicationLag => {
                    let limit = n.replication_lag.unwrap_or(c.rpo).as_secs_f64();
                    for rep in r["replication"].as_array().into_iter().flatten() {
                        let to = rep["region"].as_str().unwrap_or("");
                        let behind = match rep["lag_seconds"].as_f64() {
                            Some(lag) => lag > limit,
                            // Never copied: once a copy there has failed.
                            None => {
                                r["last_success"].is_object()
                                    && rep["last_copy_attempt"]["ok"] == false
                            }
                        };
                        if behind {
                            out.push(alert(
                                alert_name(*kind),
                                to,
                                severity(*kind),
                                format!(
                                    "lifeboat: the copy of {} in {to} is more than {} behind",
                                    c.name,
                                    lifeboat_plan::objectives::words(
                                        jiff::SignedDuration::from_secs(limit as i64)
                                    )
                                ),
                                rep["last_copy_attempt"]["error"]
                                    .as_str()
                                    .unwrap_or("")
                                    .to_string(),
                            ));
                        }
                    }
                }
                AlertKind::VerificationFailed if r["last_verification"]["result"] == "failed" => {
                    out.push(alert(
                        alert_name(*kind),
                        &c.region,
                        severity(*kind),
                        format!("lifeboat: the restore test of {} failed", c.name),
                        format!("lifeboat verify {} says why.", c.name),
                    ))
                }
                _ => {}
            }
        }
    }
    out
}

fn rfc3339(at: f64) -> String {
    jiff::Timestamp::from_microsecond((at * 1e6) as i64)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The document a webhook or command gets, and Alertmanager's alert.
fn document(a: &Alert, since: f64, resolved_at: Option<f64>, kind: &Receiver) -> Value {
    let labels = json!({
        "alertname": a.name,
        "component": a.component,
        "tier": a.tier,
        "region": a.region,
        "severity": a.severity,
    });
    let annotations = json!({ "summary": a.summary, "description": a.description });
    let now = Ledger::now();
    match kind {
        Receiver::Alertmanager { .. } => json!([{
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(since),
            "endsAt": rfc3339(resolved_at.unwrap_or(now + ALERTMANAGER_HOLD)),
        }]),
        _ => json!({
            "version": 1,
            "status": if resolved_at.is_some() { "resolved" } else { "firing" },
            "alert": a.name,
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(since),
            "endsAt": resolved_at.map(rfc3339),
        }),
    }
}

/// Tells every receiver of the plan what changed since it was last told.
/// A send that fails is tried again on the next call.
pub fn tick(plan: &Plan, ledger: &Ledger, rows: &[Value], rt: &tokio::runtime::Runtime) {
    for (name, n) in &plan.notify {
        if let Err(e) = tell(name, n, plan, ledger, rows, rt) {
            tracing::warn!("notify {name}: {e:#}");
        }
    }
}

fn tell(
    name: &str,
    n: &Notifier,
    plan: &Plan,
    ledger: &Ledger,
    rows: &[Value],
    rt: &tokio::runtime::Runtime,
) -> Result<()> {
    let now = Ledger::now();
    let told: BTreeMap<(String, String, String), AlertState> = ledger
        .alerts(name)?
        .into_iter()
        .map(|s| ((s.alert.clone(), s.component.clone(), s.region.clone()), s))
        .collect();
    let current = firing(plan, rows, n);
    let mut first_error = None;
    for a in &current {
        let state = told.get(&a.key()).cloned().unwrap_or(AlertState {
            alert: a.name.to_string(),
            component: a.component.clone(),
            region: a.region.clone(),
            since: now,
            sent: None,
        });
        if !told.contains_key(&a.key()) {
            ledger.alert_firing(name, &state)?;
        }
        let again = match (&n.to, state.sent) {
            (_, None) => true,
            (Receiver::Alertmanager { .. }, Some(t)) => now - t >= ALERTMANAGER_RESEND,
            (_, Some(t)) => n.repeat.is_some_and(|r| now - t >= r.as_secs_f64()),
        };
        if again {
            match send(&n.to, &document(a, state.since, None, &n.to), rt) {
                Ok(()) => ledger.alert_firing(
                    name,
                    &AlertState {
                        sent: Some(now),
                        ..state
                    },
                )?,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    for (key, state) in &told {
        if current.iter().any(|a| &a.key() == key) {
            continue;
        }
        // What it resolved from: the words are rebuilt from the state.
        let c = plan.components.iter().find(|c| c.name == state.component);
        let kind = AlertKind::ALL
            .into_iter()
            .find(|k| alert_name(*k) == state.alert);
        let a = Alert {
            name: kind.map_or("LifeboatAlert", alert_name),
            component: state.component.clone(),
            tier: c
                .and_then(|c| serde_json::to_value(c.tier).ok())
                .and_then(|t| t.as_str().map(str::to_string))
                .unwrap_or_default(),
            region: state.region.clone(),
            severity: kind.map_or("warning", severity),
            summary: format!("lifeboat: {} of {} resolved", state.alert, state.component),
            description: String::new(),
        };
        match send(&n.to, &document(&a, state.since, Some(now), &n.to), rt) {
            Ok(()) => ledger.alert_resolved(name, state)?,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The alert name of a kind, as the Prometheus rules name it.
fn alert_name(k: AlertKind) -> &'static str {
    match k {
        AlertKind::BackupFailed => "LifeboatBackupFailed",
        AlertKind::OutsideRpo => "LifeboatOutsideRPO",
        AlertKind::ReplicationLag => "LifeboatReplicationLagging",
        AlertKind::VerificationFailed => "LifeboatVerificationFailed",
    }
}

/// Its severity label, as the Prometheus rules give it. The labels of a
/// resolved alert must be those it fired with: Alertmanager knows an
/// alert by its label set.
fn severity(k: AlertKind) -> &'static str {
    match k {
        AlertKind::BackupFailed | AlertKind::ReplicationLag => "warning",
        AlertKind::OutsideRpo | AlertKind::VerificationFailed => "critical",
    }
}

fn send(to: &Receiver, doc: &Value, rt: &tokio::runtime::Runtime) -> Result<()> {
    let body = serde_json::to_vec(doc)?;
    match to {
        Receiver::Alertmanager { url } | Receiver::Webhook { url } => rt
            .block_on(async { tokio::time::timeout(SEND_TIMEOUT, post(url, body)).await })
            .map_err(|_| anyhow!("{url} did not answer within {}s", SEND_TIMEOUT.as_secs()))?,
        Receiver::Command { run } => command(run, doc, &body),
    }
}

/// POSTs `body` as JSON to an `http://` URL; an answer other than 2xx is
/// an error.
async fn post(url: &str, body: Vec<u8>) -> Result<()> {
    use http_body_util::Full;
    let uri: axum::http::Uri = url.parse().map_err(|e| anyhow!("{url}: {e}"))?;
    let host = uri.host().ok_or_else(|| anyhow!("{url} has no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| anyhow!("{url}: {}", lifeboat_repo::error::io_words(&e)))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| anyhow!("{url}: {e}"))?;
    tokio::spawn(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let req = axum::http::Request::post(path)
        .header(
            axum::http::header::HOST,
            uri.authority().map_or(host, |a| a.as_str()),
        )
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(axum::body::Bytes::from(body)))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| anyhow!("{url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(anyhow!("{url} answered {}", resp.status()));
    }
    Ok(())
}

/// Runs a receiver's command (`sh -c`) with the document on stdin and the
/// alert in its environment; it must exit 0 within the send timeout.
fn command(run: &str, doc: &Value, body: &[u8]) -> Result<()> {
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(run)
        .env("LIFEBOAT_ALERT", doc["alert"].as_str().unwrap_or(""))
        .env(
            "LIFEBOAT_ALERT_STATUS",
            doc["status"].as_str().unwrap_or(""),
        )
        .env(
            "LIFEBOAT_COMPONENT",
            doc["labels"]["component"].as_str().unwrap_or(""),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| anyhow!("cannot run {run:?}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(body);
    }
    let deadline = std::time::Instant::now() + SEND_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            return if status.success() {
                Ok(())
            } else {
                Err(anyhow!("{run:?} exited with {status}"))
            };
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(anyhow!(
                "{run:?} did not finish within {}s",
                SEND_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
