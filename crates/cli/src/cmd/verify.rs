//! `lifeboat verify [COMPONENT…]`: each component's newest backup held
//! against its plan — the repository of its region and of each region it
//! is copied to (structure, and a sample of packs read back: `check
//! --read-data-subset 5%`, once per region), its age against the RPO, its
//! size against the last backups (a sudden drop warns), and its restore
//! test: the backup really
//! restored into the scratch target, the checks run on it, the restore
//! timed against the RTO, the scratch copy removed. A summary (`Total
//! components`, `Passed`, `Warnings`, `Failed`), a JSON report, and each
//! result recorded in the ledger; exit 1 when anything failed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use lifeboat_ledger::{Ledger, Verification};
use lifeboat_plan::{Check, Component, Plan};
use serde::Serialize;
use serde_json::json;

use crate::args::VerifyArgs;
use crate::cmd::plan::{ledger, load};
use crate::cmd::run::{child_outcome, in_region};
use crate::cmd::Ctx;
use crate::exit;

/// A finding of one verification.
#[derive(Debug, Clone, Serialize)]
struct Finding {
    /// `ok`, `warning` or `failed`.
    level: &'static str,
    /// What was checked.
    check: &'static str,
    /// What was found.
    message: String,
}

/// One component's verification.
#[derive(Debug, Clone, Serialize)]
struct Report {
    component: String,
    result: &'static str,
    snapshot: Option<String>,
    restore_seconds: Option<f64>,
    findings: Vec<Finding>,
}

pub fn run(ctx: &Ctx, a: VerifyArgs) -> Result<u8> {
    let (plan, path) = load(ctx)?;
    let ledger = ledger(&plan, &path)?;
    let chosen: Vec<&Component> = if a.components.is_empty() {
        plan.components.iter().collect()
    } else {
        a.components
            .iter()
            .map(|n| {
                plan.components
                    .iter()
                    .find(|c| &c.name == n)
                    .ok_or_else(|| crate::UsageError(format!("the plan has no component {n:?}")))
            })
            .collect::<std::result::Result<_, _>>()?
    };
    let mut reports = vec![];
    let mut regions = RegionChecks::default();
    for c in chosen {
        let r = verify(&plan, c, &mut regions);
        ledger.record_verification(
            &c.name,
            &Verification {
                at: Ledger::now(),
                result: r.result.into(),
                restore_seconds: r.restore_seconds,
                snapshot: r.snapshot.clone(),
                report: serde_json::to_string(&r.findings)?,
            },
        )?;
        reports.push(r);
    }
    let count = |level: &str| reports.iter().filter(|r| r.result == level).count();
    let (passed, warnings, failed) = (count("passed"), count("warning"), count("failed"));
    let doc = json!({
        "plan": path.display().to_string(),
        "total": reports.len(),
        "passed": passed,
        "warnings": warnings,
        "failed": failed,
        "components": reports,
    });
    if let Some(file) = &a.report {
        std::fs::write(file, serde_json::to_vec_pretty(&doc)?)
            .map_err(|e| lifeboat_repo::RepoError::io("write", file, e))?;
    }
    let problems: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.findings
                .iter()
                .filter(|f| f.level != "ok")
                .map(move |f| format!("{}: {}: {}: {}", f.level, r.component, f.check, f.message))
        })
        .collect();
    ctx.out.outcome(&doc, &problems, || {
        let mut t = String::new();
        for r in &reports {
            t += &format!(
                "{:<8} {}{}\n",
                r.result.to_uppercase(),
                r.component,
                r.restore_seconds
                    .map(|s| format!(" (restored in {s:.1}s)"))
                    .unwrap_or_default()
            );
        }
        t += &format!(
            "Total components: {}  Passed: {passed}  Warnings: {warnings}  Failed: {failed}\n",
            reports.len()
        );
        t
    })?;
    Ok(if failed == 0 {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}

/// Each region's repository check, run once per `verify` however many
/// components live there: (level, what it found).
#[derive(Default)]
struct RegionChecks(std::collections::HashMap<String, (&'static str, String)>);

/// Share of the packs a verification reads back in each region.
const SAMPLE: &str = "5%";

impl RegionChecks {
    /// `lifeboat check --read-data-subset 5%` of `region`: its structure
    /// (every index, snapshot and tree readable, every blob a snapshot
    /// needs in a pack) and a random sample of its packs read back.
    fn of(&mut self, plan: &Plan, region: &str) -> (&'static str, String) {
        self.0
            .entry(region.to_string())
            .or_insert_with(|| {
                let mut cmd = match in_region(plan, region) {
                    Ok(c) => c,
                    Err(e) => return ("failed", e),
                };
                cmd.args(["check", "--read-data-subset", SAMPLE]);
                let out = match cmd.output() {
                    Ok(o) => o,
                    Err(e) => return ("failed", format!("cannot run lifeboat check: {e}")),
                };
                let (doc, error) = child_outcome(&out);
                let errors = doc["errors"].as_array().map_or(0, Vec::len);
                match error {
                    None => (
                        "ok",
                        format!("region {region}: structure and a {SAMPLE} sample of packs read back, no errors"),
                    ),
                    Some(e) => (
                        "failed",
                        format!(
                            "region {region}: {} ({e})",
                            crate::ui::count(errors as u64, "error")
                        ),
                    ),
                }
            })
            .clone()
    }
}

fn verify(plan: &Plan, c: &Component, regions: &mut RegionChecks) -> Report {
    let mut findings = vec![];
    let mut add = |level, check, message: String| {
        findings.push(Finding {
            level,
            check,
            message,
        })
    };
    // The repositories it lives in: its home region and every copy.
    for r in std::iter::once(&c.region).chain(&c.replicate_to) {
        let (level, message) = regions.of(plan, r);
        add(level, "repository", message);
    }
    let newest = newest_snapshot(plan, c);
    let (snapshot, restore_seconds) = match newest {
        Err(e) => {
            add("failed", "backup", e);
            (None, None)
        }
        Ok(s) => {
            let age = (jiff::Timestamp::now().as_second() - s.time) as f64;
            let words = |secs: f64| {
                lifeboat_plan::objectives::words(jiff::SignedDuration::from_secs(secs as i64))
            };
            if age > c.rpo.as_secs_f64() {
                add(
                    "failed",
                    "age",
                    format!(
                        "the newest backup is {} old; the RPO is {}",
                        words(age),
                        words(c.rpo.as_secs_f64())
                    ),
                );
            } else {
                add(
                    "ok",
                    "age",
                    format!("the newest backup is {} old", words(age)),
                );
            }
            // Against the backups before it: a sudden drop warns.
            if let Some(before) = s.previous_bytes.filter(|b| *b > 0) {
                if (s.bytes as f64) < before as f64 * 0.5 {
                    add(
                        "warning",
                        "size",
                        format!(
                            "the newest backup holds {}, the one before held {}: data may be missing",
                            crate::ui::bytes(s.bytes),
                            crate::ui::bytes(before)
                        ),
                    );
                }
            }
            let restore = match &c.verify {
                None => {
                    add(
                        "warning",
                        "restore test",
                        "none configured (give the component a verify table with a target)".into(),
                    );
                    None
                }
                Some(v) => restore_test(plan, c, &s.id, &v.target, &v.checks, &mut add),
            };
            if let Some(secs) = restore {
                if secs > c.rto.as_secs_f64() {
                    add(
                        "failed",
                        "rto",
                        format!(
                            "the restore took {secs:.1}s; the RTO is {}",
                            words(c.rto.as_secs_f64())
                        ),
                    );
                }
            }
            (Some(s.id), restore)
        }
    };
    let result = if findings.iter().any(|f| f.level == "failed") {
        "failed"
    } else if findings.iter().any(|f| f.level == "warning") {
        "warning"
    } else {
        "passed"
    };
    Report {
        component: c.name.clone(),
        result,
        snapshot,
        restore_seconds,
        findings,
    }
}

struct Newest {
    id: String,
    time: i64,
    bytes: u64,
    previous_bytes: Option<u64>,
}

/// The component's newest snapshot in its region, and the size of the one
/// before it.
fn newest_snapshot(plan: &Plan, c: &Component) -> std::result::Result<Newest, String> {
    let mut cmd = in_region(plan, &c.region)?;
    cmd.args(["snapshots", "--tag", &format!("component={}", c.name)]);
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run lifeboat: {e}"))?;
    let (doc, error) = child_outcome(&out);
    if let Some(e) = error {
        return Err(e);
    }
    let all = doc.as_array().cloned().unwrap_or_default();
    let size = |s: &serde_json::Value| s["snapshot"]["summary"]["bytes_total"].as_u64();
    let time = |s: &serde_json::Value| {
        s["snapshot"]["time"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map_or(0, |t| t.as_second())
    };
    let mut sorted: Vec<&serde_json::Value> = all.iter().collect();
    sorted.sort_by_key(|s| time(s));
    let Some(newest) = sorted.last() else {
        return Err(format!(
            "no backup of {} in region {} (run `lifeboat run {}`)",
            c.name, c.region, c.name
        ));
    };
    Ok(Newest {
        id: newest["id"].as_str().unwrap_or_default().to_string(),
        time: time(newest),
        bytes: size(newest).unwrap_or(0),
        previous_bytes: sorted.iter().rev().nth(1).and_then(|s| size(s)),
    })
}

/// Restores snapshot `id` into a fresh directory under `target`, runs the
/// checks, removes it; the restore's seconds, if it restored.
fn restore_test(
    plan: &Plan,
    c: &Component,
    id: &str,
    target: &str,
    checks: &[Check],
    add: &mut impl FnMut(&'static str, &'static str, String),
) -> Option<f64> {
    if lifeboat_sources::is_url(target) {
        add(
            "warning",
            "restore test",
            format!("restoring into a database server ({target}) is not built yet; give a scratch directory for file and SQLite components"),
        );
        return None;
    }
    let scratch =
        PathBuf::from(target).join(format!("lifeboat-verify-{}-{}", c.name, std::process::id()));
    let result = restore_into(plan, c, id, &scratch, checks, add);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// The first row `query` returns on the restored SQLite database (opened
/// read-only), its columns as text joined by tabs; no row is "".
fn sql_first_row(db: &Path, query: &str) -> std::result::Result<String, String> {
    use rusqlite::types::ValueRef;
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| e.to_string())?;
    let mut q = c.prepare(query).map_err(|e| e.to_string())?;
    let n = q.column_count();
    let mut rows = q.query([]).map_err(|e| e.to_string())?;
    let Some(row) = rows.next().map_err(|e| e.to_string())? else {
        return Ok(String::new());
    };
    let mut cells = vec![];
    for i in 0..n {
        cells.push(match row.get_ref(i).map_err(|e| e.to_string())? {
            ValueRef::Null => String::new(),
            ValueRef::Integer(v) => v.to_string(),
            ValueRef::Real(v) => v.to_string(),
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            ValueRef::Blob(b) => hex::encode(b),
        });
    }
    Ok(cells.join("\t"))
}

fn restore_into(
    plan: &Plan,
    c: &Component,
    id: &str,
    scratch: &Path,
    checks: &[Check],
    add: &mut impl FnMut(&'static str, &'static str, String),
) -> Option<f64> {
    if let Err(e) = std::fs::create_dir_all(scratch) {
        add(
            "failed",
            "restore test",
            format!("cannot create {}: {e}", scratch.display()),
        );
        return None;
    }
    let mut cmd = match in_region(plan, &c.region) {
        Ok(cmd) => cmd,
        Err(e) => {
            add("failed", "restore test", e);
            return None;
        }
    };
    let sqlite = c.source.starts_with("sqlite://");
    // What the checks look at: the restored file or directory.
    let restored = if sqlite {
        let file = c.source.rsplit('/').next().unwrap_or("restored.db");
        let at = scratch.join(file);
        cmd.args(["restore", id, "--target"])
            .arg(format!("sqlite://{}", at.display()));
        at
    } else {
        cmd.args(["restore", id, "--verify", "--target"])
            .arg(scratch);
        scratch.to_path_buf()
    };
    let start = Instant::now();
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => {
            add(
                "failed",
                "restore test",
                format!("cannot run lifeboat restore: {e}"),
            );
            return None;
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let (doc, error) = child_outcome(&out);
    if let Some(e) = error {
        add("failed", "restore test", e);
        return None;
    }
    add(
        "ok",
        "restore test",
        format!("restored into {} in {secs:.1}s", scratch.display()),
    );
    for check in checks {
        match check {
            Check::Counts if sqlite => {
                if doc["counts_match"] == true {
                    add("ok", "counts", format!("{} rows, as recorded", doc["rows"]));
                } else {
                    add(
                        "failed",
                        "counts",
                        format!("the restored counts differ: {}", doc["tables"]),
                    );
                }
            }
            // A file restore with --verify read every file back.
            Check::Counts | Check::Integrity => add(
                "ok",
                if matches!(check, Check::Counts) {
                    "counts"
                } else {
                    "integrity"
                },
                if sqlite {
                    "integrity_check ok on the restored database".into()
                } else {
                    "every restored file read back equal to the backup".into()
                },
            ),
            Check::Sql { query, expect } if sqlite => match sql_first_row(&restored, query) {
                Ok(got) if got.trim() == expect.trim() => {
                    add("ok", "sql", format!("{query:?} returned {got:?}"))
                }
                Ok(got) => add(
                    "failed",
                    "sql",
                    format!("{query:?} returned {got:?}, expected {expect:?}"),
                ),
                Err(e) => add("failed", "sql", format!("{query:?}: {e}")),
            },
            Check::Sql { .. } => add(
                "warning",
                "sql",
                "SQL checks on PostgreSQL, MariaDB and Redis need a database server restore target (not built yet)".into(),
            ),
            Check::Command { run } => {
                let ok = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(run)
                    .env("LIFEBOAT_RESTORED", &restored)
                    .stdin(std::process::Stdio::null())
                    .output();
                match ok {
                    Ok(o) if o.status.success() => {
                        add("ok", "command", format!("{run:?} exited 0"))
                    }
                    Ok(o) => add(
                        "failed",
                        "command",
                        format!(
                            "{run:?} exited with {}: {}",
                            o.status,
                            String::from_utf8_lossy(&o.stderr)
                                .trim()
                                .lines()
                                .last()
                                .unwrap_or("")
                        ),
                    ),
                    Err(e) => add("failed", "command", format!("cannot run {run:?}: {e}")),
                }
            }
        }
    }
    Some(secs)
}
