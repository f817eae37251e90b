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
    let opts = RestoreOptions {
        includes: a.includes.clone(),
        excludes: a.excludes.clone(),
        overwrite: a.overwrite,
        dry_run: a.dry_run,
        verify: a.verify,
    };
    let bar = ctx.out.bar("restore");
    let start = std::time::Instant::now();
    let summary = restorer::restore(&repo, &snap, &a.target, &opts, &bar)?;
    drop(bar);
    let secs = start.elapsed().as_secs_f64();
    let doc = json!({ "snapshot_id": id, "target": a.target, "duration_seconds": secs, "summary": summary });
    let problems = ui::listed(
        summary
            .problems
            .iter()
            // Under the target, so the target itself is never an empty name.
            .map(|p| format!("error: {}: {}", a.target.join(&p.path).display(), p.message))
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
                a.target.display(),
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
            a.target.display(),
        )
    })?;
    Ok(if summary.problems.is_empty() {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}
