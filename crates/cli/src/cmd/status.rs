//! `lifeboat status`: each component of the plan at a glance — its tier
//! and objectives, the data-loss window now (the age of its newest backup,
//! from the ledger) against its RPO, how far each region it replicates to
//! is behind, and its last run.

use anyhow::Result;
use lifeboat_plan::objectives;
use serde_json::json;

use crate::cmd::plan::{ledger, load};
use crate::cmd::Ctx;
use crate::exit;

/// Each component's posture now, as `status --json` and `serve`'s JSON API
/// show it, and how many are outside their RPO.
pub fn posture(
    plan: &lifeboat_plan::Plan,
    ledger: &lifeboat_ledger::Ledger,
) -> Result<(Vec<serde_json::Value>, usize)> {
    let now = jiff::Timestamp::now();
    let now_s = now.as_microsecond() as f64 / 1e6;
    let assessed = objectives::assess_plan(plan, now);
    let mut rows = vec![];
    let mut over = 0;
    for (c, a) in plan.components.iter().zip(&assessed) {
        let last = ledger.runs(&c.name, "backup", 1)?.into_iter().next();
        let success = ledger.last_success(&c.name)?;
        let verification = ledger.last_verification(&c.name, false)?;
        let window = success.as_ref().map(|r| (now_s - r.started).max(0.0));
        let within = window.is_some_and(|w| w <= c.rpo.as_secs_f64());
        if !within {
            over += 1;
        }
        // Each region it replicates to: how far its newest copy is behind
        // the newest backup, and the data that losing the home region
        // would lose now.
        let home_point = success.as_ref().map(|r| r.point.unwrap_or(r.started));
        let mut replication = vec![];
        for to in &c.replicate_to {
            let copy = ledger.last_copy(&c.name, to, false)?;
            let attempt = ledger.last_copy(&c.name, to, true)?;
            let point = copy.as_ref().and_then(|r| r.point);
            let lag = match (home_point, point) {
                (Some(h), Some(p)) => Some((h - p).max(0.0)),
                _ => None,
            };
            replication.push(json!({
                "region": to,
                "lag_seconds": lag,
                "data_loss_window_seconds": point.map(|p| (now_s - p).max(0.0)),
                "last_copy": copy,
                "last_copy_attempt": attempt,
            }));
        }
        rows.push(json!({
            "component": c.name,
            "tier": c.tier,
            "region": c.region,
            "rpo_seconds": c.rpo.as_secs(),
            "rto_seconds": c.rto.as_secs(),
            "achievable_rpo_seconds": a.achievable_rpo_seconds,
            "data_loss_window_seconds": window,
            "within_rpo": within,
            "continuous": c.continuous,
            "last_run": last,
            "last_success": success,
            "replication": replication,
            "last_verification": verification.map(|v| json!({
                "at": v.at,
                "result": v.result,
                "restore_seconds": v.restore_seconds,
                "snapshot": v.snapshot,
            })),
        }));
    }
    Ok((rows, over))
}

pub fn run(ctx: &Ctx) -> Result<u8> {
    let (plan, path) = load(ctx)?;
    let ledger = ledger(&plan, &path)?;
    let now_s = jiff::Timestamp::now().as_microsecond() as f64 / 1e6;
    let (rows, over) = posture(&plan, &ledger)?;
    let doc = json!({ "plan": path.display().to_string(), "components": rows });
    let color = console::colors_enabled() && !ctx.global.json;
    let paint = |s: String, ok: bool| {
        if !color {
            s
        } else if ok {
            console::style(s).green().to_string()
        } else {
            console::style(s).red().bold().to_string()
        }
    };
    ctx.out.print(&doc, || {
        let d = |s: f64| objectives::words(jiff::SignedDuration::from_secs(s as i64));
        let mut t = String::new();
        let head = [
            "COMPONENT",
            "TIER",
            "RPO",
            "LOSS WINDOW",
            "RTO",
            "COPIES",
            "LAST RUN",
        ];
        let body: Vec<[String; 7]> = rows
            .iter()
            .map(|r| {
                let window = match r["data_loss_window_seconds"].as_f64() {
                    Some(w) => format!("{} ago", d(w)),
                    None => "no backup yet".into(),
                };
                let last = match r["last_run"].as_object() {
                    None => "never".to_string(),
                    Some(l) => match l.get("ok").and_then(|v| v.as_bool()) {
                        Some(true) => format!(
                            "ok {} ago",
                            d(now_s - l["started"].as_f64().unwrap_or(now_s))
                        ),
                        Some(false) => format!(
                            "FAILED {} ago: {}",
                            d(now_s - l["started"].as_f64().unwrap_or(now_s)),
                            l.get("error").and_then(|e| e.as_str()).unwrap_or("")
                        ),
                        None => "running (or killed)".into(),
                    },
                };
                let copies: Vec<String> = r["replication"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        let to = c["region"].as_str().unwrap_or("");
                        match c["lag_seconds"].as_f64() {
                            Some(l) if l < 1.0 => format!("{to} current"),
                            Some(l) => format!("{to} {} behind", d(l)),
                            None => format!("{to} never copied"),
                        }
                    })
                    .collect();
                [
                    r["component"].as_str().unwrap_or("").to_string(),
                    r["tier"].as_str().unwrap_or("").to_string(),
                    d(r["rpo_seconds"].as_f64().unwrap_or(0.0)),
                    window,
                    d(r["rto_seconds"].as_f64().unwrap_or(0.0)),
                    if copies.is_empty() {
                        "-".into()
                    } else {
                        copies.join(", ")
                    },
                    last,
                ]
            })
            .collect();
        let widths: Vec<usize> = (0..7)
            .map(|i| {
                body.iter()
                    .map(|r| r[i].chars().count())
                    .chain([head[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<String>| {
            let l: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            l.join("  ").trim_end().to_string() + "\n"
        };
        t += &line(head.iter().map(|h| h.to_string()).collect());
        for (r, cells) in rows.iter().zip(body) {
            let ok = r["within_rpo"].as_bool().unwrap_or(false);
            let mut cells = cells.to_vec();
            // Padded before painting: colour codes take no columns.
            let w = widths[3];
            cells[3] = paint(format!("{:<w$}", cells[3]), ok);
            t += &line(cells);
        }
        t += &format!(
            "{}\n",
            if over == 0 {
                "every component's newest backup is within its RPO".to_string()
            } else {
                format!(
                    "{} outside its RPO",
                    crate::ui::count(over as u64, "component")
                )
            }
        );
        t
    })?;
    Ok(if over == 0 {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}
