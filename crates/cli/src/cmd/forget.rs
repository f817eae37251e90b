//! `lifeboat forget` and `lifeboat prune`.

use anyhow::Result;
use lifeboat_repo::forget::{self, ForgetOptions, KeepPolicy};
use lifeboat_repo::prune::{self, PruneOptions, PruneReport};
use lifeboat_repo::snapshot::GroupBy;
use lifeboat_repo::Id;
use serde_json::json;

use crate::args::{ForgetArgs, PruneArgs, PruneOpts};
use crate::cmd::{parse_duration, Ctx};
use crate::{exit, ui, UsageError};

pub fn forget(ctx: &Ctx, a: ForgetArgs) -> Result<u8> {
    if a.plan {
        return forget_plan(ctx, &a);
    }
    let repo = ctx.open()?;
    let report = if !a.snapshots.is_empty() {
        let mut ids = vec![];
        for s in &a.snapshots {
            ids.push(repo.find_snapshot(s, &a.filter.filter())?.0);
        }
        forget::forget_snapshots(&repo, &ids, a.dry_run)?
    } else {
        let policy = KeepPolicy {
            last: a.keep_last,
            hourly: a.keep_hourly,
            daily: a.keep_daily,
            weekly: a.keep_weekly,
            monthly: a.keep_monthly,
            yearly: a.keep_yearly,
            within: a
                .keep_within
                .as_deref()
                .map(forget::parse_within)
                .transpose()?,
            tags: a.keep_tags.clone(),
        };
        if policy.is_empty() {
            return Err(UsageError(
                "no keep rule given: refusing to forget every snapshot (use --keep-last, --keep-daily, --keep-within, … or name snapshots)".into(),
            )
            .into());
        }
        let group_by =
            GroupBy::parse(&a.group_by).map_err(|e| UsageError(format!("--group-by: {e}")))?;
        let opts = ForgetOptions {
            policy,
            filter: a.filter.filter(),
            group_by,
            dry_run: a.dry_run,
        };
        forget::forget(&repo, &opts, &jiff::tz::TimeZone::system())?
    };
    let mut human = String::new();
    if report.groups.is_empty() {
        for id in &report.removed {
            human += &format!(
                "{} snapshot {}\n",
                if a.dry_run { "would remove" } else { "removed" },
                id.short()
            );
        }
    } else {
        let (all, _) = repo.snapshots()?;
        let time = |id: &Id| {
            all.iter()
                .find(|(i, _)| i == id)
                .map(|(_, s)| ui::local_time(s.time))
                .unwrap_or_default()
        };
        for g in &report.groups {
            human += &format!("{}:\n", g.group_key);
            for k in &g.keep {
                human += &format!(
                    "  keep    {} {}  ({})\n",
                    k.id.short(),
                    time(&k.id),
                    k.reasons.join(", ")
                );
            }
            for r in &g.remove {
                human += &format!("  remove  {} {}\n", r.short(), time(r));
            }
        }
    }
    let n = ui::count(report.removed.len() as u64, "snapshot");
    human += &if a.dry_run {
        format!("dry run: {n} would be removed\n")
    } else {
        format!("{n} removed\n")
    };
    let prune_report = if a.prune && !a.dry_run {
        Some(run_prune(ctx, repo, &a.prune_opts, false)?)
    } else {
        None
    };
    let doc = json!({ "forget": report, "prune": prune_report });
    ctx.out.outcome(&doc, &[], || {
        if let Some(r) = &prune_report {
            human += &prune_text(r);
        }
        human
    })?;
    Ok(exit::SUCCESS)
}

fn run_prune(
    ctx: &Ctx,
    repo: lifeboat_repo::Repository,
    o: &PruneOpts,
    dry_run: bool,
) -> Result<Pruned> {
    // `5%` or `5`, as `check --read-data-subset` takes `5%`.
    let max_unused = o
        .max_unused
        .trim_end_matches('%')
        .parse::<f64>()
        .ok()
        .filter(|v| (0.0..=100.0).contains(v))
        .ok_or_else(|| {
            UsageError(format!(
                "--max-unused {:?}: give a percentage between 0 and 100 (`5%` or `5`)",
                o.max_unused
            ))
        })?;
    let opts = PruneOptions {
        delete_delay: parse_duration(&o.delete_delay)?,
        max_unused_percent: max_unused,
        dry_run,
    };
    // The WAL no kept base backup needs goes too; not while any snapshot
    // is unreadable (it might be the base backup that needs it).
    let (snaps, bad) = repo.snapshots()?;
    let wal = if bad.is_empty() {
        lifeboat_sources::postgres::wal::expire(&repo, &snaps, dry_run)?
    } else {
        tracing::warn!(
            "archived WAL is kept while a snapshot is unreadable: {}",
            bad[0]
        );
        vec![]
    };
    let bar = ctx.out.bar("prune");
    let r = prune::prune(repo.load_index()?, opts, &bar)?;
    Ok(Pruned { repo: r, wal })
}

/// What prune did: to the packs, and to the archived WAL.
#[derive(serde::Serialize)]
struct Pruned {
    #[serde(flatten)]
    repo: PruneReport,
    wal: Vec<lifeboat_sources::postgres::wal::ClusterExpiry>,
}

fn prune_text(p: &Pruned) -> String {
    let mut t = packs_text(&p.repo);
    for w in &p.wal {
        if w.deleted > 0 {
            t += &format!(
                "WAL of cluster {}: {} file(s) ({}) no kept base backup needs {}; kept from {} on\n",
                w.system_id,
                w.deleted,
                crate::ui::bytes(w.bytes),
                if p.repo.dry_run { "would be deleted" } else { "deleted" },
                w.keep_from
            );
        }
    }
    t
}

fn packs_text(r: &PruneReport) -> String {
    let verb = if r.dry_run { "would be " } else { "" };
    let mut plan = String::new();
    for d in &r.plan {
        let what = match d.fate {
            prune::Fate::Keep => "keep".to_string(),
            prune::Fate::Delete => "delete".to_string(),
            prune::Fate::Repack => "repack its used blobs, then mark".to_string(),
            prune::Fate::Mark(since) => format!(
                "marked for deletion since {}",
                jiff::Timestamp::from_second(since)
                    .map(ui::local_time)
                    .unwrap_or_default()
            ),
        };
        plan += &format!(
            "  pack {} ({}): {what}\n",
            d.pack.short(),
            ui::bytes(d.size)
        );
    }
    let pending = match r.pending_until {
        Some(t) if r.packs_pending > 0 => format!(
            "{} ({}) marked for deletion: a prune after {} deletes {} if still unneeded\n",
            ui::count(r.packs_pending as u64, "pack"),
            ui::bytes(r.bytes_pending),
            jiff::Timestamp::from_second(t)
                .map(ui::local_time)
                .unwrap_or_default(),
            if r.packs_pending == 1 { "it" } else { "them" },
        ),
        _ => String::new(),
    };
    let missing = match r.packs_missing {
        0 => String::new(),
        n => format!(
            "{} missing from the store held nothing a snapshot needs: {} index {} {}dropped\n",
            ui::count(n as u64, "pack"),
            if n == 1 { "its" } else { "their" },
            if n == 1 { "entry" } else { "entries" },
            if r.dry_run { "would be " } else { "" },
        ),
    };
    plan + &pending + &missing + &format!(
        "prune{}: {}; {} {verb}deleted ({}), {} {verb}marked for deletion ({}), {} {verb}repacked ({}), {} unmarked; {}\n",
        if r.dry_run { " (dry run)" } else { "" },
        ui::count(r.packs_before as u64, "pack"),
        r.packs_deleted,
        ui::bytes(r.bytes_deleted),
        r.packs_marked,
        ui::bytes(r.bytes_marked),
        r.packs_repacked,
        ui::count(r.blobs_repacked as u64, "blob"),
        r.packs_unmarked,
        ui::count(r.blobs_unused as u64, "unused blob"),
    )
}

pub fn prune(ctx: &Ctx, a: PruneArgs) -> Result<u8> {
    let repo = ctx.open()?;
    let r = run_prune(ctx, repo, &a.opts, a.dry_run)?;
    ctx.out.outcome(&r, &[], || prune_text(&r))?;
    Ok(exit::SUCCESS)
}

/// `forget --plan`: each component's retention applied to its snapshots
/// (tagged component=NAME) in its region, each as a child `lifeboat
/// forget`; a component without retention keeps everything.
fn forget_plan(ctx: &Ctx, a: &ForgetArgs) -> Result<u8> {
    use crate::cmd::run::{child_outcome, in_region};
    let (plan, _) = crate::cmd::plan::load(ctx)?;
    let mut results = vec![];
    let mut problems = vec![];
    for c in &plan.components {
        let r = &c.retention;
        let rules: Vec<(&str, String)> = [
            ("--keep-last", r.last),
            ("--keep-hourly", r.hourly),
            ("--keep-daily", r.daily),
            ("--keep-weekly", r.weekly),
            ("--keep-monthly", r.monthly),
            ("--keep-yearly", r.yearly),
        ]
        .into_iter()
        .filter_map(|(flag, n)| n.map(|n| (flag, n.to_string())))
        .chain(
            r.within
                .map(|w| ("--keep-within", format!("{}s", w.as_secs()))),
        )
        .collect();
        if rules.is_empty() {
            results.push(json!({ "component": c.name, "region": c.region, "kept_all": true }));
            continue;
        }
        let mut cmd = match in_region(&plan, &c.region) {
            Ok(cmd) => cmd,
            Err(e) => {
                problems.push(format!("error: {}: {e}", c.name));
                continue;
            }
        };
        cmd.arg("forget")
            .arg("--tag")
            .arg(format!("component={}", c.name));
        for (flag, v) in &rules {
            cmd.arg(flag).arg(v);
        }
        if a.dry_run {
            cmd.arg("--dry-run");
        }
        if a.prune {
            cmd.arg("--prune");
        }
        let out = cmd.output()?;
        let (doc, error) = child_outcome(&out);
        if let Some(e) = error {
            problems.push(format!("error: {}: {e}", c.name));
        }
        let removed = doc["forget"]["removed"].as_array().map_or(0, |r| r.len());
        let kept: usize = doc["forget"]["groups"].as_array().map_or(0, |g| {
            g.iter()
                .map(|g| g["keep"].as_array().map_or(0, |k| k.len()))
                .sum()
        });
        results.push(json!({
            "component": c.name,
            "region": c.region,
            "kept": kept,
            "removed": removed,
            "would_remove": if a.dry_run { doc["forget"]["groups"].as_array().map_or(0, |g| g.iter().map(|g| g["remove"].as_array().map_or(0, |k| k.len())).sum::<usize>()) } else { 0 },
            "ok": out.status.success(),
        }));
    }
    ctx.out.outcome(
        &json!({ "dry_run": a.dry_run, "components": results }),
        &problems,
        || {
            let mut t = String::new();
            for r in &results {
                let name = r["component"].as_str().unwrap_or("");
                if r["kept_all"] == true {
                    t += &format!("{name}: no retention in the plan; every snapshot kept\n");
                } else if a.dry_run {
                    t += &format!(
                        "{name}: would keep {}, remove {}\n",
                        r["kept"], r["would_remove"]
                    );
                } else {
                    t += &format!("{name}: kept {}, removed {}\n", r["kept"], r["removed"]);
                }
            }
            t
        },
    )?;
    Ok(if problems.is_empty() {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}
