//! `lifeboat plan check`: the plan validated (every problem at its line
//! and column) and each component held against its objectives.

use std::path::PathBuf;

use anyhow::Result;
use lifeboat_plan::objectives::{self, RpoBasis};
use lifeboat_plan::Plan;
use serde_json::json;

use crate::args::PlanCommand;
use crate::cmd::Ctx;
use crate::exit;

/// The plan file: `-c/--config`, `LIFEBOAT_CONFIG`, else `./lifeboat.toml`.
pub fn plan_path(ctx: &Ctx) -> PathBuf {
    ctx.global
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("lifeboat.toml"))
}

pub fn run(ctx: &Ctx, cmd: PlanCommand) -> Result<u8> {
    match cmd {
        PlanCommand::Check => check(ctx),
    }
}

fn read(ctx: &Ctx) -> Result<(PathBuf, String)> {
    let path = plan_path(ctx);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        crate::UsageError(format!(
            "cannot read the plan {}: {} (give -c FILE or LIFEBOAT_CONFIG; examples/plans/ has plans to start from)",
            path.display(),
            lifeboat_repo::error::io_words(&e)
        ))
    })?;
    Ok((path, text))
}

/// The plan, valid; a plan with problems is a usage error listing them.
pub fn load(ctx: &Ctx) -> Result<(Plan, PathBuf)> {
    let (path, text) = read(ctx)?;
    lifeboat_plan::parse(&text)
        .map(|p| (p, path.clone()))
        .map_err(|problems| {
            let lines: Vec<String> = problems
                .iter()
                .map(|p| format!("{}:{}:{}: {}", path.display(), p.line, p.column, p.message))
                .collect();
            crate::UsageError(format!(
                "the plan has {}:\n{}",
                crate::ui::count(problems.len() as u64, "problem"),
                lines.join("\n")
            ))
            .into()
        })
}

/// The plan's component `name`; a usage error naming those it has.
pub fn component<'p>(plan: &'p Plan, name: &str) -> Result<&'p lifeboat_plan::Component> {
    plan.components
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = plan.components.iter().map(|c| c.name.as_str()).collect();
            crate::UsageError(format!(
                "the plan has no component {name:?} (it has {})",
                names.join(", ")
            ))
            .into()
        })
}

/// Where the plan's SQLite ledger is (relative to the plan file).
fn ledger_path(plan: &Plan, path: &std::path::Path) -> Option<PathBuf> {
    match &plan.ledger {
        lifeboat_plan::Ledger::Sqlite(file) => Some(
            path.parent()
                .map_or_else(|| PathBuf::from(file), |dir| dir.join(file)),
        ),
        lifeboat_plan::Ledger::Postgres(_) => None,
    }
}

/// The plan's ledger, opened.
pub fn ledger(plan: &Plan, path: &std::path::Path) -> Result<lifeboat_ledger::Ledger> {
    match &plan.ledger {
        lifeboat_plan::Ledger::Sqlite(_) => {
            let at = ledger_path(plan, path).unwrap_or_default();
            Ok(lifeboat_ledger::Ledger::open(&at)?)
        }
        lifeboat_plan::Ledger::Postgres(_) => Err(crate::UsageError(
            "a PostgreSQL ledger is not built yet: give [ledger] path = \"…\" (SQLite) for now"
                .into(),
        )
        .into()),
    }
}

fn check(ctx: &Ctx) -> Result<u8> {
    let (path, text) = read(ctx)?;
    let shown = path.display().to_string();
    let plan = match lifeboat_plan::parse(&text) {
        Ok(p) => p,
        Err(problems) => {
            let lines: Vec<String> = problems
                .iter()
                .map(|p| format!("{shown}:{}:{}: error: {}", p.line, p.column, p.message))
                .collect();
            ctx.out.outcome(
                &json!({ "plan": shown, "valid": false, "problems": problems }),
                &lines,
                || {
                    format!(
                        "the plan {shown} has {}\n",
                        crate::ui::count(problems.len() as u64, "problem")
                    )
                },
            )?;
            return Ok(exit::USAGE);
        }
    };
    let now = jiff::Timestamp::now();
    let mut assessed = objectives::assess_plan(&plan, now);
    // The RTO estimate from the restore tests `verify` recorded, if the
    // ledger exists (checking a plan creates nothing).
    if ledger_path(&plan, &path).is_some_and(|p| p.exists()) {
        let l = ledger(&plan, &path)?;
        for a in &mut assessed {
            let measured = l
                .last_verification(&a.component, true)?
                .and_then(|v| v.restore_seconds);
            objectives::hold_rto(a, measured);
        }
    }
    let problems: Vec<String> = assessed
        .iter()
        .flat_map(|a| {
            a.findings
                .iter()
                .map(move |f| format!("error: {}: {f}", a.component))
        })
        .collect();
    let met = assessed.iter().all(|a| a.met());
    ctx.out.outcome(
        &json!({
            "plan": shown,
            "valid": true,
            "objectives_met": met,
            "components": assessed,
            "regions": plan.regions.keys().collect::<Vec<_>>(),
        }),
        &problems,
        || {
            let d = |s: i64| objectives::words(jiff::SignedDuration::from_secs(s));
            let mut rows = vec![[
                "COMPONENT".to_string(),
                "TIER".into(),
                "RPO".into(),
                "ACHIEVABLE".into(),
                "RTO".into(),
                "RTO ESTIMATE".into(),
                "".into(),
            ]];
            for (a, c) in assessed.iter().zip(&plan.components) {
                rows.push([
                    a.component.clone(),
                    format!("{:?}", c.tier).to_lowercase(),
                    d(a.rpo_seconds),
                    match (a.achievable_rpo_seconds, &a.basis) {
                        (Some(s), RpoBasis::Stream) => format!("{} (log stream)", d(s)),
                        (Some(s), _) => format!("{} (schedule)", d(s)),
                        (None, _) => "unbounded".into(),
                    },
                    d(a.rto_seconds),
                    // The restore tests of `lifeboat verify` measure it.
                    match a.rto_estimate_seconds {
                        Some(s) => format!("{s:.1}s (last restore test)"),
                        None => "not measured yet".into(),
                    },
                    if a.met() { "ok" } else { "MISSED" }.into(),
                ]);
            }
            let widths: Vec<usize> = (0..7)
                .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
                .collect();
            let mut t = String::new();
            for r in &rows {
                let line: Vec<String> = r
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                t += line.join("  ").trim_end();
                t += "\n";
            }
            t += &if met {
                format!("{}: every objective can be met\n", shown)
            } else {
                format!(
                    "{}: {} cannot meet {} objectives\n",
                    shown,
                    crate::ui::count(
                        assessed.iter().filter(|a| !a.rpo_met).count() as u64,
                        "component"
                    ),
                    if assessed.iter().filter(|a| !a.rpo_met).count() == 1 {
                        "its"
                    } else {
                        "their"
                    }
                )
            };
            t
        },
    )?;
    Ok(if met { exit::SUCCESS } else { exit::FAILURE })
}
