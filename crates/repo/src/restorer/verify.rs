//! `restore --verify`: every restored file read back and compared with
//! the snapshot, chunk by chunk, by content id.

use super::*;

/// Reads back every file that a restore of `snapshot` with `opts` (its
/// includes and excludes) wrote into `target`, and compares each with the
/// snapshot: the same chunks, by content id, and the same size. Returns how
/// many matched and a problem for each that did not.
pub fn verify(
    repo: &IndexedRepository,
    snapshot: &Snapshot,
    target: &Path,
    opts: &RestoreOptions,
) -> Result<(u64, Vec<RestoreProblem>)> {
    let sel = Selection::new(opts)?;
    Ok(verify_selection(
        repo,
        snapshot,
        target,
        &sel,
        BATCH_ENTRIES,
        &Default::default(),
    ))
}

pub(super) fn verify_selection(
    repo: &IndexedRepository,
    snapshot: &Snapshot,
    target: &Path,
    sel: &Selection,
    batch: usize,
    skip: &std::collections::HashSet<PathBuf>,
) -> (u64, Vec<RestoreProblem>) {
    let mut verified = 0;
    let mut problems = vec![];
    let mut pass = Planner::new(repo, &snapshot.tree, sel, &mut problems);
    while !pass.is_done() {
        let entries = pass.next_batch(batch, &mut problems);
        let (n, p) = verify_batch(repo, target, &entries, skip);
        verified += n;
        problems.extend(p);
    }
    (verified, problems)
}

/// Reads the restored files of `entries` back on every core (those in
/// `skip`, already reported damaged, are not).
pub(super) fn verify_batch(
    repo: &IndexedRepository,
    target: &Path,
    entries: &[Entry],
    skip: &std::collections::HashSet<PathBuf>,
) -> (u64, Vec<RestoreProblem>) {
    let chunker = crate::chunker::Chunker::new(repo.config().chunker, repo.key().chunker_seed());
    let files: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.node.kind == NodeKind::File && !skip.contains(&e.rel))
        .collect();
    let next = AtomicU64::new(0);
    let verified = AtomicU64::new(0);
    let problems = Mutex::new(vec![]);
    std::thread::scope(|s| {
        for _ in 0..crate::cores() {
            s.spawn(|| {
                let mut buf = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(e) = files.get(i) else { break };
                    let path = target.join(&e.rel);
                    let mut ids = vec![];
                    let read = File::open(&path).and_then(|f| {
                        chunker.for_each_chunk::<_, std::io::Error>(f, &mut buf, |c| {
                            ids.push(repo.key().blob_id(c));
                            Ok(())
                        })
                    });
                    let message = match read {
                        Err(err) => Some(format!("verify: cannot read it back: {err}")),
                        Ok(n) if n != e.node.size => Some(format!(
                            "verify: {n} bytes on disk, {} in the snapshot",
                            e.node.size
                        )),
                        Ok(_) if ids != e.node.content => {
                            Some("verify: content differs from the snapshot".into())
                        }
                        Ok(_) => None,
                    };
                    match message {
                        Some(message) => problems.lock().push(RestoreProblem {
                            path: e.rel.clone(),
                            message,
                        }),
                        None => {
                            verified.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    (verified.into_inner(), problems.into_inner())
}
