//! Comparing two snapshots (`diff`).
//!
//! `diff` walks both trees together and skips any subtree whose id is the
//! same on both sides: identical content has identical ids, so comparing two
//! large, mostly unchanged snapshots reads only the changed directories.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::browse::walk;
use crate::error::Result;
use crate::id::Id;
use crate::repository::IndexedRepository;
use crate::tree::{Node, NodeKind, Tree};

/// How an entry differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Only in the second snapshot.
    Added,
    /// Only in the first snapshot.
    Removed,
    /// Content (or type, or link target) differs.
    Modified,
    /// Only metadata (mode, owner, times) differs.
    Metadata,
}

impl Change {
    /// One-character marker: `+`, `-`, `M`, `U` (as restic prints).
    pub fn marker(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::Metadata => 'U',
        }
    }
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffEntry {
    /// Absolute path in the snapshot (`/var/lib/app/x`).
    pub path: PathBuf,
    /// What changed.
    pub change: Change,
}

/// The differences between the trees `a` and `b`.
pub fn diff(repo: &IndexedRepository, a: &Id, b: &Id) -> Result<Vec<DiffEntry>> {
    let mut out = vec![];
    diff_trees(repo, Some(a), Some(b), Path::new("/"), &mut out)?;
    Ok(out)
}

fn load(repo: &IndexedRepository, t: Option<&Id>) -> Result<Tree> {
    match t {
        Some(id) => repo.load_tree(id),
        None => Ok(Tree::default()),
    }
}

fn diff_trees(
    repo: &IndexedRepository,
    a: Option<&Id>,
    b: Option<&Id>,
    prefix: &Path,
    out: &mut Vec<DiffEntry>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let (ta, tb) = (load(repo, a)?, load(repo, b)?);
    let (mut i, mut j) = (0, 0);
    while i < ta.nodes.len() || j < tb.nodes.len() {
        let na = ta.nodes.get(i);
        let nb = tb.nodes.get(j);
        let order = match (na, nb) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                let n = na.expect("left side present");
                side(repo, n, prefix, Change::Removed, out)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                let n = nb.expect("right side present");
                side(repo, n, prefix, Change::Added, out)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (na.expect("left"), nb.expect("right"));
                let p = prefix.join(x.name.as_os_str());
                if x.kind != y.kind {
                    side(repo, x, prefix, Change::Removed, out)?;
                    side(repo, y, prefix, Change::Added, out)?;
                } else {
                    let content = x.content != y.content || x.link_target != y.link_target;
                    let meta = x.mode != y.mode
                        || x.uid != y.uid
                        || x.gid != y.gid
                        || x.mtime_ns != y.mtime_ns;
                    if x.kind != NodeKind::Dir && content {
                        out.push(DiffEntry {
                            path: p.clone(),
                            change: Change::Modified,
                        });
                    } else if meta && x.kind != NodeKind::Dir {
                        out.push(DiffEntry {
                            path: p.clone(),
                            change: Change::Metadata,
                        });
                    }
                    if x.kind == NodeKind::Dir {
                        diff_trees(repo, x.subtree.as_ref(), y.subtree.as_ref(), &p, out)?;
                    }
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

/// Reports `n` and everything below it as added or removed.
fn side(
    repo: &IndexedRepository,
    n: &Node,
    prefix: &Path,
    change: Change,
    out: &mut Vec<DiffEntry>,
) -> Result<()> {
    let p = prefix.join(n.name.as_os_str());
    out.push(DiffEntry {
        path: p.clone(),
        change,
    });
    if let (NodeKind::Dir, Some(st)) = (n.kind, n.subtree) {
        walk(repo, &st, &p, &mut |path, _| {
            out.push(DiffEntry {
                path: path.to_path_buf(),
                change,
            })
        })?;
    }
    Ok(())
}
