//! `lifeboat restore`.

use anyhow::Result;
use lifeboat_repo::browse;
use lifeboat_repo::restorer::{self, RestoreOptions};
use serde_json::json;

use crate::args::RestoreArgs;
use crate::cmd::Ctx;
use crate::{exit, ui};

pub fn run(ctx: &Ctx, a: RestoreArgs) -> Result<u8> {
    crate::interrupt::set_note(
        "interrupted; the restore is incomplete: run it again with --overwrite into the same target, or into an empty one",
    );
    let repo = ctx.open_indexed()?;
    // `SNAPSHOT:/dir`: the directory's content straight into the target.
    let (spec, inside) = match a.snapshot.split_once(':') {
        Some((s, p)) => (s, Some(p)),
        None => (a.snapshot.as_str(), None),
    };
    let (id, mut snap) = repo.find_snapshot(spec, &a.filter.filter())?;
    if let Some(p) = inside.filter(|p| !p.trim_matches('/').is_empty()) {
        let node = browse::find_node(&repo, &snap, &id.short(), p)?;
        snap.tree = node.subtree.ok_or_else(|| {
            crate::UsageError(format!(
                "{p:?} in snapshot {} is not a directory; restore it with --include {p}",
                id.short()
            ))
        })?;
    }
    if a.validate_only
        || a.target
            .as_deref()
            .and_then(|t| t.to_str())
            .is_some_and(lifeboat_sources::is_url)
    {
        return database(ctx, &repo, &id, &snap, &a);
    }
    let target = a
        .target
        .clone()
        .ok_or_else(|| crate::UsageError("give --target".into()))?;
    let opts = RestoreOptions {
        includes: a.includes.clone(),
        excludes: a.excludes.clone(),
        overwrite: a.overwrite,
        dry_run: a.dry_run,
        verify: a.verify,
    };
    let bar = ctx.out.bar("restore");
    let start = std::time::Instant::now();
    let summary = restorer::restore(&repo, &snap, &target, &opts, &bar)?;
    drop(bar);
    let secs = start.elapsed().as_secs_f64();
    let doc = json!({ "snapshot_id": id, "target": target, "duration_seconds": secs, "summary": summary });
    let problems = ui::listed(
        summary
            .problems
            .iter()
            // Under the target, so the target itself is never an empty name.
            .map(|p| format!("error: {}: {}", target.join(&p.path).display(), p.message))
            .collect(),
        |n| format!("{n} path(s) could not be restored whole (listed above)"),
    );
    ctx.out.outcome(&doc, &problems, || {
        let what = format!(
            "{}, {}, {}, {}",
            ui::count(summary.files, "file"),
            ui::count(summary.dirs, "dir"),
            ui::count(summary.symlinks, "symlink"),
            ui::bytes(summary.bytes),
        );
        if summary.dry_run {
            let in_way = match (summary.conflicts, a.overwrite) {
                (0, _) => "nothing in the target is in the way".to_string(),
                (n, true) => format!(
                    "{} would be replaced",
                    ui::count(n as u64, "existing entry")
                ),
                (n, false) => format!(
                    "{} in the way: the restore would refuse without --overwrite",
                    ui::count(n as u64, "existing entry")
                ),
            };
            return format!(
                "dry run: restoring snapshot {} to {} would write {what}; {in_way}\n",
                id.short(),
                target.display(),
            );
        }
        let verified = if a.verify {
            format!(
                "; {} read back and identical",
                ui::count(summary.verified, "file")
            )
        } else {
            String::new()
        };
        format!(
            "restored snapshot {} to {}: {what} in {secs:.1}s{verified}\n",
            id.short(),
            target.display(),
        )
    })?;
    Ok(if summary.problems.is_empty() {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}

/// A database backup restored into a server (`--target URL`) or validated
/// (`--validate-only`); both end by comparing row counts with the backup's.
fn database(
    ctx: &Ctx,
    repo: &lifeboat_repo::IndexedRepository,
    id: &lifeboat_repo::Id,
    snap: &lifeboat_repo::Snapshot,
    a: &RestoreArgs,
) -> Result<u8> {
    use lifeboat_sources::postgres;
    let start = std::time::Instant::now();
    let short = id.short();
    let restored = match a.target.as_deref().and_then(|t| t.to_str()) {
        None => postgres::validate(repo, snap, &short, a.table.as_deref())?,
        Some(url) => {
            crate::interrupt::set_note(
                "interrupted; the target database was not touched (a staging database lifeboat_restore_… may be left: the next restore into the same name drops it)",
            );
            let target = lifeboat_sources::ConnUrl::parse(url, postgres::SCHEMES)?;
            let opts = postgres::RestoreOptions {
                overwrite: a.overwrite,
                table: a.table.clone(),
                no_owner: a.no_owner,
            };
            postgres::restore(repo, snap, &short, &target, &opts)?
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let bad = restored.mismatches();
    let ok = bad.is_empty();
    let doc = json!({
        "snapshot_id": id,
        "validate_only": a.validate_only,
        "target": restored.target,
        "counts_match": ok,
        "tables": restored.tables,
        "rows": restored.rows,
        "replaced": restored.replaced,
        "duration_seconds": secs,
    });
    let problems: Vec<String> = bad
        .iter()
        .map(|t| match t.found {
            Some(n) => format!(
                "error: {}: {n} rows, the backup recorded {}",
                t.table, t.recorded
            ),
            None => format!(
                "error: {}: missing, the backup recorded {} rows",
                t.table, t.recorded
            ),
        })
        .collect();
    ctx.out.outcome(&doc, &problems, || {
        let counts = format!(
            "{} of {} match the counts recorded at backup ({} rows)",
            ui::count((restored.tables.len() - bad.len()) as u64, "table"),
            restored.tables.len(),
            restored.rows
        );
        match &restored.target {
            None => format!(
                "snapshot {short} is readable and complete: {counts}; nothing was restored\n"
            ),
            Some(t) => format!(
                "restored snapshot {short} into {t}{} in {secs:.1}s: {counts}\n",
                if restored.replaced {
                    ", replacing the database that was there"
                } else {
                    ""
                }
            ),
        }
    })?;
    Ok(if ok { exit::SUCCESS } else { exit::FAILURE })
}
