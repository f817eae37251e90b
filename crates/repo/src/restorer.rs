//! Restore: a snapshot (or part of it) into a directory, and `dump` of one
//! file to a writer.
//!
//! Order of work: plan every entry (rejecting unsafe names), refuse up front
//! if files would be overwritten without `overwrite`, create directories,
//! then fill content pack by pack with several threads (each pack read in
//! few ranged reads, each blob verified): a file is created by the first
//! thread with bytes for it and finished (size, owner, mode, times, through
//! its descriptor) by the thread that writes its last byte. Then the files
//! no thread finished (empty ones, damaged ones), hard links and symlinks,
//! then directories' metadata (deepest first), then make it all durable
//! with `syncfs` before reporting success.
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

use globset::{Glob, GlobSet, GlobSetBuilder};
use parking_lot::Mutex;
use serde::Serialize;

use crate::blob;
use crate::error::{RepoError, Result};
use crate::file_sink::{AlignedBuf, FileSink};
use crate::id::Id;
use crate::metadata::{self, At};
use crate::progress::Progress;
use crate::repository::IndexedRepository;
use crate::snapshot::Snapshot;
use crate::tree::{Node, NodeKind};

/// Options of a restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Glob patterns on paths inside the snapshot (`dir/sub`, `**/*.conf`);
    /// an entry is restored when it or one of its parents matches. Empty:
    /// everything.
    pub includes: Vec<String>,
    /// Replace existing files in the target.
    pub overwrite: bool,
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
    /// Bytes of file content.
    pub bytes: u64,
    /// Files that could not be restored whole.
    pub problems: Vec<RestoreProblem>,
}

struct Entry {
    rel: PathBuf,
    node: Node,
}

fn includes_set(patterns: &[String]) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let p = p.trim_start_matches('/');
        b.add(
            Glob::new(p)
                .map_err(|e| RepoError::Usage(format!("bad include pattern {p:?}: {e}")))?,
        );
    }
    b.build()
        .map(Some)
        .map_err(|e| RepoError::Usage(format!("include patterns: {e}")))
}

/// Walks the tree, collecting entries in pre-order.
fn plan(
    repo: &IndexedRepository,
    tree: &Id,
    rel: &Path,
    inc: Option<&GlobSet>,
    included: bool,
    out: &mut Vec<Entry>,
    problems: &mut Vec<RestoreProblem>,
) {
    let t = match repo.load_tree(tree) {
        Ok(t) => t,
        Err(e) => {
            problems.push(RestoreProblem {
                path: rel.to_path_buf(),
                message: format!("directory contents lost: {e}"),
            });
            return;
        }
    };
    for node in t.nodes {
        if !node.name.is_safe() {
            problems.push(RestoreProblem {
                path: rel.join(node.name.display()),
                message: format!(
                    "refused unsafe name {:?} in the snapshot",
                    node.name.display()
                ),
            });
            continue;
        }
        let path = rel.join(node.name.as_os_str());
        let inc_here = included || inc.is_none_or(|g| g.is_match(&path));
        if node.kind == NodeKind::Dir {
            let mark = out.len();
            let subtree = node.subtree;
            out.push(Entry {
                rel: path.clone(),
                node,
            });
            if let Some(st) = subtree {
                plan(repo, &st, &path, inc, inc_here, out, problems);
            }
            if !inc_here && out.len() == mark + 1 {
                out.pop(); // nothing inside was selected
            }
        } else if inc_here {
            out.push(Entry { rel: path, node });
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

/// Restores `snapshot` into `target`.
pub fn restore(
    repo: &IndexedRepository,
    snapshot: &Snapshot,
    target: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreSummary> {
    let inc = includes_set(&opts.includes)?;
    let mut summary = RestoreSummary::default();
    let mut entries = vec![];
    plan(
        repo,
        &snapshot.tree,
        Path::new(""),
        inc.as_ref(),
        false,
        &mut entries,
        &mut summary.problems,
    );
    if inc.is_some() && entries.is_empty() {
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
    fs::create_dir_all(target).map_err(|e| RepoError::io("create restore target", target, e))?;

    // Refuse before writing anything if files would be replaced.
    let mut conflicts = vec![];
    for e in entries.iter().filter(|_| !fresh) {
        let p = target.join(&e.rel);
        if let Ok(m) = fs::symlink_metadata(&p) {
            let ok = e.node.kind == NodeKind::Dir && m.file_type().is_dir();
            if !ok {
                conflicts.push(e.rel.display().to_string());
            }
        }
    }
    if !conflicts.is_empty() && !opts.overwrite {
        return Err(RepoError::WouldOverwrite {
            target: target.to_path_buf(),
            count: conflicts.len(),
            first: conflicts[0].clone(),
        });
    }

    let total: u64 = entries
        .iter()
        .filter(|e| e.node.kind == NodeKind::File)
        .map(|e| e.node.size)
        .sum();
    progress.set_total(total);

    // Directories first, in pre-order so parents exist before children;
    // nothing below a directory that failed is attempted.
    let mut failed_dirs: Vec<PathBuf> = vec![];
    let mut done = vec![false; entries.len()];
    let under_failed = |failed: &[PathBuf], rel: &Path| failed.iter().any(|d| rel.starts_with(d));
    for (i, e) in entries.iter().enumerate() {
        if e.node.kind != NodeKind::Dir || under_failed(&failed_dirs, &e.rel) {
            continue;
        }
        match make_dir(&target.join(&e.rel)) {
            Ok(()) => {
                done[i] = true;
                summary.dirs += 1;
            }
            Err(err) => {
                failed_dirs.push(e.rel.clone());
                summary.problems.push(RestoreProblem {
                    path: e.rel.clone(),
                    message: err.to_string(),
                });
            }
        }
    }
    // Then files: the first of each hard-link group and every other file.
    // Symlinks and further hard links come last, so no symlink from the
    // snapshot exists while anything is created below it.
    let mut first_of_link: HashMap<(u64, u64), usize> = HashMap::new();
    let mut files: Vec<FileJob> = vec![];
    let mut last = vec![]; // (entry, the entry it is a hard link to)
    for (i, e) in entries.iter().enumerate() {
        if e.node.kind == NodeKind::Dir || under_failed(&failed_dirs, &e.rel) {
            continue;
        }
        let linked = e.node.links > 1 && e.node.inode != 0;
        match e.node.kind {
            NodeKind::File if linked => match first_of_link.entry((e.node.device, e.node.inode)) {
                std::collections::hash_map::Entry::Occupied(first) => {
                    last.push((i, Some(*first.get())))
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(i);
                    files.push(FileJob::new(target.join(&e.rel), i, &e.node));
                }
            },
            NodeKind::File => files.push(FileJob::new(target.join(&e.rel), i, &e.node)),
            _ => last.push((i, None)),
        }
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

    tracing::debug!(elapsed = ?started.elapsed(), "restore: planned files");
    // Content: group every blob by pack. Each file is created by the first
    // worker with bytes for it, and finished (size, owner, mode, times, by
    // descriptor) by the worker that writes its last byte.
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
                    restore_pack(repo, pack, &blobs, &files, &mut worker, &problems, progress);
                }
            });
        }
    });
    tracing::debug!(elapsed = ?started.elapsed(), "restore: content written");

    // Files not finished by a content worker (empty, or with a damaged or
    // missing blob): created if need be, then finished.
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
            done[f.entry] = true;
            summary.files += 1;
            summary.bytes += f.node.size;
        }
        if let Some(message) = problems[fi].take() {
            let rel = entries[f.entry].rel.clone();
            summary.problems.push(RestoreProblem { path: rel, message });
        }
    }

    // Then hard links and symlinks.
    let mut failures = vec![];
    for (i, link_to) in last {
        let e = &entries[i];
        let p = target.join(&e.rel);
        let r = remove_existing(&p, fresh, opts.overwrite).and_then(|()| match link_to {
            Some(first) if done[first] => {
                fs::hard_link(target.join(&entries[first].rel), &p).map(|()| summary.files += 1)
            }
            Some(_) => Err(std::io::Error::other(
                "not linked: the file it is a hard link of was not restored",
            )),
            None => std::os::unix::fs::symlink(
                e.node
                    .link_target
                    .as_ref()
                    .map(|t| t.as_os_str())
                    .unwrap_or_default(),
                &p,
            )
            .map(|()| summary.symlinks += 1),
        });
        match r {
            Ok(()) => done[i] = true,
            Err(err) => failures.push((i, err)),
        }
    }
    for (i, err) in failures {
        summary.problems.push(RestoreProblem {
            path: entries[i].rel.clone(),
            message: err.to_string(),
        });
    }

    // Metadata of symlinks, on every core (hard links share their first's
    // inode, finished above); then directories, deepest first (writing into
    // a directory changes its mtime; reversed pre-order puts every child
    // before its parent).
    let links: Vec<usize> = (0..entries.len())
        .filter(|&i| done[i] && entries[i].node.kind == NodeKind::Symlink)
        .collect();
    let link_results = par_map(&links, |&i| {
        metadata::apply(At::Path(&target.join(&entries[i].rel)), &entries[i].node)
    });
    let dirs = (0..entries.len())
        .rev()
        .filter(|&i| done[i] && entries[i].node.kind == NodeKind::Dir);
    let dir_results: Vec<_> = dirs
        .map(|i| {
            let p = target.join(&entries[i].rel);
            (i, metadata::apply(At::Path(&p), &entries[i].node))
        })
        .collect();
    for (i, r) in links.into_iter().zip(link_results).chain(dir_results) {
        if let Err(err) = r {
            summary.problems.push(RestoreProblem {
                path: entries[i].rel.clone(),
                message: format!("metadata: {err}"),
            });
        }
    }

    tracing::debug!(elapsed = ?started.elapsed(), "restore: metadata set");
    sync_filesystem(target)?;
    tracing::debug!(elapsed = ?started.elapsed(), "restore: synced");
    summary.problems.sort_by(|a, b| a.path.cmp(&b.path));
    summary.problems.dedup();
    Ok(summary)
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
