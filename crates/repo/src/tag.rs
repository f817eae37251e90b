//! Changing a snapshot's tags. Snapshots are immutable and named by
//! content, so a change writes a new snapshot (with `original` naming the
//! one it was rewritten from) and then deletes the old: a crash in between leaves
//! both, never neither.

use serde::Serialize;

use crate::error::Result;
use crate::id::Id;
use crate::repository::Repository;
use crate::snapshot::Snapshot;

/// What to do to the tags.
#[derive(Debug, Clone, Default)]
pub struct TagChange {
    /// Replace all tags with these (applied first).
    pub set: Option<Vec<String>>,
    /// Tags to add.
    pub add: Vec<String>,
    /// Tags to remove.
    pub remove: Vec<String>,
}

impl TagChange {
    /// The tags after the change, in their first-seen order, without
    /// duplicates.
    pub fn apply(&self, tags: &[String]) -> Vec<String> {
        let mut out: Vec<String> = vec![];
        let base = self.set.as_deref().unwrap_or(tags);
        for t in base.iter().chain(&self.add) {
            if !out.contains(t) && !self.remove.contains(t) {
                out.push(t.clone());
            }
        }
        out
    }
}

/// One snapshot whose tags changed.
#[derive(Debug, Clone, Serialize)]
pub struct Retagged {
    /// The snapshot as it was (now deleted).
    pub old: Id,
    /// The snapshot with the new tags.
    pub new: Id,
    /// Its tags.
    pub tags: Vec<String>,
}

/// Applies `change` to each snapshot; snapshots whose tags stay the same
/// are left alone. Returns those that changed.
pub fn retag(
    repo: &Repository,
    snapshots: &[(Id, Snapshot)],
    change: &TagChange,
) -> Result<Vec<Retagged>> {
    let mut out = vec![];
    for (id, s) in snapshots {
        let tags = change.apply(&s.tags);
        if tags == s.tags {
            continue;
        }
        let mut new = s.clone();
        new.tags = tags.clone();
        new.original = Some(*id);
        let new_id = repo.save_snapshot(&new)?;
        repo.delete_snapshot(id)?;
        out.push(Retagged {
            old: *id,
            new: new_id,
            tags,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn set_then_add_then_remove() {
        let c = TagChange {
            set: Some(v(&["a", "b"])),
            add: v(&["c", "a"]),
            remove: v(&["b"]),
        };
        assert_eq!(c.apply(&v(&["x"])), v(&["a", "c"]));
        let keep = TagChange::default();
        assert_eq!(keep.apply(&v(&["x", "y"])), v(&["x", "y"]));
    }

    proptest! {
        #[test]
        fn added_tags_are_present_removed_ones_absent(
            tags in proptest::collection::vec("[a-c]", 0..5),
            add in proptest::collection::vec("[a-d]", 0..3),
            remove in proptest::collection::vec("[a-d]", 0..3),
        ) {
            let c = TagChange { set: None, add: add.clone(), remove: remove.clone() };
            let out = c.apply(&tags);
            for t in &add {
                prop_assert_eq!(out.contains(t), !remove.contains(t));
            }
            for t in &remove {
                prop_assert!(!out.contains(t));
            }
            let distinct: std::collections::HashSet<&String> = out.iter().collect();
            prop_assert_eq!(out.len(), distinct.len());
        }
    }
}
