//! `snapshots`, `ls`, `diff`, `dump`: reading what a repository holds.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use lifeboat_repo::diff::{self, DiffEntry};
use lifeboat_repo::restorer;
use lifeboat_repo::tree::{Node, NodeKind};
use serde::Serialize;
use serde_json::json;

use crate::args::{DiffArgs, DumpArgs, LsArgs, SnapshotsArgs};
use crate::cmd::Ctx;
use crate::{exit, ui};

pub fn snapshots(ctx: &Ctx, a: SnapshotsArgs) -> Result<u8> {
    let repo = ctx.open()?;
    let (all, bad) = repo.snapshots()?;
    for e in &bad {
        tracing::warn!("{e}");
    }
    let list: Vec<_> = all
        .into_iter()
        .filter(|(_, s)| a.host.as_ref().is_none_or(|h| &s.hostname == h))
        .filter(|(_, s)| a.tag.as_ref().is_none_or(|t| s.has_tag(t)))
        .collect();
    let docs: Vec<_> = list
        .iter()
        .map(|(id, s)| json!({ "id": id, "short_id": id.short(), "snapshot": s }))
        .collect();
    ctx.out.print(&docs, || {
        let mut t = format!(
            "{:<9} {:<19} {:<16} {:<16} {:>10}  {}\n",
            "ID", "TIME", "HOST", "TAGS", "SIZE", "PATHS"
        );
        for (id, s) in &list {
            let size = s
                .summary
                .as_ref()
                .map(|x| ui::bytes(x.bytes_total))
                .unwrap_or_default();
            t += &format!(
                "{:<9} {:<19} {:<16} {:<16} {:>10}  {}\n",
                id.short(),
                ui::local_time(s.time),
                s.hostname,
                s.tags.join(","),
                size,
                s.paths.join(" ")
            );
        }
        t += &format!("{} snapshot(s)\n", list.len());
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
    mtime: String,
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
        link_target: n.link_target.as_ref().map(|t| t.display()),
    }
}

pub fn ls(ctx: &Ctx, a: LsArgs) -> Result<u8> {
    let repo = ctx.open_indexed()?;
    let (sid, snap) = repo.find_snapshot(&a.snapshot)?;
    let mut entries = vec![];
    match a
        .path
        .as_deref()
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
    {
        None => diff::walk(&repo, &snap.tree, Path::new(""), &mut |p, n| {
            entries.push(ls_entry(p, n))
        })?,
        Some(p) => {
            let node = restorer::find_node(&repo, &snap, &sid.short(), p)?;
            entries.push(ls_entry(Path::new(p), &node));
            if let Some(st) = node.subtree {
                diff::walk(&repo, &st, Path::new(p), &mut |p, n| {
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
                    e.mtime,
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
    let (ia, sa) = repo.find_snapshot(&a.first)?;
    let (ib, sb) = repo.find_snapshot(&a.second)?;
    let changes: Vec<DiffEntry> = diff::diff(&repo, &sa.tree, &sb.tree)?;
    let doc = json!({ "first": ia, "second": ib, "changes": changes });
    ctx.out.print(&doc, || {
        let mut t = format!("comparing snapshot {} to {}:\n", ia.short(), ib.short());
        for c in &changes {
            t += &format!("{}    /{}\n", c.change.marker(), c.path.display());
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
    let (sid, snap) = repo.find_snapshot(&a.snapshot)?;
    let node = restorer::find_node(&repo, &snap, &sid.short(), &a.path)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    restorer::dump(&repo, &node, &mut out)?;
    out.flush()?;
    Ok(exit::SUCCESS)
}
