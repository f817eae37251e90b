//! Restore: a snapshot (or part of it) into a directory. Submodules: `plan`
//! (what to restore), `content` (file bytes), `finish` (links, directory
//! metadata), `verify` (read back).
//!
//! Order of work: plan entries in pre-order (rejecting unsafe names), refuse
//! up front if files would be overwritten without `overwrite`; then, for
//! each batch of up to `BATCH_ENTRIES` (32 000) planned entries, create
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

mod content;
mod finish;
mod plan;
mod verify;

use content::*;
use finish::*;
use plan::*;
pub use verify::verify;
use verify::*;

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

/// Entries planned and restored at a time. Memory holds one batch (about
/// 1 KiB per entry), plus, for the whole restore, the directories (their
/// metadata is set last), the symlinks (created last) and the first path of
/// each hard-link group.
const BATCH_ENTRIES: usize = 32_000;

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
    // Sized and checked from the plan when it is one batch, or when the
    // target is empty and nothing is to be counted ahead (the progress
    // total then grows batch by batch); otherwise by a first pass over the
    // snapshot's trees that keeps nothing.
    let mut survey = Survey::default();
    let grows = !planner.is_done() && fresh && !opts.dry_run;
    if planner.is_done() || grows {
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
    if grows {
        progress.add_total(survey.bytes);
    } else {
        progress.set_total(survey.bytes);
    }

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
        if grows {
            let mut more = Survey::default();
            more.add(&entries, target, fresh);
            progress.add_total(more.bytes);
            if planner.is_done() {
                progress.total_known();
            }
        }
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
