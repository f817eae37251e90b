//! Backup: files and streams into a snapshot.
//!
//! The walker (the calling thread) lists directories in name order and
//! compares each file with the same path in the parent snapshot; files whose
//! size, mtime, ctime and inode all match keep their content list without
//! being read. Every other file goes to a pool of reader threads that read,
//! chunk and hash it and hand new chunks to the [`BlobSaver`] pipeline
//! (compress → encrypt → pack → upload). A directory's tree is saved as a
//! blob as soon as it is listed and its last file is read, and its entries
//! are dropped: memory holds the directories still open (those on the
//! walker's path and those with files in the readers' bounded queue), not
//! every entry of the backup. When the root's tree is saved, the pipeline is
//! flushed (packs, then the index); then the snapshot is written. Nothing
//! points at data that is not yet stored.
//!
//! A file or directory that cannot be read is skipped and reported as a
//! [`Warning`]; the snapshot is still written.

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::excludes::{ExcludeOptions, Excludes};
use crossbeam_channel::{bounded, unbounded};
use serde::Serialize;

use crate::blob::{self, BlobKind};
use crate::chunker::{Chunker, Chunking};
use crate::error::{RepoError, Result};
use crate::id::Id;
use crate::packer::BlobSaver;
use crate::progress::Progress;
use crate::repository::{hostname, IndexedRepository};
use crate::snapshot::{BackupSummary, Snapshot, SNAPSHOT_VERSION};
use crate::tree::{FileName, Node, NodeKind, Tree};

/// What to back up.
pub enum BackupSource<'a> {
    /// Files and directories, each stored at its absolute place below the
    /// snapshot's root (see docs/FORMAT.md, "The path model").
    Paths(Vec<PathBuf>),
    /// Named byte streams (stdin, database dumps), each stored as a file
    /// of that name at the root of the snapshot, one after another. Always
    /// read in full: a stream is never skipped because a parent has it.
    Streams(Box<dyn StreamSet<'a> + 'a>),
}

impl<'a> BackupSource<'a> {
    /// One stream stored as a file named `name` (stdin, a command's output).
    pub fn stream(name: impl Into<String>, reader: impl Read + Send + 'a) -> BackupSource<'a> {
        BackupSource::Streams(Box::new(OneStream {
            stream: Some(NamedStream {
                name: name.into(),
                reader: Box::new(reader),
                chunking: Chunking::ContentDefined,
            }),
        }))
    }
}

/// A stream's name in the snapshot and its bytes.
pub struct NamedStream<'a> {
    /// File name in the snapshot (one safe component).
    pub name: String,
    /// The bytes: a read error fails the backup, and no snapshot is written.
    pub reader: Box<dyn Read + Send + 'a>,
    /// How to cut it into chunks.
    pub chunking: Chunking,
}

/// The streams of one backup, produced one at a time (a source may start
/// each producer only when its turn comes), and the source's metadata,
/// known only once every stream was read in full (a dump's row counts at
/// its own consistent point). The seam between sources and the repository:
/// the repository stores bytes and records the metadata; it learns nothing
/// about what produced them.
pub trait StreamSet<'a>: Send {
    /// The next stream, or `None` when all are stored.
    fn next_stream(&mut self) -> std::io::Result<Option<NamedStream<'a>>>;
    /// Called after the last stream was read in full and before the
    /// snapshot is written: the metadata to record in it. An error fails
    /// the backup, and no snapshot is written.
    fn finish(&mut self) -> std::io::Result<Option<serde_json::Value>>;
}

/// The error a source gives while its streams are read or finished (a
/// producer that failed, a snapshot that is not valid): carried inside an
/// `io::Error`, and shown in its own words rather than as a read error of
/// the stream.
#[derive(Debug)]
pub struct SourceFailed(pub String);

impl SourceFailed {
    /// `message` as the `io::Error` a stream's reader or `finish` returns.
    pub fn io(message: impl Into<String>) -> std::io::Error {
        std::io::Error::other(SourceFailed(message.into()))
    }
}

impl std::fmt::Display for SourceFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SourceFailed {}

/// A set of exactly one stream, with no metadata of its own.
struct OneStream<'a> {
    stream: Option<NamedStream<'a>>,
}

impl<'a> StreamSet<'a> for OneStream<'a> {
    fn next_stream(&mut self) -> std::io::Result<Option<NamedStream<'a>>> {
        Ok(self.stream.take())
    }
    fn finish(&mut self) -> std::io::Result<Option<serde_json::Value>> {
        Ok(None)
    }
}

/// Options of a backup.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Host name to record (default: this machine's).
    pub host: Option<String>,
    /// Tags to record.
    pub tags: Vec<String>,
    /// What to leave out.
    pub excludes: ExcludeOptions,
    /// Parent snapshot for change detection. `None`: the latest snapshot
    /// with the same host and paths.
    pub parent: Option<Id>,
    /// Read every file, ignoring any parent.
    pub no_parent: bool,
    /// Read every file, even those the parent vouches for (the parent still
    /// tells new, changed and unmodified files apart in the counts).
    pub read_all: bool,
    /// Source-specific metadata to store in the snapshot.
    pub source_meta: Option<serde_json::Value>,
    /// Record access times. Off by default: reading a directory updates
    /// its atime, so with them every tree above a directory would differ
    /// from one backup to the next (measured: 12 489 of 12 493 trees
    /// stored again by a backup after a small change, instead of 1 680).
    pub with_atime: bool,
    /// Save a stream that turns out empty. Off by default: an empty dump
    /// is nearly always a failed producer (`pg_dump nosuchdb | …`), and a
    /// snapshot of it would pass for a backup.
    pub allow_empty: bool,
}

/// Something that could not be backed up.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Warning {
    /// The path concerned.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// The result of a backup.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    /// The new snapshot's id.
    pub id: Id,
    /// The snapshot.
    pub snapshot: Snapshot,
    /// Entries that were skipped.
    pub warnings: Vec<Warning>,
    /// The most directories held in memory at once: those on the walker's
    /// path and those waiting for files in the readers' queue, however
    /// many directories the backup has.
    pub peak_open_dirs: usize,
}

/// Reads a list file (`--exclude-file`, `--files-from`): one item per
/// line, `#` comments, blank lines ignored. `what` names it in errors.
pub fn read_list_file(path: &Path, what: &str) -> Result<Vec<String>> {
    let text = fs::read_to_string(path).map_err(|e| {
        RepoError::Usage(format!(
            "{what} {}: {}",
            path.display(),
            crate::error::io_words(&e)
        ))
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect())
}

/// A directory whose tree is not saved yet.
struct OpenDir {
    /// Its entries in name order; `None` for a file that could not be read
    /// (left out of the tree).
    entries: Vec<Option<Node>>,
    /// Files still being read and subdirectories still open, plus one while
    /// the walker is listing it: the tree is saved when this reaches 0.
    pending: usize,
    /// Where its own node is: the parent's key and position (`None` for the
    /// snapshot's root).
    up: Option<(usize, usize)>,
}

/// A file for the readers: entry `pos` of open directory `dir`.
struct FileJob {
    dir: usize,
    pos: usize,
    path: PathBuf,
    was: Was,
}

/// What a reader made of a [`FileJob`].
struct FileDone {
    dir: usize,
    pos: usize,
    was: Was,
    result: std::result::Result<(Vec<Id>, u64), Warning>,
}

/// A file compared with the parent snapshot, counted once it is read (an
/// unreadable file is a warning, not a new or changed file).
#[derive(Clone, Copy)]
enum Was {
    New,
    Changed,
    Unmodified,
}

#[derive(Default)]
struct Counts {
    new: u64,
    changed: u64,
    unmodified: u64,
    dirs: u64,
    bytes_total: u64,
    bytes_read: u64,
}

fn node_from_meta(name: FileName, kind: NodeKind, m: &Metadata, with_atime: bool) -> Node {
    let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
    Node {
        name,
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        mtime_ns: ns(m.mtime(), m.mtime_nsec()),
        atime_ns: if with_atime {
            ns(m.atime(), m.atime_nsec())
        } else {
            0
        },
        ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        inode: m.ino(),
        device: m.dev(),
        links: m.nlink(),
        size: if kind == NodeKind::File { m.len() } else { 0 },
        content: vec![],
        subtree: None,
        link_target: None,
        xattrs: vec![],
        rdev: 0,
    }
}

/// Opens a file for reading without updating its atime where allowed.
fn open_noatime(path: &Path) -> std::io::Result<File> {
    match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME | libc::O_NOFOLLOW)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path),
        r => r,
    }
}

struct Walker<'r> {
    repo: &'r IndexedRepository,
    excludes: Excludes,
    /// Directories whose tree is not saved yet, by key.
    open: HashMap<usize, OpenDir>,
    peak_open: usize,
    next_key: usize,
    /// The snapshot's root tree, once saved.
    root: Option<Id>,
    warnings: Vec<Warning>,
    counts: Counts,
    jobs: Option<crossbeam_channel::Sender<FileJob>>,
    done: crossbeam_channel::Receiver<FileDone>,
    saver: &'r BlobSaver<'r>,
    progress: &'r dyn Progress,
    /// Record access times ([`BackupOptions::with_atime`]).
    with_atime: bool,
    /// The parent snapshot's nodes record extended attributes.
    parent_xattrs: bool,
    /// [`BackupOptions::read_all`].
    read_all: bool,
}

impl Walker<'_> {
    fn warn(&mut self, path: &Path, message: impl Into<String>) {
        let message = message.into();
        tracing::debug!("{}: {message}", path.display());
        self.warnings.push(Warning {
            path: path.to_path_buf(),
            message,
        });
    }

    /// The node for the entry at `path`, with its extended attributes (an
    /// entry whose attributes cannot be read is kept without them, with a
    /// warning). They are taken from the parent snapshot's node when that
    /// snapshot recorded them and the inode and its ctime are the same:
    /// setting or removing an attribute changes the ctime, so they cannot
    /// differ (this saves a call per entry, a quarter of a backup with no
    /// change).
    fn node(
        &mut self,
        path: &Path,
        name: FileName,
        kind: NodeKind,
        meta: &Metadata,
        parent: Option<&Node>,
    ) -> Node {
        let mut node = node_from_meta(name, kind, meta, self.with_atime);
        let same_inode = parent.filter(|p| {
            self.parent_xattrs
                && p.kind == kind
                && p.inode == node.inode
                && p.ctime_ns == node.ctime_ns
        });
        match same_inode {
            Some(p) => node.xattrs = p.xattrs.clone(),
            None => match crate::xattr::read(path) {
                Ok(x) => node.xattrs = x,
                Err(e) => self.warn(path, format!("extended attributes not saved: {e}")),
            },
        }
        node
    }

    fn load_parent_tree(&mut self, id: Option<Id>) -> Option<Arc<Tree>> {
        let id = id?;
        match self.repo.load_tree(&id) {
            Ok(t) => Some(Arc::new(t)),
            Err(e) => {
                // A damaged parent only costs speed: the files are read again.
                tracing::warn!(
                    "parent tree {} unreadable, reading files again: {e}",
                    id.short()
                );
                None
            }
        }
    }

    /// Opens a directory whose node is at `up` (`None`: the root).
    fn open_dir(&mut self, up: Option<(usize, usize)>) -> usize {
        let key = self.next_key;
        self.next_key += 1;
        self.open.insert(
            key,
            OpenDir {
                entries: vec![],
                pending: 1,
                up,
            },
        );
        self.peak_open = self.peak_open.max(self.open.len());
        key
    }

    /// Appends `node` to open directory `dir`; returns its position.
    fn push(&mut self, dir: usize, node: Node) -> usize {
        let d = self.dir(dir);
        d.entries.push(Some(node));
        d.entries.len() - 1
    }

    /// Appends `node`, which `dir` must wait for (a file being read, a
    /// subdirectory being walked); returns its position.
    fn push_awaited(&mut self, dir: usize, node: Node) -> usize {
        let pos = self.push(dir, node);
        self.dir(dir).pending += 1;
        pos
    }

    /// Stores every stream of `set` as a file in directory `root`, in
    /// order, adding each `/NAME` to `paths`; returns the set's metadata.
    #[allow(clippy::too_many_arguments)]
    fn store_streams<'scope, 'env, 'a: 'scope>(
        &mut self,
        s: &'scope std::thread::Scope<'scope, 'env>,
        set: &mut (dyn StreamSet<'a> + 'a),
        chunker: &Chunker,
        root: usize,
        allow_empty: bool,
        paths: &mut Vec<String>,
    ) -> Result<Option<serde_json::Value>> {
        let set_err = |e| RepoError::io("read", Path::new("<source>"), e);
        let mut buf = Vec::new();
        while let Some(NamedStream {
            name,
            reader,
            chunking,
        }) = set.next_stream().map_err(set_err)?
        {
            check_stream_name(&name)?;
            let path = format!("/{name}");
            if paths.contains(&path) {
                return Err(RepoError::Usage(format!("two streams are named {name:?}")));
            }
            let (content, n) = read_stream(
                crate::read_ahead::ReadAhead::spawn(s, reader),
                Path::new(&format!("<{name}>")),
                chunker,
                chunking,
                &mut buf,
                self.saver,
                None,
                self.progress,
            )?;
            if n == 0 && !allow_empty {
                return Err(RepoError::EmptyStream { name });
            }
            let now = jiff::Timestamp::now().as_nanosecond() as i64;
            self.counts.new += 1;
            self.counts.bytes_total += n;
            self.counts.bytes_read += n;
            self.push(
                root,
                Node {
                    name: FileName::from(name.as_str()),
                    kind: NodeKind::File,
                    mode: 0o600,
                    // SAFETY: getuid/getgid cannot fail.
                    uid: unsafe { libc::getuid() },
                    gid: unsafe { libc::getgid() },
                    mtime_ns: now,
                    atime_ns: 0,
                    ctime_ns: now,
                    inode: 0,
                    device: 0,
                    links: 1,
                    size: n,
                    content,
                    subtree: None,
                    link_target: None,
                    xattrs: vec![],
                    rdev: 0,
                },
            );
            paths.push(path);
        }
        if paths.is_empty() {
            return Err(RepoError::Usage(
                "the source gave no stream to back up".into(),
            ));
        }
        set.finish().map_err(set_err)
    }

    fn dir(&mut self, key: usize) -> &mut OpenDir {
        // Keys are removed only when their count reaches zero, after which
        // nothing refers to them.
        self.open.get_mut(&key).expect("open directory")
    }

    /// One thing directory `key` waited for is done; saves its tree when
    /// nothing is left, and so on up.
    fn release(&mut self, mut key: usize) -> Result<()> {
        loop {
            let d = self.dir(key);
            d.pending -= 1;
            if d.pending > 0 {
                return Ok(());
            }
            let d = self.open.remove(&key).expect("open directory");
            let nodes: Vec<Node> = d.entries.into_iter().flatten().collect();
            let id = self
                .saver
                .save(BlobKind::Tree, &Tree::new(nodes).to_bytes())?;
            match d.up {
                None => {
                    self.root = Some(id);
                    return Ok(());
                }
                Some((up, pos)) => {
                    if let Some(n) = self.dir(up).entries[pos].as_mut() {
                        n.subtree = Some(id);
                    }
                    key = up;
                }
            }
        }
    }

    /// Takes in what the readers finished so far.
    fn collect_read_files(&mut self) -> Result<()> {
        while let Ok(done) = self.done.try_recv() {
            self.file_read(done)?;
        }
        Ok(())
    }

    fn file_read(&mut self, done: FileDone) -> Result<()> {
        if done.result.is_ok() {
            *match done.was {
                Was::New => &mut self.counts.new,
                Was::Changed => &mut self.counts.changed,
                Was::Unmodified => &mut self.counts.unmodified,
            } += 1;
        }
        let entry = &mut self.dir(done.dir).entries[done.pos];
        match done.result {
            Ok((content, n)) => {
                if let Some(node) = entry.as_mut() {
                    let old = node.size;
                    node.content = content;
                    node.size = n;
                    // The file may have changed size while we read it.
                    self.counts.bytes_total = self.counts.bytes_total - old + n;
                    self.counts.bytes_read += n;
                }
            }
            Err(w) => {
                if let Some(node) = entry.take() {
                    self.counts.bytes_total -= node.size;
                }
                tracing::debug!("{}: {}", w.path.display(), w.message);
                self.warnings.push(w);
            }
        }
        self.release(done.dir)
    }

    /// Adds the entry at `path` (already lstat'ed) to open directory `dir`.
    fn add(
        &mut self,
        dir: usize,
        path: &Path,
        name: FileName,
        meta: &Metadata,
        parent: Option<&Node>,
    ) -> Result<()> {
        if self.saver.has_failed() {
            return Err(RepoError::Internal("backup pipeline failed".into()));
        }
        let ft = meta.file_type();
        if ft.is_file() {
            let mut node = self.node(path, name, NodeKind::File, meta, parent);
            self.counts.bytes_total += node.size;
            let unchanged = parent.filter(|p| {
                p.kind == NodeKind::File
                    && p.size == node.size
                    && p.mtime_ns == node.mtime_ns
                    && p.ctime_ns == node.ctime_ns
                    && p.inode == node.inode
            });
            let reusable = unchanged.filter(|p| {
                !self.read_all && p.content.iter().all(|id| self.repo.index().has_live(id))
            });
            match reusable {
                Some(p) => {
                    node.content = p.content.clone();
                    self.counts.unmodified += 1;
                    self.progress.add(node.size);
                    self.progress.file_done();
                    self.push(dir, node);
                }
                None => {
                    let was = match (parent, unchanged) {
                        (_, Some(_)) => Was::Unmodified,
                        (Some(_), None) => Was::Changed,
                        (None, None) => Was::New,
                    };
                    let pos = self.push_awaited(dir, node);
                    self.jobs
                        .as_ref()
                        .and_then(|j| {
                            j.send(FileJob {
                                dir,
                                pos,
                                path: path.to_path_buf(),
                                was,
                            })
                            .ok()
                        })
                        .ok_or_else(|| RepoError::Internal("file readers stopped".into()))?;
                }
            }
        } else if ft.is_symlink() {
            let target = match fs::read_link(path) {
                Ok(t) => t,
                Err(e) => {
                    self.warn(path, format!("cannot read symlink: {e}"));
                    return Ok(());
                }
            };
            let mut node = self.node(path, name, NodeKind::Symlink, meta, parent);
            node.link_target = Some(FileName::from(target.as_os_str()));
            self.push(dir, node);
        } else if ft.is_dir() {
            self.counts.dirs += 1;
            let node = self.node(path, name, NodeKind::Dir, meta, parent);
            let pos = self.push_awaited(dir, node);
            let parent_tree = self.load_parent_tree(
                parent
                    .filter(|p| p.kind == NodeKind::Dir)
                    .and_then(|p| p.subtree),
            );
            let sub = self.open_dir(Some((dir, pos)));
            self.walk_dir(sub, path, parent_tree.as_deref())?;
            // Listed: the tree is saved now, or when its last file is read.
            self.release(sub)?;
        } else {
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_fifo() {
                NodeKind::Fifo
            } else if ft.is_socket() {
                NodeKind::Socket
            } else if ft.is_char_device() {
                NodeKind::CharDevice
            } else if ft.is_block_device() {
                NodeKind::BlockDevice
            } else {
                self.warn(path, "skipped: unknown kind of file");
                return Ok(());
            };
            // Recorded as an entry (restore recreates it); never read.
            let mut node = self.node(path, name, kind, meta, parent);
            node.rdev = meta.rdev();
            self.push(dir, node);
        }
        Ok(())
    }

    /// Adds what `trie` selects below directory `dir` (open as `key`): a
    /// selected path whole, a directory above selected paths with its own
    /// metadata and only the selected names below it.
    fn add_selected(
        &mut self,
        key: usize,
        dir: &Path,
        trie: &PathTrie,
        parent: Option<&Tree>,
    ) -> Result<()> {
        if trie.selected {
            return self.walk_dir(key, dir, parent);
        }
        for (name, below) in &trie.below {
            self.collect_read_files()?;
            let path = dir.join(name);
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    self.warn(&path, format!("cannot stat: {e}"));
                    continue;
                }
            };
            let fname = FileName::from(name.as_os_str());
            let pnode = parent.and_then(|t| t.find(&fname.0));
            if below.selected {
                self.add(key, &path, fname, &meta, pnode)?;
                continue;
            }
            if !meta.is_dir() {
                self.warn(
                    &path,
                    "changed while being backed up: no longer a directory",
                );
                continue;
            }
            // A directory above what is backed up: its node, and only the
            // selected names inside it.
            let node = self.node(&path, fname, NodeKind::Dir, &meta, pnode);
            let pos = self.push_awaited(key, node);
            let parent_tree = self.load_parent_tree(
                pnode
                    .filter(|p| p.kind == NodeKind::Dir)
                    .and_then(|p| p.subtree),
            );
            let sub = self.open_dir(Some((key, pos)));
            self.add_selected(sub, &path, below, parent_tree.as_deref())?;
            self.release(sub)?;
        }
        Ok(())
    }

    /// Lists directory `path` into open directory `key`.
    fn walk_dir(&mut self, key: usize, dir: &Path, parent: Option<&Tree>) -> Result<()> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) => {
                self.warn(dir, format!("cannot list directory: {e}"));
                return Ok(());
            }
        };
        let mut entries = vec![];
        for e in rd {
            match e {
                Ok(e) => entries.push(e.file_name()),
                Err(e) => self.warn(dir, format!("error while listing directory: {e}")),
            }
        }
        entries.sort();
        for name in entries {
            self.collect_read_files()?;
            let path = dir.join(&name);
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    if !self.excludes.excludes_name(&path) {
                        self.warn(&path, format!("cannot stat: {e}"));
                    }
                    continue;
                }
            };
            if self.excludes.excludes(&path, &meta) {
                continue;
            }
            let fname = FileName::from(name.as_os_str());
            let pnode = parent.and_then(|t| t.find(&fname.0));
            self.add(key, &path, fname, &meta, pnode)?;
        }
        Ok(())
    }
}

/// A reader thread's own encoder. While every reader is busy, every core
/// is, and a reader encodes its chunks itself (no copy, no hand-off); when
/// some readers idle (a last large file, a slow walk), chunks go to the
/// compressor threads so the idle cores help.
struct Inline<'a> {
    encoder: blob::Encoder,
    busy: &'a AtomicUsize,
    readers: usize,
}

impl Inline<'_> {
    fn encoder(&mut self) -> Option<&mut blob::Encoder> {
        (self.busy.load(Ordering::Relaxed) >= self.readers).then_some(&mut self.encoder)
    }
}

/// Reads one file, saving its chunks; returns the content ids and bytes read.
fn read_file(
    path: &Path,
    chunker: &Chunker,
    buf: &mut Vec<u8>,
    saver: &BlobSaver<'_>,
    inline: &mut Inline<'_>,
    progress: &dyn Progress,
) -> Result<(Vec<Id>, u64)> {
    let f = open_noatime(path).map_err(|e| RepoError::io("open", path, e))?;
    read_stream(
        f,
        path,
        chunker,
        Chunking::ContentDefined,
        buf,
        saver,
        Some(inline),
        progress,
    )
}

#[allow(clippy::too_many_arguments)]
fn read_stream(
    r: impl Read,
    what: &Path,
    chunker: &Chunker,
    chunking: Chunking,
    buf: &mut Vec<u8>,
    saver: &BlobSaver<'_>,
    mut inline: Option<&mut Inline<'_>>,
    progress: &dyn Progress,
) -> Result<(Vec<Id>, u64)> {
    let mut ids = vec![];
    let mut save = |chunk: &[u8]| -> std::result::Result<(), ReadOrRepo> {
        let encoder = inline.as_deref_mut().and_then(Inline::encoder);
        ids.push(
            saver
                .save_with(BlobKind::Data, chunk, encoder)
                .map_err(ReadOrRepo::Repo)?,
        );
        progress.add(chunk.len() as u64);
        Ok(())
    };
    let total = match chunking {
        Chunking::ContentDefined => chunker.for_each_chunk::<_, ReadOrRepo>(r, buf, &mut save),
        Chunking::TarBlocks(block) => {
            crate::chunker::for_each_tar_block::<_, ReadOrRepo>(r, block as usize, buf, &mut save)
        }
    }
    .map_err(|e| match e {
        ReadOrRepo::Read(e) => RepoError::io("read", what, e),
        ReadOrRepo::Repo(e) => e,
    })?;
    Ok((ids, total))
}

enum ReadOrRepo {
    Read(std::io::Error),
    Repo(RepoError),
}

impl From<std::io::Error> for ReadOrRepo {
    fn from(e: std::io::Error) -> Self {
        ReadOrRepo::Read(e)
    }
}

/// Backs up `source` into `repo`.
pub fn backup(
    repo: &mut IndexedRepository,
    source: BackupSource<'_>,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupOutcome> {
    let start = Instant::now();
    let time = jiff::Timestamp::now();
    // Blobs of packs that are gone are stored again, never referenced.
    let seen = repo.reconcile_with_store()?;
    if seen.recovered > 0 {
        tracing::info!(
            "indexed {} pack(s) left by an interrupted run",
            seen.recovered
        );
    }
    if seen.missing > 0 {
        tracing::warn!(
            "{} indexed pack(s) are missing from the repository: their data is stored again if the source still has it",
            seen.missing
        );
    }
    let host = opts.host.clone().unwrap_or_else(hostname);
    let (paths, mut streams) = resolve_source(source)?;
    let stream = streams.is_some();
    let excludes = Excludes::new(&opts.excludes, &paths)?;
    // A stream's path (`/NAME`) is known once the set yields it.
    let mut snapshot_paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let parent = if stream {
        None
    } else {
        choose_parent(repo, opts, &host, &snapshot_paths)?
    };
    let (parent_root, parent_xattrs) = match parent {
        Some(p) => {
            let s: Snapshot = repo.load_json(lifeboat_store::Kind::Snapshot, &p.to_hex())?;
            (Some(s.tree), s.xattrs)
        }
        None => (None, false),
    };

    let chunker = Chunker::new(repo.config().chunker, repo.key().chunker_seed());
    let repo_ref: &IndexedRepository = repo;
    let mut saver = BlobSaver::new(repo_ref, repo_ref.index());
    if stream {
        saver.keep_large_buffers();
    }
    let readers = crate::cores();

    let busy = AtomicUsize::new(0);
    let scan_done = AtomicBool::new(false);
    let (tree, warnings, counts, peak_open_dirs, packs, source_meta) =
        std::thread::scope(|s| -> Result<_> {
            let pipeline = saver.start(s);
            let (job_tx, job_rx) = bounded::<FileJob>(readers * 4);
            let (done_tx, done_rx) = unbounded::<FileDone>();
            let reader_handles = spawn_readers(
                s, readers, &job_rx, &done_tx, &chunker, &saver, &busy, progress,
            );
            drop(job_rx);
            drop(done_tx);

            // Sized ahead on its own thread when someone watches the progress.
            if !stream && progress.is_shown() {
                let (paths, excludes, stop) = (&paths, excludes.clone(), &scan_done);
                s.spawn(move || crate::scan::scan(paths, &excludes, progress, stop));
            }
            let mut walker = Walker {
                repo: repo_ref,
                excludes,
                open: HashMap::new(),
                peak_open: 0,
                next_key: 0,
                root: None,
                warnings: vec![],
                counts: Counts::default(),
                jobs: Some(job_tx),
                done: done_rx,
                saver: &saver,
                progress,
                with_atime: opts.with_atime,
                read_all: opts.read_all,
                parent_xattrs,
            };
            let root = walker.open_dir(None);
            let walk_result = if let Some(set) = streams.as_mut() {
                walker.store_streams(
                    s,
                    set.as_mut(),
                    &chunker,
                    root,
                    opts.allow_empty,
                    &mut snapshot_paths,
                )
            } else {
                let root_parent = walker.load_parent_tree(parent_root);
                walker
                    .add_selected(
                        root,
                        Path::new("/"),
                        &PathTrie::new(&paths),
                        root_parent.as_deref(),
                    )
                    .map(|()| None)
            };
            // No more jobs: readers finish the queue and exit.
            drop(walker.jobs.take());
            scan_done.store(true, Ordering::Relaxed);
            let mut reader_err = None;
            for h in reader_handles {
                if let Err(e) = h
                    .join()
                    .unwrap_or_else(|_| Err(RepoError::Internal("reader thread panicked".into())))
                {
                    reader_err.get_or_insert(e);
                }
            }
            // Every reader has exited, so all they read is in the channel; the
            // root's tree is saved once everything under it is.
            let (tree, source_meta) = match (walk_result, reader_err) {
                (Ok(meta), None) => (
                    walker
                        .collect_read_files()
                        .and_then(|()| walker.release(root))
                        .and_then(|()| {
                            walker.root.ok_or_else(|| {
                                RepoError::Internal("a directory was left open".into())
                            })
                        }),
                    meta,
                ),
                (Err(e), _) | (_, Some(e)) => (Err(e), None),
            };
            let finished = pipeline.finish(&saver);
            // The pipeline's own error explains a failed walk best (e.g. a full disk).
            let (tree, packs) = match (tree, finished) {
                (_, Err(e)) => return Err(e),
                (Err(e), Ok(_)) => return Err(e),
                (Ok(t), Ok(p)) => (t, p),
            };
            Ok((
                tree,
                walker.warnings,
                walker.counts,
                walker.peak_open,
                packs,
                source_meta,
            ))
        })?;

    let summary = summarize(&counts, &saver.stats, warnings.len(), start);
    let snapshot = Snapshot {
        version: SNAPSHOT_VERSION,
        time,
        tree,
        paths: snapshot_paths,
        hostname: host,
        username: std::env::var("USER").unwrap_or_default(),
        tags: opts.tags.clone(),
        parent,
        program_version: concat!("lifeboat ", env!("CARGO_PKG_VERSION")).to_string(),
        summary: Some(summary),
        // The set's own metadata, or the caller's.
        source: source_meta.or_else(|| opts.source_meta.clone()),
        xattrs: true,
        original: None,
        lost: vec![],
    };
    drop(saver);
    repo.add_written_packs(&packs);
    // The snapshot goes last, after every pack and index object it needs.
    crate::faults::crash_point("backup-before-snapshot");
    let id = repo.save_snapshot(&snapshot)?;
    Ok(BackupOutcome {
        id,
        snapshot,
        warnings,
        peak_open_dirs,
    })
}

/// A backup's stream set.
type Streams<'a> = Box<dyn StreamSet<'a> + 'a>;

/// The paths to back up (resolved, see [`backup_paths`]) or the streams.
fn resolve_source(source: BackupSource<'_>) -> Result<(Vec<PathBuf>, Option<Streams<'_>>)> {
    match source {
        BackupSource::Paths(p) => {
            if p.is_empty() {
                return Err(RepoError::Usage(
                    "nothing to back up: give at least one path".into(),
                ));
            }
            Ok((backup_paths(&p)?, None))
        }
        BackupSource::Streams(set) => Ok((vec![], Some(set))),
    }
}

/// Refuses a stream name that is not one safe file name.
fn check_stream_name(name: &str) -> Result<()> {
    if FileName::from(name).is_safe() {
        Ok(())
    } else {
        Err(RepoError::Usage(format!(
            "invalid stream name {name:?}: no '/', not '.' or '..'"
        )))
    }
}

/// The parent snapshot: the one given, or the latest of the same host and
/// paths (none with `no_parent`).
fn choose_parent(
    repo: &IndexedRepository,
    opts: &BackupOptions,
    host: &str,
    snapshot_paths: &[String],
) -> Result<Option<Id>> {
    if opts.no_parent {
        return Ok(None);
    }
    if let Some(p) = opts.parent {
        return Ok(Some(p));
    }
    let (all, _) = repo.snapshots()?;
    let mut key_paths = snapshot_paths.to_vec();
    key_paths.sort();
    let want = crate::snapshot::GroupKey {
        host: Some(host.to_string()),
        paths: Some(key_paths),
        tags: None,
    };
    let group = crate::snapshot::GroupBy::HOST_AND_PATHS;
    Ok(all
        .into_iter()
        .rev()
        .find(|(_, s)| group.key(s) == want)
        .map(|(id, _)| id))
}

/// Reader threads: each takes file jobs, reads and chunks the file, saves
/// its blobs, and reports the content (or why it could not be read).
#[allow(clippy::too_many_arguments)]
fn spawn_readers<'scope, 'env>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    readers: usize,
    jobs: &crossbeam_channel::Receiver<FileJob>,
    done: &crossbeam_channel::Sender<FileDone>,
    chunker: &'scope Chunker,
    saver: &'scope BlobSaver<'_>,
    busy: &'scope AtomicUsize,
    progress: &'scope dyn Progress,
) -> Vec<std::thread::ScopedJoinHandle<'scope, Result<()>>> {
    (0..readers)
        .map(|_| {
            let (rx, tx) = (jobs.clone(), done.clone());
            s.spawn(move || {
                let mut buf = Vec::new();
                let mut inline = Inline {
                    encoder: saver.encoder(),
                    busy,
                    readers,
                };
                for job in rx {
                    if saver.has_failed() {
                        break;
                    }
                    busy.fetch_add(1, Ordering::Relaxed);
                    progress.file_started(&job.path);
                    let result =
                        read_file(&job.path, chunker, &mut buf, saver, &mut inline, progress);
                    progress.file_done();
                    busy.fetch_sub(1, Ordering::Relaxed);
                    let result = match result {
                        Ok(r) => Ok(r),
                        // A file we cannot read is a warning; a repository
                        // failure stops the backup.
                        Err(RepoError::Io { op, path, source }) => Err(Warning {
                            path,
                            message: format!("{op}: {source}"),
                        }),
                        Err(e) => return Err(e),
                    };
                    let _ = tx.send(FileDone {
                        dir: job.dir,
                        pos: job.pos,
                        was: job.was,
                        result,
                    });
                }
                Ok(())
            })
        })
        .collect()
}

/// What the backup did, for its snapshot.
fn summarize(
    counts: &Counts,
    stats: &crate::packer::SaveStats,
    warnings: usize,
    start: Instant,
) -> BackupSummary {
    use std::sync::atomic::Ordering::Relaxed;
    BackupSummary {
        files_new: counts.new,
        files_changed: counts.changed,
        files_unmodified: counts.unmodified,
        dirs: counts.dirs,
        data_blobs: stats.data_blobs.load(Relaxed),
        tree_blobs: stats.tree_blobs.load(Relaxed),
        bytes_read: counts.bytes_read,
        bytes_total: counts.bytes_total,
        bytes_added: stats.bytes_added.load(Relaxed),
        bytes_stored: stats.bytes_stored.load(Relaxed),
        warnings: warnings as u64,
        duration_seconds: start.elapsed().as_secs_f64(),
    }
}

/// The absolute paths a backup stores, in order, without duplicates and
/// without paths inside another one (the outer one holds them). Every
/// directory above a path is resolved (`/var/run/x` becomes `/run/x` where
/// `/var/run` links to `/run`), so the snapshot's directories above it are
/// real directories; the last component is kept as given (a symlink given
/// is stored as the symlink).
fn backup_paths(given: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut abs = vec![];
    for path in given {
        let a = std::path::absolute(path).map_err(|e| RepoError::io("resolve", path, e))?;
        let a = normalize(&a);
        fs::symlink_metadata(&a).map_err(|e| {
            RepoError::Usage(format!(
                "backup path {}: {}",
                a.display(),
                crate::error::io_words(&e)
            ))
        })?;
        let a = match (a.parent(), a.file_name()) {
            (Some(dir), Some(name)) => fs::canonicalize(dir)
                .map_err(|e| RepoError::io("resolve", dir, e))?
                .join(name),
            _ => a,
        };
        abs.push(a);
    }
    abs.sort();
    abs.dedup();
    let mut kept: Vec<PathBuf> = vec![];
    for a in abs {
        if !kept.iter().any(|k| a.starts_with(k)) {
            kept.push(a);
        }
    }
    Ok(kept)
}

/// The backup paths as a tree of names below `/`: the snapshot stores each
/// path at its absolute place, with the directories above it.
#[derive(Default)]
struct PathTrie {
    /// This path itself is backed up (with everything below it).
    selected: bool,
    /// Names below it that lead to backed-up paths, in name order.
    below: std::collections::BTreeMap<std::ffi::OsString, PathTrie>,
}

impl PathTrie {
    fn new(paths: &[PathBuf]) -> PathTrie {
        let mut root = PathTrie::default();
        for p in paths {
            let mut at = &mut root;
            for c in p.components() {
                if let std::path::Component::Normal(name) = c {
                    at = at.below.entry(name.to_os_string()).or_default();
                }
            }
            at.selected = true;
        }
        root
    }
}

/// Removes `.` and resolves `..` lexically (without following symlinks).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    }
}
