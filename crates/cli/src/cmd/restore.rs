//! `lifeboat restore`.

use anyhow::Result;
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
        let node = restorer::find_node(&repo, &snap, &id.short(), p)?;
        snap.tree = node.subtree.ok_or_else(|| {
            crate::UsageError(format!(
                "{p:?} in snapshot {} is not a directory; restore it with --include {p}",
                id.short()
            ))
        })?;
    }
    let opts = RestoreOptions {
        includes: a.includes.clone(),
        overwrite: a.overwrite,
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
        format!(
            "restored snapshot {} to {}: {} files, {} dirs, {} symlinks, {} in {:.1}s\n",
            id.short(),
            a.target.display(),
            summary.files,
            summary.dirs,
            summary.symlinks,
            ui::bytes(summary.bytes),
            secs
        )
    })?;
    Ok(if summary.problems.is_empty() {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}
