//! `lifeboat run [COMPONENT…]`: the plan's backups run now — the named
//! components, or those due by their schedules — each recorded in the
//! ledger (start, end, bytes, result, error, snapshot), and each one that
//! succeeded copied to the regions it replicates to (`copy`).
//!
//! Each backup runs as a child `lifeboat backup` against the component's
//! region: the same code path, output and exit codes as a backup run by
//! hand, and one component's crash or kill cannot take the others (or a
//! daemon that runs them) down with it.

use std::process::{Command, Stdio};

use anyhow::Result;
use lifeboat_ledger::{Ledger, Outcome};
use lifeboat_plan::{Component, PasswordSource, Plan};
use serde_json::json;

use crate::args::RunArgs;
use crate::cmd::plan::{ledger, load};
use crate::cmd::Ctx;
use crate::exit;

/// The components `a` names, or those due now.
fn chosen<'p>(plan: &'p Plan, ledger: &Ledger, a: &RunArgs) -> Result<Vec<&'p Component>> {
    if !a.components.is_empty() {
        return a
            .components
            .iter()
            .map(|n| crate::cmd::plan::component(plan, n))
            .collect();
    }
    let now = jiff::Timestamp::now();
    let mut due = vec![];
    for c in &plan.components {
        if a.all {
            due.push(c);
            continue;
        }
        let Some(s) = &c.schedule else { continue };
        if s.due(ledger.last_success(&c.name)?.map(|r| r.started), now) {
            due.push(c);
        }
    }
    Ok(due)
}

pub fn run(ctx: &Ctx, a: RunArgs) -> Result<u8> {
    let (plan, path) = load(ctx)?;
    let ledger = ledger(&plan, &path)?;
    let todo = chosen(&plan, &ledger, &a)?;
    let mut results = vec![];
    let mut failed = 0;
    for c in todo {
        let id = ledger.start(&c.name, "backup", &c.region)?;
        let outcome = backup(&plan, c);
        ledger.finish(id, &outcome)?;
        if !outcome.ok {
            failed += 1;
        }
        if !ctx.global.json && !ctx.global.quiet {
            #[allow(clippy::print_stdout)]
            {
                match (&outcome.snapshot, &outcome.error) {
                    (Some(s), _) if outcome.ok => println!(
                        "{}: backed up into {} as snapshot {} ({} read)",
                        c.name,
                        c.region,
                        &s[..s.len().min(8)],
                        crate::ui::bytes(outcome.bytes.unwrap_or(0))
                    ),
                    (_, e) => println!("{}: FAILED: {}", c.name, e.as_deref().unwrap_or("unknown")),
                }
            }
        }
        // A backup that succeeded goes on to every region it replicates to.
        let mut copies = vec![];
        if outcome.ok {
            for to in &c.replicate_to {
                copies.extend(crate::cmd::copy::into_region(
                    ctx,
                    &plan,
                    &ledger,
                    to,
                    &[c],
                )?);
            }
        }
        let copy_errors = crate::cmd::failures(&copies, "to", "copy to ");
        if !copy_errors.is_empty() {
            failed += 1;
        }
        let error = outcome
            .error
            .iter()
            .cloned()
            .chain(copy_errors)
            .collect::<Vec<_>>();
        results.push(json!({
            "component": c.name,
            "region": c.region,
            "ok": outcome.ok && error.is_empty(),
            "snapshot_id": outcome.snapshot,
            "bytes_read": outcome.bytes,
            "error": (!error.is_empty()).then(|| error.join("; ")),
            "copies": copies,
            "run_id": id,
        }));
    }
    let problems = crate::cmd::failures(&results, "component", "error: ");
    ctx.out
        .outcome(&json!({ "runs": results }), &problems, || {
            if results.is_empty() {
                "nothing is due (give component names, or --all)\n".into()
            } else {
                format!(
                    "{} run, {failed} failed; recorded in the ledger\n",
                    crate::ui::count(results.len() as u64, "backup")
                )
            }
        })?;
    Ok(if failed == 0 {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}

/// A child `lifeboat --json` opening the repository of `region` with its
/// password source; the error says what is missing.
pub fn in_region(plan: &Plan, region: &str) -> std::result::Result<Command, String> {
    let Some(r) = plan.regions.get(region) else {
        return Err(format!("region {region:?} is not in the plan"));
    };
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the lifeboat program: {e}"))?;
    let mut cmd = Command::new(exe);
    // Stopped with us: an interrupted `run`, `verify` or `forget --plan`
    // leaves no child working on (it removes its partial objects, writes
    // no snapshot, and exits).
    lifeboat_sources::producer::die_with_parent(&mut cmd);
    cmd.arg("--json")
        .arg("--repo")
        .arg(&r.repository)
        .env_remove("LIFEBOAT_PASSWORD")
        .env_remove("LIFEBOAT_PASSWORD_FILE")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped());
    match &r.password {
        PasswordSource::File(f) => {
            cmd.arg("--password-file").arg(f);
        }
        PasswordSource::Command(c) => {
            cmd.arg("--password-command").arg(c);
        }
        PasswordSource::Env(var) => {
            let v = std::env::var(var).map_err(|_| {
                format!("region {region}'s password is to be in ${var}, which is not set")
            })?;
            cmd.env("LIFEBOAT_PASSWORD", v);
        }
    }
    Ok(cmd)
}

/// What a child `lifeboat --json` said: its document, and (when it failed)
/// its error in its own words.
pub fn child_outcome(out: &std::process::Output) -> (serde_json::Value, Option<String>) {
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    if out.status.success() {
        return (doc, None);
    }
    let said = String::from_utf8_lossy(&out.stderr);
    let e = doc["error"]
        .as_str()
        .map(str::to_string)
        .or_else(|| said.trim().lines().last().map(str::to_string))
        .unwrap_or_else(|| format!("lifeboat exited with {}", out.status));
    (doc, Some(e))
}

/// One component's backup, as a child `lifeboat backup --json`.
fn backup(plan: &Plan, c: &Component) -> Outcome {
    let fail = |e: String| Outcome {
        ok: false,
        error: Some(e),
        ..Outcome::default()
    };
    let mut cmd = match in_region(plan, &c.region) {
        Ok(cmd) => cmd,
        Err(e) => return fail(e),
    };
    cmd.arg("backup")
        .arg("--tag")
        .arg(format!("component={}", c.name));
    match c.source.strip_prefix("files://") {
        Some(p) => {
            cmd.arg(p);
        }
        None => {
            cmd.arg("--source").arg(&c.source);
        }
    }
    if c.physical {
        cmd.arg("--physical");
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => return fail(format!("cannot run lifeboat backup: {e}")),
    };
    let (doc, error) = child_outcome(&out);
    if error.is_none() || out.status.code() == Some(i32::from(exit::PARTIAL)) {
        return Outcome {
            ok: out.status.success(),
            bytes: doc["bytes_read"].as_u64(),
            snapshot: doc["snapshot_id"].as_str().map(str::to_string),
            point: doc["time"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map(|t| t.as_microsecond() as f64 / 1e6),
            error: (!out.status.success())
                .then(|| "some source files could not be read (exit 3)".to_string()),
        };
    }
    fail(error.unwrap_or_default())
}
