//! A store in a local directory.
//!
//! Layout: `config`, `keys/NAME`, `data/XX/NAME` (XX = the first two
//! characters of the name, so no folder grows past a few thousand entries),
//! `index/NAME`, `snapshots/NAME`. Temporary files start with `.tmp-` and are
//! never listed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::{
    validate_name, Kind, ObjectInfo, ReadStore, Result, StagedObject, StoreError, Temporaries,
    WriteStore,
};

/// A store in a local directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

fn io_err(op: &'static str, path: &Path, source: io::Error) -> StoreError {
    StoreError::Io {
        op,
        what: path.display().to_string(),
        source,
    }
}

impl LocalStore {
    /// A store rooted at `root` (which need not exist until [`WriteStore::create`]).
    pub fn new(root: PathBuf) -> Self {
        LocalStore { root }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir_of(&self, kind: Kind, name: &str) -> PathBuf {
        match kind {
            Kind::Config => self.root.clone(),
            Kind::Pack => self.root.join(kind.dir()).join(&name[..name.len().min(2)]),
            _ => self.root.join(kind.dir()),
        }
    }

    fn path_of(&self, kind: Kind, name: &str) -> Result<PathBuf> {
        validate_name(name)?;
        if kind == Kind::Config && name != "config" {
            return Err(StoreError::InvalidName(name.to_string()));
        }
        Ok(self.dir_of(kind, name).join(name))
    }

    fn not_found(&self, kind: Kind, name: &str) -> StoreError {
        StoreError::NotFound {
            kind,
            name: name.to_string(),
            location: self.location(),
        }
    }

    fn open_read(&self, kind: Kind, name: &str) -> Result<(File, PathBuf)> {
        let path = self.path_of(kind, name)?;
        match File::open(&path) {
            Ok(f) => Ok((f, path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(self.not_found(kind, name)),
            Err(e) => Err(io_err("open", &path, e)),
        }
    }

    /// A temporary file in the kind's folder (the same file system as its
    /// final place, so publishing is a hard link).
    fn stage_local(&self, kind: Kind) -> Result<LocalStaged> {
        let dir = match kind {
            Kind::Config => self.root.clone(),
            _ => self.root.join(kind.dir()),
        };
        create_dir_durable(&dir).map_err(|e| io_err("create directory", &dir, e))?;
        // The process id in the name lets an interrupted process remove
        // exactly its own temporaries, never those of another one running.
        let tmp = dir.join(format!(
            "{}{:016x}",
            own_tmp_prefix(),
            rand::random::<u64>()
        ));
        // Private whatever the umask: a repository's objects are for its
        // owner alone (they are encrypted, but sizes and counts leak).
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io_err("create", &tmp, e))?;
        Ok(LocalStaged {
            store: self.clone(),
            kind,
            tmp,
            file,
            size: 0,
        })
    }

    /// Calls `f` with the path, size and age of every temporary file
    /// (`.tmp-*`, this process's own only when `only_own`).
    fn each_temporary(&self, only_own: bool, mut f: impl FnMut(&Path, u64, Duration)) {
        let own = own_tmp_prefix();
        let now = SystemTime::now();
        let mut dirs = vec![self.root.clone()];
        for kind in Kind::ALL {
            if kind != Kind::Config {
                dirs.push(self.root.join(kind.dir()));
            }
        }
        let data = self.root.join(Kind::Pack.dir());
        if let Ok(rd) = fs::read_dir(&data) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    dirs.push(e.path());
                }
            }
        }
        for dir in dirs {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if !name.starts_with(".tmp-") || (only_own && !name.starts_with(&own)) {
                    continue;
                }
                let Ok(meta) = e.metadata() else { continue };
                let age = meta
                    .modified()
                    .map(|t| now.duration_since(t).unwrap_or_default())
                    .unwrap_or_default();
                f(&e.path(), meta.len(), age);
            }
        }
    }

    fn remove_temporaries(&self, older_than: Duration, only_own: bool) -> Result<usize> {
        let mut removed = 0;
        self.each_temporary(only_own, |path, _, age| {
            if age >= older_than && fs::remove_file(path).is_ok() {
                removed += 1;
            }
        });
        Ok(removed)
    }
}

/// A local object being written: a `.tmp-` file, removed when dropped.
struct LocalStaged {
    store: LocalStore,
    kind: Kind,
    tmp: PathBuf,
    file: File,
    size: u64,
}

impl StagedObject for LocalStaged {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.file
            .write_all(data)
            .map_err(|e| io_err("write", &self.tmp, e))?;
        self.size += data.len() as u64;
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn finish(self: Box<Self>, name: &str) -> Result<()> {
        let (kind, store) = (self.kind, &self.store);
        let path = store.path_of(kind, name)?;
        let dir = store.dir_of(kind, name);
        self.file
            .sync_all()
            .map_err(|e| io_err("fsync", &self.tmp, e))?;
        create_dir_durable(&dir).map_err(|e| io_err("create directory", &dir, e))?;
        // A hard link fails when the target exists, which gives us "never
        // overwrite" atomically; rename would silently replace.
        match fs::hard_link(&self.tmp, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StoreError::AlreadyExists {
                    kind,
                    name: name.to_string(),
                    location: store.location(),
                })
            }
            Err(e) => return Err(io_err("link", &path, e)),
        }
        fsync_dir(&dir).map_err(|e| io_err("fsync", &dir, e))
    }
}

impl Drop for LocalStaged {
    fn drop(&mut self) {
        // Published objects are hard links of this file; unfinished ones go.
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Makes a directory entry durable.
fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// How this process's temporary files begin: `.tmp-<pid>-`.
fn own_tmp_prefix() -> String {
    format!(".tmp-{}-", std::process::id())
}

/// Creates `dir` (and parents) and makes the new entries durable.
fn create_dir_durable(dir: &Path) -> io::Result<()> {
    // A relative root's last parent is the empty path: the current directory.
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_durable(parent)?;
    }
    // Directories 0700: private, as the objects in them.
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    match dir.parent() {
        Some(parent) if parent.as_os_str().is_empty() => fsync_dir(Path::new(".")),
        Some(parent) => fsync_dir(parent),
        None => Ok(()),
    }
}

impl ReadStore for LocalStore {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        let (mut f, path) = self.open_read(kind, name)?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(|e| io_err("read", &path, e))?;
        Ok(buf)
    }

    fn get_range(&self, kind: Kind, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.get_range_into(kind, name, offset, length, &mut buf)?;
        Ok(buf)
    }

    fn get_range_into(
        &self,
        kind: Kind,
        name: &str,
        offset: u64,
        length: u64,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        let (mut f, path) = self.open_read(kind, name)?;
        let size = f.metadata().map_err(|e| io_err("stat", &path, e))?.len();
        let short = || StoreError::ShortObject {
            kind,
            name: name.to_string(),
            location: self.location(),
            size,
            offset,
            length,
        };
        if offset.checked_add(length).is_none_or(|end| end > size) {
            return Err(short());
        }
        let len = usize::try_from(length).map_err(|_| short())?;
        buf.clear();
        buf.reserve(len);
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| io_err("seek", &path, e))?;
        // read_to_end fills spare capacity without zeroing it first.
        (&mut f)
            .take(length)
            .read_to_end(buf)
            .map_err(|e| io_err("read", &path, e))?;
        if buf.len() != len {
            // The file shrank between the stat and the read.
            return Err(short());
        }
        Ok(())
    }

    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
        if kind == Kind::Config {
            return Ok(match fs::metadata(self.root.join("config")) {
                Ok(m) => vec![ObjectInfo {
                    name: "config".into(),
                    size: m.len(),
                }],
                Err(_) => vec![],
            });
        }
        let base = self.root.join(kind.dir());
        let mut dirs = vec![];
        if kind == Kind::Pack {
            match fs::read_dir(&base) {
                Ok(rd) => {
                    for e in rd {
                        let e = e.map_err(|e| io_err("list", &base, e))?;
                        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                            dirs.push(e.path());
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("list", &base, e)),
            }
        } else {
            dirs.push(base);
        }
        let mut out = vec![];
        for dir in dirs {
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("list", &dir, e)),
            };
            for e in rd {
                let e = e.map_err(|e| io_err("list", &dir, e))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if validate_name(&name).is_err() {
                    continue;
                }
                let size = match e.metadata() {
                    Ok(m) if m.is_file() => m.len(),
                    Ok(_) => continue,
                    // Deleted between readdir and stat.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(err) => return Err(io_err("stat", &e.path(), err)),
                };
                out.push(ObjectInfo { name, size });
            }
        }
        Ok(out)
    }

    fn exists(&self, kind: Kind, name: &str) -> Result<bool> {
        let path = self.path_of(kind, name)?;
        match fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("stat", &path, e)),
        }
    }

    fn size(&self, kind: Kind, name: &str) -> Result<u64> {
        let path = self.path_of(kind, name)?;
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(self.not_found(kind, name)),
            Err(e) => Err(io_err("stat", &path, e)),
        }
    }
}

impl WriteStore for LocalStore {
    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.path_of(kind, name)?;
        let mut staged = self.stage_local(kind)?;
        staged.write(data)?;
        Box::new(staged).finish(name)
    }

    fn stage(&self, kind: Kind) -> Result<Box<dyn StagedObject>> {
        Ok(Box::new(self.stage_local(kind)?))
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        let path = self.path_of(kind, name)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("delete", &path, e)),
        }
        let dir = self.dir_of(kind, name);
        fsync_dir(&dir).map_err(|e| io_err("fsync", &dir, e))
    }

    fn create(&self) -> Result<()> {
        for kind in Kind::ALL {
            let dir = self.root.join(kind.dir());
            create_dir_durable(&dir).map_err(|e| io_err("create directory", &dir, e))?;
        }
        Ok(())
    }

    fn as_read(&self) -> &dyn ReadStore {
        self
    }

    fn temporaries(&self, older_than: Duration) -> Result<Temporaries> {
        let mut t = Temporaries::default();
        self.each_temporary(false, |_, size, age| {
            if age >= older_than {
                t.count += 1;
                t.bytes += size;
            }
        });
        Ok(t)
    }

    fn remove_stale_temporaries(&self, older_than: Duration) -> Result<usize> {
        self.remove_temporaries(older_than, false)
    }

    fn remove_own_temporaries(&self) -> Result<usize> {
        self.remove_temporaries(Duration::ZERO, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_store_passes_conformance() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path().join("repo"));
        crate::conformance::run_all(&store);
        // Every write, finished or abandoned, cleaned up its temporary file.
        assert_eq!(
            store
                .remove_stale_temporaries(Duration::ZERO)
                .expect("clean"),
            0
        );
    }

    #[test]
    fn temporaries_are_invisible_and_cleaned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path().to_path_buf());
        store.create().expect("create");
        fs::write(dir.path().join("index/.tmp-abc"), b"half").expect("write");
        assert!(store.list(Kind::Index).expect("list").is_empty());
        let seen = store.temporaries(Duration::ZERO).expect("count");
        assert_eq!((seen.count, seen.bytes), (1, 4));
        assert_eq!(
            store.temporaries(Duration::from_secs(3600)).expect("count"),
            Temporaries::default(),
            "a fresh one may belong to a running writer"
        );
        assert_eq!(
            store
                .remove_stale_temporaries(Duration::ZERO)
                .expect("clean"),
            1
        );
        assert!(!dir.path().join("index/.tmp-abc").exists());
    }
}
