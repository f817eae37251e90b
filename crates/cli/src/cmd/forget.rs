//! `lifeboat forget` and `lifeboat prune`.

use anyhow::Result;
use lifeboat_repo::forget::{self, KeepPolicy};
use lifeboat_repo::prune::{self, PruneOptions, PruneReport};
use lifeboat_repo::Id;
use serde_json::json;

use crate::args::{ForgetArgs, PruneArgs, PruneOpts};
use crate::cmd::{parse_duration, Ctx};
use crate::{exit, ui, UsageError};

pub fn forget(ctx: &Ctx, a: ForgetArgs) -> Result<u8> {
    let repo = ctx.open()?;
    let mut removed: Vec<Id> = vec![];
    let doc;
    let mut human = String::new();
    if !a.snapshots.is_empty() {
        for s in &a.snapshots {
            removed.push(repo.find_snapshot(s, &a.filter.filter())?.0);
        }
        doc = json!({ "dry_run": a.dry_run, "removed": removed });
        for id in &removed {
            human += &format!(
                "{} snapshot {}\n",
                if a.dry_run { "would remove" } else { "removed" },
                id.short()
            );
        }
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
        let (all, bad) = repo.snapshots()?;
        if let Some(e) = bad.first() {
            // Damage, not usage: exit 1 like `check` and `snapshots`.
            anyhow::bail!("a snapshot is unreadable ({e}); run `lifeboat check` before forgetting");
        }
        let filter = a.filter.filter();
        let all: Vec<_> = all.into_iter().filter(|(_, s)| filter.matches(s)).collect();
        let groups = forget::apply(&all, &policy, &jiff::tz::TimeZone::system())?;
        let time = |id: &Id| {
            all.iter()
                .find(|(i, _)| i == id)
                .map(|(_, s)| ui::local_time(s.time))
                .unwrap_or_default()
        };
        for g in &groups {
            human += &format!("host {} paths {}:\n", g.host, g.paths.join(" "));
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
            removed.extend(g.remove.iter().copied());
        }
        doc = json!({ "dry_run": a.dry_run, "groups": groups });
    }
    if !a.dry_run {
        for id in &removed {
            repo.delete_snapshot(id)?;
        }
        human += &format!("{} snapshot(s) removed\n", removed.len());
    } else {
        human += &format!("dry run: {} snapshot(s) would be removed\n", removed.len());
    }
    let prune_report = if a.prune && !a.dry_run {
        Some(run_prune(ctx, repo, &a.prune_opts, false)?)
    } else {
        None
    };
    let doc = json!({ "forget": doc, "prune": prune_report });
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
) -> Result<PruneReport> {
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
    let bar = ctx.out.bar("prune");
    let r = prune::prune(repo.load_index()?, opts, &bar)?;
    Ok(r)
}

fn prune_text(r: &PruneReport) -> String {
    let verb = if r.dry_run { "would be " } else { "" };
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
    pending + &format!(
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
