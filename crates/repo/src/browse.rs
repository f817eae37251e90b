//! Browsing snapshots without restoring them: walking a tree (`ls`,
//! `diff`, `stats`), finding one path (`ls PATH`, `dump`, `restore
//! SNAPSHOT:/dir`), writing one file's content (`dump`), and finding
//! entries by pattern across snapshots (`find`). Every read verifies what
//! it reads, as a restore does.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::id::Id;
use crate::pattern::Patterns;
use crate::repository::IndexedRepository;
use crate::snapshot::Snapshot;
use crate::tree::{Node, NodeKind};

/// Calls `f` for every entry below `tree`, in pre-order, with its path
/// relative to the snapshot root.
pub fn walk(
    repo: &IndexedRepository,
    tree: &Id,
    prefix: &Path,
    f: &mut dyn FnMut(&Path, &Node),
) -> Result<()> {
    let t = repo.load_tree(tree)?;
    for n in &t.nodes {
        let p = prefix.join(n.name.as_os_str());
        f(&p, n);
        if let (NodeKind::Dir, Some(st)) = (n.kind, n.subtree) {
            walk(repo, &st, &p, f)?;
        }
    }
    Ok(())
}

/// Finds the node at `path` (`a/b/c`, relative to the snapshot root).
pub fn find_node(
    repo: &IndexedRepository,
    snapshot: &Snapshot,
    snap_name: &str,
    path: &str,
) -> Result<Node> {
    let not_found = || RepoError::PathNotFound {
        path: path.to_string(),
        snapshot: snap_name.to_string(),
    };
    let mut tree = repo.load_tree(&snapshot.tree)?;
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() {
        return Err(not_found());
    }
    for (i, part) in parts.iter().enumerate() {
        let node = tree.find(part.as_bytes()).cloned().ok_or_else(not_found)?;
        if i + 1 == parts.len() {
            return Ok(node);
        }
        tree = repo.load_tree(&node.subtree.ok_or_else(not_found)?)?;
    }
    Err(not_found())
}

/// Writes the content of a file node to `out`, verifying every blob.
pub fn dump(repo: &IndexedRepository, node: &Node, out: &mut dyn Write) -> Result<u64> {
    if node.kind != NodeKind::File {
        return Err(RepoError::Usage(format!(
            "{:?} is not a file",
            node.name.display()
        )));
    }
    let mut n = 0;
    for id in &node.content {
        let b = repo.read_blob(id)?;
        out.write_all(&b)
            .map_err(|e| RepoError::io("write", "<stdout>", e))?;
        n += b.len() as u64;
    }
    out.flush()
        .map_err(|e| RepoError::io("write", "<stdout>", e))?;
    Ok(n)
}

/// One entry `find` found.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// The snapshot holding it.
    pub snapshot: Id,
    /// Its absolute path in the snapshot.
    pub path: PathBuf,
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// Its size (files).
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
}

/// Every entry of `snapshots` that `patterns` match (the entry itself, as
/// `ls` would show it), snapshot by snapshot in the order given.
pub fn find(
    repo: &IndexedRepository,
    snapshots: &[(Id, Snapshot)],
    patterns: &Patterns,
) -> Result<Vec<Found>> {
    let mut out = vec![];
    for (id, s) in snapshots {
        walk(repo, &s.tree, Path::new("/"), &mut |p, n| {
            if patterns.matches(p, n.kind == NodeKind::Dir) {
                out.push(Found {
                    snapshot: *id,
                    path: p.to_path_buf(),
                    kind: n.kind,
                    size: n.size,
                    mtime_ns: n.mtime_ns,
                });
            }
        })?;
    }
    Ok(out)
}
