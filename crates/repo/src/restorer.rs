//! Restore: a snapshot (or part of it) into a directory, and `dump` of one
//! file to a writer.
//!
//! Order of work: plan entries in pre-order (rejecting unsafe names), refuse
//! up front if files would be overwritten without `overwrite`; then, for
//! each batch of up to `BATCH_ENTRIES` (250 000) planned entries, create
//! directories, fill content pack by pack with several threads (each pack
//! read in few ranged reads, each blob verified: a file is created by the
//! first thread with bytes for it and finished — size, owner, mode, times,
//! through its descriptor — by the thread that writes its last byte), then
//! the files no thread finished (empty ones, damaged ones) and hard links.
//! At the end, symlinks, then directories' metadata (deepest first), then
//! make it all durable with `syncfs` before reporting success.
//!
//! Memory: one batch of planned entries (about 1 KiB each), plus the
//! directories, symlinks and hard-link groups of the whole snapshot. A
//! snapshot that fits one batch is planned once; a larger one is walked
//! twice (a first pass sizes it and looks for conflicts, keeping nothing).
//!
//! Safety: every name is checked (`FileName::is_safe`), so no path leaves
//! the target; files are created with `O_EXCL|O_NOFOLLOW` and directories are
//! checked not to be symlinks, so a link planted inside the target is never
//! followed. A damaged or missing blob does not stop the restore: the other
//! files are restored and every affected file is named.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

use parking_lot::Mutex;
use serde::Serialize;

use crate::blob;
use crate::error::{RepoError, Result};
use crate::file_sink::{AlignedBuf, FileSink};
use crate::id::Id;
use crate::metadata::{self, At};
use crate::pattern::Patterns;
use crate::progress::Progress;
use crate::repository::IndexedRepository;
use crate::snapshot::Snapshot;
use crate::tree::{Node, NodeKind};

/// Options of a restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Patterns ([`crate::pattern`]) on absolute paths in the snapshot
    /// (`/var/lib/app/uploads`, `*.conf`); an entry is restored when it or
    /// one of its parents matches. Empty: everything.
    pub includes: Vec<String>,
    /// Patterns of entries to leave out (with everything below them);
    /// they win over `includes`.
    pub excludes: Vec<String>,
    /// Replace existing files in the target.
    pub overwrite: bool,
    /// Plan only: count what would be restored and what is in the way;
    /// write nothing, not even the target directory.
    pub dry_run: bool,
    /// After writing, read every restored file back and compare its
    /// content with the snapshot (chunk by chunk, by content id).
    pub verify: bool,
}

/// One thing that went wrong in a restore.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RestoreProblem {
    /// The affected path, relative to the target.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// What a restore did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreSummary {
    /// Files restored (including hard links).
    pub files: u64,
    /// Directories restored.
    pub dirs: u64,
    /// Symlinks restored.
    pub symlinks: u64,
    /// FIFOs, sockets and devices restored.
    pub specials: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Files that could not be restored whole.
    pub problems: Vec<RestoreProblem>,
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    /// Entries already in the target that the restore replaces (with
    /// overwrite) or would refuse to replace.
    pub conflicts: usize,
    /// Files read back and found identical to the snapshot (verify).
    pub verified: u64,
}

struct Entry {
    rel: PathBuf,
    node: Node,
}

/// Which entries a restore takes: those the includes select (all, when
/// there are none) that no exclude matches.
struct Selection {
    inc: Option<Patterns>,
    exc: Option<Patterns>,
}

impl Selection {
    fn new(opts: &RestoreOptions) -> Result<Selection> {
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
struct Planner<'r> {
    repo: &'r IndexedRepository,
    sel: &'r Selection,
    stack: Vec<Level>,
}

/// A directory the planner is inside.
struct Level {
    rel: PathBuf,
    nodes: std::vec::IntoIter<Node>,
    /// Selected itself (so everything below is).
    included: bool,
    /// Its own entry, until something inside it is selected (a directory
    /// that is not selected and has nothing selected inside is left out).
    held: Option<Entry>,
}

impl<'r> Planner<'r> {
    fn new(
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
    fn is_done(&self) -> bool {
        self.stack.is_empty()
    }

    fn enter(
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
    fn next_batch(&mut self, max: usize, problems: &mut Vec<RestoreProblem>) -> Vec<Entry> {
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
    fn release_held(&mut self, out: &mut Vec<Entry>) {
        for level in &mut self.stack {
            if let Some(e) = level.held.take() {
                out.push(e);
            }
        }
    }
}

/// One place a blob's bytes go.
#[derive(Clone, Copy)]
struct Target {
    file: usize,
    offset: u64,
}

struct BlobJob {
    id: Id,
    offset: u32,
    length: u32,
    raw_length: u32,
    targets: Vec<Target>,
}

/// Entries planned and restored at a time. Memory holds one batch (about
/// 1 KiB per entry), plus, for the whole restore, the directories (their
/// metadata is set last), the symlinks (created last) and the first path of
/// each hard-link group.
const BATCH_ENTRIES: usize = 250_000;

/// Restores `snapshot` into `target`.
pub fn restore(
    repo: &IndexedRepository,
    snapshot: &Snapshot,
    target: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreSummary> {
    restore_in_batches(repo, snapshot, target, opts, progress, BATCH_ENTRIES)
}

/// Where and how a restore writes: what every batch needs.
struct Destination<'a> {
    repo: &'a IndexedRepository,
    target: &'a Path,
    opts: &'a RestoreOptions,
    /// The target was empty: nothing can be in the way.
    fresh: bool,
    progress: &'a dyn Progress,
}

/// What the whole restore keeps across batches.
#[derive(Default)]
struct Carried {
    /// Directories that could not be made: nothing below them is tried.
    failed_dirs: Vec<PathBuf>,
    /// Directories made, in pre-order, for their metadata at the end.
    dirs: Vec<Entry>,
    /// Symlinks, created at the very end: no symlink from the snapshot
    /// exists while anything is created below it.
    symlinks: Vec<Entry>,
    /// FIFOs, sockets and devices, made with the symlinks at the end.
    specials: Vec<Entry>,
    /// The first file of each hard-link group: its path and whether it was
    /// restored (`None` until its batch's content is written).
    first_of_link: HashMap<(u64, u64), (PathBuf, Option<bool>)>,
}

impl Carried {
    fn under_failed(&self, rel: &Path) -> bool {
        self.failed_dirs.iter().any(|d| rel.starts_with(d))
    }
}

/// [`restore`], planning and restoring `batch` entries at a time (tests use
/// small batches to cover restores larger than one).
#[doc(hidden)]
pub fn restore_in_batches(
    repo: &IndexedRepository,
    snapshot: &Snapshot,
    target: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
    batch: usize,
) -> Result<RestoreSummary> {
    let batch = batch.max(1);
    if fs::symlink_metadata(target).is_ok_and(|m| !m.is_dir()) {
        return Err(RepoError::Usage(format!(
            "restore target {} exists and is not a directory",
            target.display()
        )));
    }
    let sel = Selection::new(opts)?;
    let mut summary = RestoreSummary {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let mut planner = Planner::new(repo, &snapshot.tree, &sel, &mut summary.problems);
    let mut entries = planner.next_batch(batch, &mut summary.problems);
    if sel.inc.is_some() && entries.is_empty() {
        return Err(RepoError::Usage(format!(
            "no path in the snapshot matches {:?}",
            opts.includes
        )));
    }

    let started = std::time::Instant::now();
    tracing::debug!(entries = entries.len(), "restore: planned");
    // Into an empty target nothing can be in the way: no conflict scan and
    // no `lstat` per entry (O_EXCL still refuses anything that appears).
    let fresh = is_empty_dir(target);
    // Sized and checked from the plan when it is one batch; otherwise by a
    // first pass over the snapshot's trees that keeps nothing.
    let mut survey = Survey::default();
    if planner.is_done() {
        survey.add(&entries, target, fresh);
    } else {
        let mut pass = Planner::new(repo, &snapshot.tree, &sel, &mut vec![]);
        while !pass.is_done() {
            survey.add(&pass.next_batch(batch, &mut vec![]), target, fresh);
        }
    }
    summary.conflicts = survey.conflict_count;
    if opts.dry_run {
        summary.files = survey.files;
        summary.dirs = survey.dirs;
        summary.symlinks = survey.symlinks;
        summary.specials = survey.specials;
        summary.bytes = survey.bytes;
        return Ok(summary);
    }
    fs::create_dir_all(target).map_err(|e| RepoError::io("create restore target", target, e))?;
    // Refuse before writing anything if files would be replaced.
    if let (Some(first), false) = (survey.first_conflict, opts.overwrite) {
        return Err(RepoError::WouldOverwrite {
            target: target.to_path_buf(),
            count: survey.conflict_count,
            first,
        });
    }
    progress.set_total(survey.bytes);

    let dest = Destination {
        repo,
        target,
        opts,
        fresh,
        progress,
    };
    let mut carried = Carried::default();
    loop {
        restore_batch(&dest, entries, &mut carried, &mut summary);
        if planner.is_done() {
            break;
        }
        entries = planner.next_batch(batch, &mut summary.problems);
    }
    tracing::debug!(elapsed = ?started.elapsed(), "restore: content written");
    finish_links_and_dirs(&dest, carried, &mut summary);
    tracing::debug!(elapsed = ?started.elapsed(), "restore: metadata set");
    sync_filesystem(target)?;
    tracing::debug!(elapsed = ?started.elapsed(), "restore: synced");
    if opts.verify {
        let damaged: std::collections::HashSet<PathBuf> =
            summary.problems.iter().map(|p| p.path.clone()).collect();
        let (verified, problems) = verify_selection(repo, snapshot, target, &sel, batch, &damaged);
        summary.verified = verified;
        summary.problems.extend(problems);
        summary.problems.sort_by(|a, b| a.path.cmp(&b.path));
        summary.problems.dedup();
        tracing::debug!(elapsed = ?started.elapsed(), "restore: verified");
    }
    summary.problems.sort_by(|a, b| a.path.cmp(&b.path));
    summary.problems.dedup();
    Ok(summary)
}

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

fn verify_selection(
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
fn verify_batch(
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

/// The size of a restore and what is in its way.
#[derive(Default)]
struct Survey {
    bytes: u64,
    files: u64,
    dirs: u64,
    symlinks: u64,
    specials: u64,
    /// The first path in the way (the one reported), and how many are.
    first_conflict: Option<String>,
    conflict_count: usize,
}

impl Survey {
    fn add(&mut self, entries: &[Entry], target: &Path, fresh: bool) {
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

/// Restores one batch of planned entries: directories, then file content
/// pack by pack, then the files no worker finished, then hard links.
/// Directories and symlinks move to `carried` for the end.
fn restore_batch(
    dest: &Destination<'_>,
    entries: Vec<Entry>,
    carried: &mut Carried,
    summary: &mut RestoreSummary,
) {
    let (target, opts, fresh) = (dest.target, dest.opts, dest.fresh);
    // Directories first, in pre-order so parents exist before children;
    // nothing below a directory that failed is attempted.
    let mut dir_made = vec![false; entries.len()];
    for (i, e) in entries.iter().enumerate() {
        if e.node.kind != NodeKind::Dir || carried.under_failed(&e.rel) {
            continue;
        }
        match make_dir(&target.join(&e.rel)) {
            Ok(()) => {
                dir_made[i] = true;
                summary.dirs += 1;
            }
            Err(err) => {
                carried.failed_dirs.push(e.rel.clone());
                summary.problems.push(RestoreProblem {
                    path: e.rel.clone(),
                    message: err.to_string(),
                });
            }
        }
    }
    // Then files: the first of each hard-link group and every other file.
    let mut files: Vec<FileJob> = vec![];
    let mut links = vec![]; // (entry, its group)
    for (i, e) in entries.iter().enumerate() {
        if e.node.kind != NodeKind::File || carried.under_failed(&e.rel) {
            continue;
        }
        if e.node.links > 1 && e.node.inode != 0 {
            let group = (e.node.device, e.node.inode);
            match carried.first_of_link.entry(group) {
                std::collections::hash_map::Entry::Occupied(_) => {
                    links.push((i, group));
                    continue;
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert((e.rel.clone(), None));
                }
            }
        }
        files.push(FileJob::new(target.join(&e.rel), i, &e.node));
    }
    if !fresh {
        let overwrite = opts.overwrite;
        let cleared = par_map(&files, |f| remove_existing(&f.path, fresh, overwrite));
        for (f, r) in files.iter().zip(cleared) {
            if let Err(e) = r {
                let _ = f.created.set(Err(e.to_string()));
            }
        }
    }
    write_content(dest.repo, &mut files, &entries, summary, dest.progress);

    for f in &files {
        let e = &entries[f.entry];
        if e.node.links > 1 && e.node.inode != 0 {
            let restored = matches!(f.created.get(), Some(Ok(())));
            if let Some(first) = carried
                .first_of_link
                .get_mut(&(e.node.device, e.node.inode))
            {
                first.1 = Some(restored);
            }
        }
    }
    drop(files);

    // Further hard links of a group, to its first file.
    for (i, group) in links {
        let e = &entries[i];
        let p = target.join(&e.rel);
        let r = remove_existing(&p, fresh, opts.overwrite).and_then(|()| {
            match carried.first_of_link.get(&group) {
                Some((first, Some(true))) => fs::hard_link(target.join(first), &p),
                _ => Err(std::io::Error::other(
                    "not linked: the file it is a hard link of was not restored",
                )),
            }
        });
        match r {
            Ok(()) => summary.files += 1,
            Err(err) => summary.problems.push(RestoreProblem {
                path: e.rel.clone(),
                message: err.to_string(),
            }),
        }
    }
    for (i, e) in entries.into_iter().enumerate() {
        match e.node.kind {
            NodeKind::Dir if dir_made[i] => carried.dirs.push(e),
            NodeKind::Symlink if !carried.under_failed(&e.rel) => carried.symlinks.push(e),
            k if k.is_special() && !carried.under_failed(&e.rel) => carried.specials.push(e),
            _ => {}
        }
    }
}

/// Writes the content of `files`: every blob grouped by pack, packs read on
/// several threads. Each file is created by the first worker with bytes for
/// it and finished (size, owner, mode, times, by descriptor) by the worker
/// that writes its last byte; the files no worker finished (empty, or with
/// a damaged or missing blob) are created if need be and finished after.
fn write_content(
    repo: &IndexedRepository,
    files: &mut [FileJob],
    entries: &[Entry],
    summary: &mut RestoreSummary,
    progress: &dyn Progress,
) {
    let mut by_pack: HashMap<u32, HashMap<Id, BlobJob>> = HashMap::new();
    let mut file_problems: Vec<Option<String>> = vec![None; files.len()];
    for (fi, f) in files.iter_mut().enumerate() {
        if f.created.get().is_some() {
            continue; // could not be cleared
        }
        let mut offset = 0u64;
        for id in &f.node.content {
            match repo.index().get(id) {
                Some(loc) => {
                    let job = by_pack
                        .entry(loc.pack)
                        .or_default()
                        .entry(*id)
                        .or_insert_with(|| BlobJob {
                            id: *id,
                            offset: loc.offset,
                            length: loc.length,
                            raw_length: loc.raw_length,
                            targets: vec![],
                        });
                    job.targets.push(Target { file: fi, offset });
                    offset += u64::from(loc.raw_length);
                }
                None => {
                    file_problems[fi].get_or_insert_with(|| {
                        format!("blob {} is missing from the repository", id.short())
                    });
                    // Unknown length: later blobs of this file cannot be placed.
                    break;
                }
            }
        }
        *f.remaining.get_mut() = offset;
    }
    let files: &[FileJob] = files;
    let queue: Mutex<Vec<(u32, Vec<BlobJob>)>> = Mutex::new(
        by_pack
            .into_iter()
            .map(|(p, m)| {
                let mut v: Vec<BlobJob> = m.into_values().collect();
                v.sort_by_key(|b| b.offset);
                (p, v)
            })
            .collect(),
    );
    let problems = Mutex::new(file_problems);
    let workers = crate::cores() * 2;
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut worker = PackWorker::default();
                loop {
                    let Some((pack, blobs)) = queue.lock().pop() else {
                        break;
                    };
                    restore_pack(repo, pack, &blobs, files, &mut worker, &problems, progress);
                }
            });
        }
    });

    // Files not finished by a content worker: created if need be, then
    // finished.
    let unfinished: Vec<usize> = (0..files.len())
        .filter(|&fi| !files[fi].finished.load(Ordering::Acquire))
        .collect();
    let finish_results = par_map(&unfinished, |&fi| {
        let f = &files[fi];
        f.sink().and_then(|sink| f.finish(&sink))
    });
    let mut problems = problems.into_inner();
    for (fi, r) in unfinished.into_iter().zip(finish_results) {
        if let Err(e) = r {
            problems[fi].get_or_insert(e);
        }
    }
    for (fi, f) in files.iter().enumerate() {
        if matches!(f.created.get(), Some(Ok(()))) {
            summary.files += 1;
            summary.bytes += f.node.size;
        }
        if let Some(message) = problems[fi].take() {
            let rel = entries[f.entry].rel.clone();
            summary.problems.push(RestoreProblem { path: rel, message });
        }
    }
}

/// The end of a restore: symlinks, then the metadata of symlinks (on every
/// core; hard links share their first's inode, finished with it), then of
/// directories, deepest first (writing into a directory changes its mtime;
/// reversed pre-order puts every child before its parent).
fn finish_links_and_dirs(dest: &Destination<'_>, carried: Carried, summary: &mut RestoreSummary) {
    let (target, opts, fresh) = (dest.target, dest.opts, dest.fresh);
    let mut made = vec![];
    for e in carried.symlinks {
        let p = target.join(&e.rel);
        let link_to = e
            .node
            .link_target
            .as_ref()
            .map(|t| t.as_os_str())
            .unwrap_or_default();
        let r = remove_existing(&p, fresh, opts.overwrite)
            .and_then(|()| std::os::unix::fs::symlink(link_to, &p));
        match r {
            Ok(()) => {
                summary.symlinks += 1;
                made.push(e);
            }
            Err(err) => summary.problems.push(RestoreProblem {
                path: e.rel,
                message: err.to_string(),
            }),
        }
    }
    for e in carried.specials {
        let p = target.join(&e.rel);
        match remove_existing(&p, fresh, opts.overwrite).and_then(|()| make_special(&p, &e.node)) {
            Ok(()) => {
                summary.specials += 1;
                made.push(e);
            }
            Err(err) => summary.problems.push(RestoreProblem {
                path: e.rel,
                message: err.to_string(),
            }),
        }
    }
    let link_results = par_map(&made, |e| {
        metadata::apply(At::Path(&target.join(&e.rel)), &e.node)
    });
    let dir_results: Vec<_> = carried
        .dirs
        .iter()
        .rev()
        .map(|e| metadata::apply(At::Path(&target.join(&e.rel)), &e.node))
        .collect();
    let all = made.iter().zip(link_results);
    for (e, r) in all.chain(carried.dirs.iter().rev().zip(dir_results)) {
        if let Err(err) = r {
            summary.problems.push(RestoreProblem {
                path: e.rel.clone(),
                message: format!("metadata: {err}"),
            });
        }
    }
}

/// Makes a FIFO, socket or device node at `p` (never following a link:
/// `mknod` fails on anything already there). Devices need root.
fn make_special(p: &Path, node: &Node) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let kind = match node.kind {
        NodeKind::Fifo => libc::S_IFIFO,
        NodeKind::Socket => libc::S_IFSOCK,
        NodeKind::CharDevice => libc::S_IFCHR,
        NodeKind::BlockDevice => libc::S_IFBLK,
        _ => return Err(std::io::Error::other("not a special file")),
    };
    let c = std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path holds a NUL byte"))?;
    // Permissions come with the metadata afterwards; create it private.
    // SAFETY: c is a valid NUL-terminated path for the duration of the call.
    let rc = unsafe { libc::mknod(c.as_ptr(), kind | 0o600, node.rdev as libc::dev_t) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::PermissionDenied && node.kind != NodeKind::Fifo {
            return Err(std::io::Error::other(format!(
                "a device can only be recreated by root ({e})"
            )));
        }
        return Err(e);
    }
    Ok(())
}

/// A file being restored.
struct FileJob<'a> {
    path: PathBuf,
    /// Its entry in the plan.
    entry: usize,
    node: &'a Node,
    /// Set once: created (by the first worker with bytes for it, or at the
    /// end), or why it could not be.
    created: OnceLock<std::result::Result<(), String>>,
    /// Content bytes not yet written.
    remaining: AtomicU64,
    /// Size, owner, mode and times set.
    finished: AtomicBool,
}

impl<'a> FileJob<'a> {
    fn new(path: PathBuf, entry: usize, node: &'a Node) -> FileJob<'a> {
        FileJob {
            path,
            entry,
            node,
            created: OnceLock::new(),
            remaining: AtomicU64::new(0),
            finished: AtomicBool::new(false),
        }
    }

    /// The file open for writing, created if nobody has yet.
    fn sink(&self) -> std::result::Result<FileSink, String> {
        let mut made = None;
        let created = self.created.get_or_init(|| {
            FileSink::create(&self.path, self.node.size, metadata::create_mode(self.node))
                .map(|s| made = Some(s))
                .map_err(|e| format!("create: {e}"))
        });
        match (created, made) {
            (Err(e), _) => Err(e.clone()),
            (Ok(()), Some(sink)) => Ok(sink),
            (Ok(()), None) => FileSink::open(&self.path, self.node.size)
                .map_err(|e| format!("open for writing: {e}")),
        }
    }

    /// Sets size, owner, mode and times through `sink`.
    fn finish(&self, sink: &FileSink) -> std::result::Result<(), String> {
        self.finished.store(true, Ordering::Release);
        metadata::apply(At::File(sink.file()), self.node).map_err(|e| format!("metadata: {e}"))
    }
}

/// What a content thread keeps from pack to pack.
#[derive(Default)]
struct PackWorker {
    /// Files open for writing (at most 64).
    open: HashMap<usize, FileSink>,
    decoder: blob::Decoder,
    /// The bytes read from the current pack.
    buf: Vec<u8>,
    /// Staging for direct writes.
    aligned: AlignedBuf,
}

fn restore_pack(
    repo: &IndexedRepository,
    pack: u32,
    blobs: &[BlobJob],
    files: &[FileJob],
    worker: &mut PackWorker,
    problems: &Mutex<Vec<Option<String>>>,
    progress: &dyn Progress,
) {
    let PackWorker {
        open,
        decoder,
        buf,
        aligned,
    } = worker;
    let pack_id = repo.index().pack(pack).id;
    let name = pack_id.to_hex();
    let fail = |b: &BlobJob, msg: String| {
        let mut p = problems.lock();
        for t in &b.targets {
            p[t.file].get_or_insert_with(|| msg.clone());
        }
    };
    // Coalesce blobs separated by less than 1 MiB into one ranged read.
    let mut i = 0;
    while i < blobs.len() {
        let start = u64::from(blobs[i].offset);
        let mut end = start + u64::from(blobs[i].length);
        let mut j = i + 1;
        while j < blobs.len()
            && u64::from(blobs[j].offset) <= end + (1 << 20)
            && end - start < (64 << 20)
        {
            end = end.max(u64::from(blobs[j].offset) + u64::from(blobs[j].length));
            j += 1;
        }
        let data = repo
            .store()
            .get_range_into(lifeboat_store::Kind::Pack, &name, start, end - start, buf)
            .map(|()| &buf[..]);
        for b in &blobs[i..j] {
            let data = match &data {
                Ok(d) => d,
                Err(e) => {
                    fail(b, format!("pack {}: {e}", pack_id.short()));
                    continue;
                }
            };
            let off = (u64::from(b.offset) - start) as usize;
            let stored = &data[off..off + b.length as usize];
            let plain = match decoder.decode(repo.key(), stored, &b.id, b.raw_length) {
                Ok(p) => p,
                Err(e) => {
                    fail(
                        b,
                        format!(
                            "blob {} in pack {} is damaged: {e}",
                            b.id.short(),
                            pack_id.short()
                        ),
                    );
                    continue;
                }
            };
            for t in &b.targets {
                progress.add(plain.len() as u64);
                let file = &files[t.file];
                if open.len() > 64 && !open.contains_key(&t.file) {
                    open.clear();
                }
                let sink = match open.entry(t.file) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => match file.sink() {
                        Ok(sink) => v.insert(sink),
                        Err(e) => {
                            problems.lock()[t.file].get_or_insert(e);
                            continue;
                        }
                    },
                };
                if let Err(e) = sink.write_at(plain, t.offset, aligned) {
                    problems.lock()[t.file].get_or_insert_with(|| format!("write: {e}"));
                }
                let len = plain.len() as u64;
                if file.remaining.fetch_sub(len, Ordering::AcqRel) == len {
                    // The last bytes of the file: every other write is done.
                    if let Some(sink) = open.remove(&t.file) {
                        if let Err(e) = file.finish(&sink) {
                            problems.lock()[t.file].get_or_insert(e);
                        }
                    }
                }
            }
        }
        i = j;
    }
}

/// Whether `dir` is missing or empty.
fn is_empty_dir(dir: &Path) -> bool {
    match fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// Runs `f` over `items` on twice as many threads as cores (file system
/// calls block on the journal), each taking a contiguous run so one
/// directory's entries stay on one thread. Results come in input order.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = crate::cores() * 2;
    let run = items.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(run)
            .map(|c| s.spawn(|| c.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

fn make_dir(p: &Path) -> std::io::Result<()> {
    match fs::create_dir(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Never descend through a symlink planted in the target.
            if fs::symlink_metadata(p)?.file_type().is_dir() {
                Ok(())
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "exists and is not a directory (not followed)",
                ))
            }
        }
        Err(e) => Err(e),
    }
}

/// Clears the way for a new entry at `p`: nothing to do in a target that was
/// empty (`fresh`); otherwise an existing non-directory is removed only
/// with `overwrite`.
fn remove_existing(p: &Path, fresh: bool, overwrite: bool) -> std::io::Result<()> {
    if fresh {
        return Ok(());
    }
    match fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_dir() => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "a directory is in the way",
        )),
        // unlink never follows a symlink: it removes the link itself.
        Ok(_) if overwrite => fs::remove_file(p),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "exists",
        )),
        Err(_) => Ok(()),
    }
}

/// Makes everything written under `dir` durable: one `syncfs` for the whole
/// file system instead of an fsync per file.
pub fn sync_filesystem(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| RepoError::io("open for sync", dir, e))?;
    use std::os::fd::AsRawFd;
    // SAFETY: f is an open descriptor for the duration of the call.
    let rc = unsafe { libc::syncfs(f.as_raw_fd()) };
    if rc != 0 {
        return Err(RepoError::io(
            "syncfs",
            dir,
            std::io::Error::last_os_error(),
        ));
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
