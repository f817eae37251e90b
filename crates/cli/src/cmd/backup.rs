//! `lifeboat backup`.

use anyhow::Result;
use lifeboat_repo::archiver::{self, BackupOptions, BackupSource, Warning};
use serde::Serialize;

use crate::args::BackupArgs;
use crate::cmd::Ctx;
use crate::{exit, ui};

/// The backup summary, as `--json` prints it.
#[derive(Serialize)]
struct BackupJson<'a> {
    snapshot_id: String,
    short_id: String,
    parent: Option<String>,
    files_new: u64,
    files_changed: u64,
    files_unmodified: u64,
    dirs: u64,
    bytes_read: u64,
    bytes_total: u64,
    bytes_added: u64,
    bytes_stored: u64,
    data_blobs: u64,
    tree_blobs: u64,
    duration_seconds: f64,
    warnings: &'a [Warning],
}

pub fn run(ctx: &Ctx, a: BackupArgs) -> Result<u8> {
    let mut repo = ctx.open_indexed()?;
    let mut excludes = a.excludes.clone();
    for f in &a.exclude_files {
        excludes.extend(archiver::read_exclude_file(f)?);
    }
    let parent = match &a.parent {
        Some(p) => Some(repo.find_snapshot(p, &Default::default())?.0),
        None => None,
    };
    let opts = BackupOptions {
        host: a.host.clone(),
        // `--tag a,b` adds two tags, as `--tag a --tag b`.
        tags: a
            .tags
            .iter()
            .flat_map(|t| t.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect(),
        excludes,
        parent,
        no_parent: a.force,
        source_meta: None,
        with_atime: a.with_atime,
    };
    let source = if a.stdin {
        BackupSource::Stream {
            name: a.stdin_name.clone(),
            reader: Box::new(std::io::stdin()),
        }
    } else {
        BackupSource::Paths(a.paths.clone())
    };
    let bar = ctx.out.bar("backup");
    let outcome = archiver::backup(&mut repo, source, &opts, &bar)?;
    drop(bar);
    let s = outcome.snapshot.summary.clone().unwrap_or_default();
    let doc = BackupJson {
        snapshot_id: outcome.id.to_hex(),
        short_id: outcome.id.short(),
        parent: outcome.snapshot.parent.map(|p| p.to_hex()),
        files_new: s.files_new,
        files_changed: s.files_changed,
        files_unmodified: s.files_unmodified,
        dirs: s.dirs,
        bytes_read: s.bytes_read,
        bytes_total: s.bytes_total,
        bytes_added: s.bytes_added,
        bytes_stored: s.bytes_stored,
        data_blobs: s.data_blobs,
        tree_blobs: s.tree_blobs,
        duration_seconds: s.duration_seconds,
        warnings: &outcome.warnings,
    };
    let problems = ui::listed(
        outcome
            .warnings
            .iter()
            .map(|w| format!("warning: {}: {}", w.path.display(), w.message))
            .collect(),
        |n| {
            format!("{n} entries could not be backed up whole (listed above); the snapshot was saved without what is missing")
        },
    );
    ctx.out.outcome(&doc, &problems, || {
        let mut t = String::new();
        let rate = s.bytes_read as f64 / s.duration_seconds.max(1e-3);
        t += &format!(
            "Files:     {} new, {} changed, {} unmodified\nDirs:      {}\nAdded:     {} ({} stored)\nProcessed: {} in {:.1}s, read {} ({}/s)\nsnapshot {} saved\n",
            s.files_new,
            s.files_changed,
            s.files_unmodified,
            s.dirs,
            ui::bytes(s.bytes_added),
            ui::bytes(s.bytes_stored),
            ui::bytes(s.bytes_total),
            s.duration_seconds,
            ui::bytes(s.bytes_read),
            ui::bytes(rate as u64),
            outcome.id.short()
        );
        t
    })?;
    Ok(if outcome.warnings.is_empty() {
        exit::SUCCESS
    } else {
        exit::PARTIAL
    })
}
