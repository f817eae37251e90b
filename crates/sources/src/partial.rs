//! Partial log pieces: the piece a stream is still receiving (a WAL
//! segment, a binary log) stored whenever it changed, under
//! `<name>-partial-<stamp>`, the newest replacing the older; when the
//! whole piece is stored under `<name>`, its partials go. A restore that
//! finds no whole piece reads the newest partial: it holds everything the
//! stream received.

use lifeboat_repo::Repository;

use crate::error::Result;

const MARK: &str = "-partial-";

/// The piece `name` that a partial object holds, if `object` is one.
pub fn base_of(object: &str) -> Option<&str> {
    object.rsplit_once(MARK).map(|(base, _)| base)
}

/// Every partial of the piece `name`, oldest first.
fn all(repo: &Repository, name: &str) -> Result<Vec<String>> {
    let prefix = format!("{name}{MARK}");
    Ok(repo
        .list_logs()?
        .into_iter()
        .map(|o| o.name)
        .filter(|n| n.starts_with(&prefix))
        .collect())
}

/// The newest partial of the piece `name`, if any.
pub fn newest(repo: &Repository, name: &str) -> Result<Option<String>> {
    Ok(all(repo, name)?.pop())
}

/// Stores `data` as the newest partial of `name` and drops the older ones.
pub fn put(repo: &Repository, name: &str, data: &[u8]) -> Result<()> {
    let older = all(repo, name)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    // Fixed width: names sort as their stamps do.
    repo.put_log(&format!("{name}{MARK}{nanos:024x}"), data)?;
    for o in older {
        // A leftover only costs space: the next put or the whole piece drops it.
        let _ = repo.delete_log(&o);
    }
    Ok(())
}

/// Drops every partial of `name` (its whole piece is stored).
pub fn supersede(repo: &Repository, name: &str) -> Result<()> {
    for p in all(repo, name)? {
        repo.delete_log(&p)?;
    }
    Ok(())
}

/// Drops the partials that are no longer the newest word on their piece —
/// those whose whole piece is stored, and all but the newest of the rest —
/// in a repository that received pieces by copy (where the source's own
/// `put` and `supersede` did not run); how many it dropped.
pub fn tidy(repo: &Repository) -> Result<usize> {
    let names: Vec<String> = repo.list_logs()?.into_iter().map(|o| o.name).collect();
    let whole: std::collections::HashSet<&str> = names
        .iter()
        .filter(|n| base_of(n).is_none())
        .map(String::as_str)
        .collect();
    let mut newest: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for n in &names {
        if let Some(base) = base_of(n) {
            let e = newest.entry(base).or_insert(n);
            if n.as_str() > *e {
                *e = n;
            }
        }
    }
    let mut dropped = 0;
    for n in &names {
        if let Some(base) = base_of(n) {
            if whole.contains(base) || newest.get(base) != Some(&n.as_str()) {
                repo.delete_log(n)?;
                dropped += 1;
            }
        }
    }
    Ok(dropped)
}
