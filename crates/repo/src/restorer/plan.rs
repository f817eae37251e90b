//! Planning a restore: which entries (includes, excludes, safe names), in
//! pre-order a batch at a time, and what a restore would write and find in
//! its way.

use super::*;

/// Which entries a restore takes: those the includes select (all, when
/// there are none) that no exclude matches.
pub(super) struct Selection {
    pub(super) inc: Option<Patterns>,
    pub(super) exc: Option<Patterns>,
}

impl Selection {
    pub(super) fn new(opts: &RestoreOptions) -> Result<Selection> {
        let set = |p: &[String], what| -> Result<Option<Patterns>> {
            if p.is_empty() {
                Ok(None)
            } else {
                Patterns::new(p, what).map(Some)
            }
        };
        Ok(Selection {
            inc: set(&opts.includes, "include")?,
            exc: set(&opts.excludes, "exclude")?,
        })
    }
}

/// Plans a restore a batch at a time: the snapshot's entries in pre-order,
/// unsafe names refused, only what the include patterns select (and the
/// directories above it). Trees are loaded as the walk reaches them, so
/// memory holds the directories on the current path, not the snapshot.
pub(super) struct Planner<'r> {
    pub(super) repo: &'r IndexedRepository,
    pub(super) sel: &'r Selection,
    pub(super) stack: Vec<Level>,
}

/// A directory the planner is inside.
pub(super) struct Level {
    pub(super) rel: PathBuf,
    pub(super) nodes: std::vec::IntoIter<Node>,
    /// Selected itself (so everything below is).
    pub(super) included: bool,
    /// Its own entry, until something inside it is selected (a directory
    /// that is not selected and has nothing selected inside is left out).
    pub(super) held: Option<Entry>,
}

impl<'r> Planner<'r> {
    pub(super) fn new(
        repo: &'r IndexedRepository,
        root: &Id,
        sel: &'r Selection,
        problems: &mut Vec<RestoreProblem>,
    ) -> Planner<'r> {
        let mut p = Planner {
            repo,
            sel,
            stack: vec![],
        };
        p.enter(PathBuf::new(), root, false, None, problems);
        p
    }

    /// Whether every entry has been planned.
    pub(super) fn is_done(&self) -> bool {
        self.stack.is_empty()
    }

    pub(super) fn enter(
        &mut self,
        rel: PathBuf,
        tree: &Id,
        included: bool,
        held: Option<Entry>,
        problems: &mut Vec<RestoreProblem>,
    ) {
        let nodes = match self.repo.load_tree(tree) {
            Ok(t) => t.nodes,
            Err(e) => {
                problems.push(RestoreProblem {
                    path: rel.clone(),
                    message: format!("directory contents lost: {e}"),
                });
                vec![]
            }
        };
        self.stack.push(Level {
            rel,
            nodes: nodes.into_iter(),
            included,
            held,
        });
    }

    /// Up to `max` more entries (fewer only at the end).
    pub(super) fn next_batch(
        &mut self,
        max: usize,
        problems: &mut Vec<RestoreProblem>,
    ) -> Vec<Entry> {
        let mut out = vec![];
        while out.len() < max {
            let Some(level) = self.stack.last_mut() else {
                break;
            };
            let Some(node) = level.nodes.next() else {
                self.stack.pop();
                continue;
            };
            if !node.name.is_safe() {
                problems.push(RestoreProblem {
                    path: level.rel.join(node.name.display()),
                    message: format!(
                        "refused unsafe name {:?} in the snapshot",
                        node.name.display()
                    ),
                });
                continue;
            }
            let rel = level.rel.join(node.name.as_os_str());
            let abs = Path::new("/").join(&rel);
            let is_dir = node.kind == NodeKind::Dir;
            if self
                .sel
                .exc
                .as_ref()
                .is_some_and(|x| x.matches(&abs, is_dir))
            {
                continue;
            }
            let selected = level.included
                || self
                    .sel
                    .inc
                    .as_ref()
                    .is_none_or(|g| g.matches(&abs, is_dir));
            if node.kind == NodeKind::Dir {
                let subtree = node.subtree;
                let entry = Entry {
                    rel: rel.clone(),
                    node,
                };
                let held = if selected {
                    self.release_held(&mut out);
                    out.push(entry);
                    None
                } else {
                    Some(entry)
                };
                // Without a subtree, an unselected directory is left out.
                if let Some(st) = subtree {
                    self.enter(rel, &st, selected, held, problems);
                }
            } else if selected {
                self.release_held(&mut out);
                out.push(Entry { rel, node });
            }
        }
        // Leave no finished directory behind, so `is_done` is exact.
        while self.stack.last().is_some_and(|l| l.nodes.len() == 0) {
            self.stack.pop();
        }
        out
    }

    /// Plans the held directories above a selected entry, outermost first.
    pub(super) fn release_held(&mut self, out: &mut Vec<Entry>) {
        for level in &mut self.stack {
            if let Some(e) = level.held.take() {
                out.push(e);
            }
        }
    }
}

/// The size of a restore and what is in its way.
#[derive(Default)]
pub(super) struct Survey {
    pub(super) bytes: u64,
    pub(super) files: u64,
    pub(super) dirs: u64,
    pub(super) symlinks: u64,
    pub(super) specials: u64,
    /// The first path in the way (the one reported), and how many are.
    pub(super) first_conflict: Option<String>,
    pub(super) conflict_count: usize,
}

impl Survey {
    pub(super) fn add(&mut self, entries: &[Entry], target: &Path, fresh: bool) {
        for e in entries {
            match e.node.kind {
                NodeKind::File => {
                    self.files += 1;
                    self.bytes += e.node.size;
                }
                NodeKind::Dir => self.dirs += 1,
                NodeKind::Symlink => self.symlinks += 1,
                _ => self.specials += 1,
            }
            if fresh {
                continue;
            }
            if let Ok(m) = fs::symlink_metadata(target.join(&e.rel)) {
                if !(e.node.kind == NodeKind::Dir && m.file_type().is_dir()) {
                    self.conflict_count += 1;
                    self.first_conflict
                        .get_or_insert_with(|| e.rel.display().to_string());
                }
            }
        }
    }
}
