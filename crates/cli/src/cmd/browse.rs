//! `snapshots`, `ls`, `diff`, `dump`: reading what a repository holds.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use lifeboat_repo::browse;
use lifeboat_repo::diff::{self, DiffEntry};
use lifeboat_repo::snapshot::{GroupBy, GroupKey};
use lifeboat_repo::tar_dump;
use lifeboat_repo::tree::{Node, NodeKind};
use lifeboat_repo::{Id, Snapshot};
use serde::Serialize;
use serde_json::json;

use crate::args::{DiffArgs, DumpArgs, LsArgs, SnapshotsArgs};
use crate::cmd::Ctx;
use crate::{exit, ui};

/// The key `snapshots --group-by` groups on: the chosen fields' values.
pub fn snapshots(ctx: &Ctx, a: SnapshotsArgs) -> Result<u8> {
    let group_by =
        GroupBy::parse(&a.group_by).map_err(|e| crate::UsageError(format!("--group-by: {e}")))?;
    let repo = ctx.open()?;
    let (all, bad) = repo.snapshots()?;
    for e in &bad {
        tracing::warn!("{e}");
    }
    let filter = a.filter.filter();
    let mut groups: std::collections::BTreeMap<GroupKey, Vec<(Id, Snapshot)>> = Default::default();
    for (id, s) in all.into_iter().filter(|(_, s)| filter.matches(s)) {
        groups.entry(group_by.key(&s)).or_default().push((id, s));
    }
    if let Some(n) = a.latest {
        for list in groups.values_mut() {
            let skip = list.len().saturating_sub(n);
            list.drain(..skip);
        }
    }
    let entry =
        |(id, s): &(Id, Snapshot)| json!({ "id": id, "short_id": id.short(), "snapshot": s });
    let docs = if group_by.is_none() {
        json!(groups.values().flatten().map(entry).collect::<Vec<_>>())
    } else {
        json!(groups
            .iter()
            .map(|(k, list)| json!({ "group_key": k, "snapshots": list.iter().map(entry).collect::<Vec<_>>() }))
            .collect::<Vec<_>>())
    };
    ctx.out.print(&docs, || {
        let mut t = String::new();
        let mut total = 0;
        for (key, list) in &groups {
            if !group_by.is_none() {
                t += &format!("{}group {}:\n", if t.is_empty() { "" } else { "\n" }, key);
            }
            let rows: Vec<[String; 7]> = list
                .iter()
                .map(|(id, s)| {
                    [
                        id.short(),
                        ui::local_time(s.time),
                        s.hostname.clone(),
                        s.tags.join(","),
                        s.summary
                            .as_ref()
                            .map(|x| ui::bytes(x.bytes_total))
                            .unwrap_or_default(),
                        lifeboat_sources::describe(s),
                        s.paths.join(" "),
                    ]
                })
                .collect();
            t += &ui::table(
                ["ID", "TIME", "HOST", "TAGS", "SIZE", "SOURCE", "PATHS"],
                &rows,
                &[4],
            );
            total += list.len();
        }
        t += &format!("{total} snapshot{}\n", if total == 1 { "" } else { "s" });
        t
    })?;
    Ok(if bad.is_empty() {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}

#[derive(Serialize)]
struct LsEntry {
    path: PathBuf,
    #[serde(rename = "type")]
    kind: NodeKind,
    mode: u32,
    size: u64,
    /// RFC 3339, UTC, nanoseconds.
    mtime: String,
    /// For `ls -l`: local time with its offset, as `snapshots` shows.
    #[serde(skip)]
    mtime_local: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_target: Option<String>,
}

fn ls_entry(path: &Path, n: &Node) -> LsEntry {
    LsEntry {
        path: Path::new("/").join(path),
        kind: n.kind,
        mode: n.mode,
        size: n.size,
        mtime: jiff::Timestamp::from_nanosecond(i128::from(n.mtime_ns))
            .map(|t| t.to_string())
            .unwrap_or_default(),
        mtime_local: jiff::Timestamp::from_nanosecond(i128::from(n.mtime_ns))
            .map(ui::local_time)
            .unwrap_or_default(),
        link_target: n.link_target.as_ref().map(|t| t.display()),
    }
}

pub fn ls(ctx: &Ctx, a: LsArgs) -> Result<u8> {
    let repo = ctx.open_indexed()?;
    let (sid, snap) = repo.find_snapshot(&a.snapshot, &a.filter.filter())?;
    let mut entries = vec![];
    match a
        .path
        .as_deref()
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
    {
        None => browse::walk(&repo, &snap.tree, Path::new(""), &mut |p, n| {
            entries.push(ls_entry(p, n))
        })?,
        Some(p) => {
            let node = browse::find_node(&repo, &snap, &sid.short(), p)?;
            entries.push(ls_entry(Path::new(p), &node));
            if let Some(st) = node.subtree {
                browse::walk(&repo, &st, Path::new(p), &mut |p, n| {
                    entries.push(ls_entry(p, n))
                })?;
            }
        }
    }
    ctx.out.print(&entries, || {
        let mut t = String::new();
        for e in &entries {
            if a.long {
                let kind = match e.kind {
                    NodeKind::Dir => 'd',
                    NodeKind::Symlink => 'l',
                    NodeKind::File => '-',
                    NodeKind::Fifo => 'p',
                    NodeKind::Socket => 's',
                    NodeKind::CharDevice => 'c',
                    NodeKind::BlockDevice => 'b',
                };
                let link = e
                    .link_target
                    .as_ref()
                    .map(|l| format!(" -> {l}"))
                    .unwrap_or_default();
                t += &format!(
                    "{kind}{:04o} {:>12} {} {}{link}\n",
                    e.mode,
                    e.size,
                    e.mtime_local,
                    e.path.display()
                );
            } else {
                t += &format!("{}\n", e.path.display());
            }
        }
        t
    })?;
    Ok(exit::SUCCESS)
}

pub fn diff(ctx: &Ctx, a: DiffArgs) -> Result<u8> {
    let repo = ctx.open_indexed()?;
    let filter = a.filter.filter();
    let (ia, sa) = repo.find_snapshot(&a.first, &filter)?;
    let (ib, sb) = repo.find_snapshot(&a.second, &filter)?;
    let changes: Vec<DiffEntry> = diff::diff(&repo, &sa.tree, &sb.tree)?;
    let doc = json!({ "first": ia, "second": ib, "changes": changes });
    ctx.out.print(&doc, || {
        let mut t = format!("comparing snapshot {} to {}:\n", ia.short(), ib.short());
        for c in &changes {
            t += &format!("{}    {}\n", c.change.marker(), c.path.display());
        }
        let count = |m| changes.iter().filter(|c| c.change.marker() == m).count();
        t += &format!(
            "\n{} added, {} removed, {} modified, {} metadata only\n",
            count('+'),
            count('-'),
            count('M'),
            count('U')
        );
        t
    })?;
    Ok(exit::SUCCESS)
}

pub fn dump(ctx: &Ctx, a: DumpArgs) -> Result<u8> {
    if ctx.out.json {
        // The file's bytes are the output; wrapping them in JSON would corrupt them.
        return Err(crate::UsageError("dump writes the file's raw bytes to stdout; --json does not apply (use `ls --json` for metadata)".into()).into());
    }
    let repo = ctx.open_indexed()?;
    let (sid, snap) = repo.find_snapshot(&a.snapshot, &a.filter.filter())?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    if a.path.trim_matches('/').is_empty() {
        tar_dump::dump_tar_tree(&repo, &snap.tree, &mut out)?;
    } else {
        let node = browse::find_node(&repo, &snap, &sid.short(), &a.path)?;
        if node.kind == NodeKind::Dir || a.archive.is_some() {
            let path = Path::new("/").join(a.path.trim_start_matches('/'));
            tar_dump::dump_tar(&repo, &path, &node, &mut out)?;
        } else {
            browse::dump(&repo, &node, &mut out)?;
        }
    }
    out.flush()?;
    Ok(exit::SUCCESS)
}

/// The snapshots a command names, or else every one the filter admits
/// (oldest first). A damaged snapshot object is an error when none is named.
fn chosen_snapshots(
    repo: &lifeboat_repo::Repository,
    named: &[String],
    filter: &lifeboat_repo::SnapshotFilter,
) -> Result<Vec<(Id, Snapshot)>> {
    if named.is_empty() {
        let (all, bad) = repo.snapshots()?;
        if let Some(e) = bad.into_iter().next() {
            return Err(e.into());
        }
        return Ok(all.into_iter().filter(|(_, s)| filter.matches(s)).collect());
    }
    named
        .iter()
        .map(|n| Ok(repo.find_snapshot(n, filter)?))
        .collect()
}

pub fn find(ctx: &Ctx, a: crate::args::FindArgs) -> Result<u8> {
    let patterns = lifeboat_repo::pattern::Patterns::new(&a.patterns, "find")?;
    let repo = ctx.open_indexed()?;
    let mut snaps = chosen_snapshots(&repo, &a.snapshots, &a.filter.filter())?;
    snaps.reverse();
    let found = browse::find(&repo, &snaps, &patterns)?;
    ctx.out.print(&found, || {
        let mut t = String::new();
        let mut last = None;
        for f in &found {
            if last != Some(f.snapshot) {
                let when = snaps
                    .iter()
                    .find(|(id, _)| *id == f.snapshot)
                    .map(|(_, s)| ui::local_time(s.time))
                    .unwrap_or_default();
                t += &format!("snapshot {} of {when}:\n", f.snapshot.short());
                last = Some(f.snapshot);
            }
            let mtime = jiff::Timestamp::from_nanosecond(i128::from(f.mtime_ns))
                .map(ui::local_time)
                .unwrap_or_default();
            t += &format!("  {:>12} {mtime} {}\n", f.size, f.path.display());
        }
        t + &format!(
            "{} in {}\n",
            ui::count(found.len() as u64, "match"),
            ui::count(snaps.len() as u64, "snapshot")
        )
    })?;
    Ok(exit::SUCCESS)
}

pub fn stats(ctx: &Ctx, a: crate::args::StatsArgs) -> Result<u8> {
    let repo = ctx.open_indexed()?;
    let snaps = chosen_snapshots(&repo, &a.snapshots, &a.filter.filter())?;
    let st = lifeboat_repo::stats::stats(&repo, &snaps)?;
    let stored_total: u64 = repo.index().packs().iter().map(|p| p.size).sum();
    let doc = json!({ "snapshots": st, "repository": {
        "packs": repo.index().packs().len(),
        "blobs": repo.index().blob_count(),
        "pack_bytes": stored_total,
    }});
    ctx.out.print(&doc, || {
        format!(
            "{}: {} files, restore size {}\n\
             raw data: {} in {}, {} of it file content (deduplication {:.2}x)\n\
             stored:   {} (compression {:.2}x)\n\
             repository: {} in {}\n",
            ui::count(st.snapshots as u64, "snapshot"),
            st.files,
            ui::bytes(st.restore_bytes),
            ui::bytes(st.raw_bytes),
            ui::count(st.blobs, "blob"),
            ui::bytes(st.data_bytes),
            st.dedup_ratio,
            ui::bytes(st.stored_bytes),
            st.compression_ratio,
            ui::bytes(stored_total),
            ui::count(repo.index().packs().len() as u64, "pack"),
        )
    })?;
    Ok(exit::SUCCESS)
}
