//! `dump` of a directory: the snapshot's entries as a tar stream (POSIX
//! ustar with PAX extensions for long names and extended attributes), so
//! `lifeboat dump latest /srv/app | tar -x -C /restore` lands the same
//! layout a restore does: entry names are the absolute paths without
//! their leading `/`.
//!
//! Content is read blob by blob as tar asks for it and verified like every
//! read; a blob that fails mid-file ends the dump with an error naming the
//! file (a tar with a short member would be worse than none).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::id::Id;
use crate::repository::IndexedRepository;
use crate::tree::{Node, NodeKind};

/// What a tar dump wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TarSummary {
    /// Entries written.
    pub entries: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Sockets, which tar cannot hold, left out.
    pub skipped_sockets: u64,
}

/// A file's content as a `Read`, one verified blob at a time.
struct Content<'a> {
    repo: &'a IndexedRepository,
    ids: std::slice::Iter<'a, Id>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for Content<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            let Some(id) = self.ids.next() else {
                return Ok(0);
            };
            self.current = self.repo.read_blob(id).map_err(io::Error::other)?;
            self.pos = 0;
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Writes `node` (at absolute `path`) and everything below it to `out` as
/// a tar stream.
pub fn dump_tar(
    repo: &IndexedRepository,
    path: &Path,
    node: &Node,
    out: &mut dyn Write,
) -> Result<TarSummary> {
    write_tar(repo, out, |w| w.entry(path, node))
}

/// Writes the entries below the tree `root` (a whole snapshot) as a tar
/// stream.
pub fn dump_tar_tree(
    repo: &IndexedRepository,
    root: &Id,
    out: &mut dyn Write,
) -> Result<TarSummary> {
    write_tar(repo, out, |w| w.children(Path::new("/"), root))
}

fn write_tar(
    repo: &IndexedRepository,
    out: &mut dyn Write,
    body: impl FnOnce(&mut TarWriter<'_, '_>) -> Result<()>,
) -> Result<TarSummary> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut w = TarWriter {
        repo,
        builder,
        links: HashMap::new(),
        summary: TarSummary::default(),
    };
    body(&mut w)?;
    let TarWriter {
        mut builder,
        summary,
        ..
    } = w;
    builder
        .finish()
        .map_err(|e| RepoError::io("write tar", "<stdout>", e))?;
    Ok(summary)
}

struct TarWriter<'a, 'w> {
    repo: &'a IndexedRepository,
    builder: tar::Builder<&'w mut dyn Write>,
    /// First path of each hard-link group (device, inode).
    links: HashMap<(u64, u64), PathBuf>,
    summary: TarSummary,
}

impl TarWriter<'_, '_> {
    fn children(&mut self, path: &Path, tree: &Id) -> Result<()> {
        let t = self.repo.load_tree(tree)?;
        for n in &t.nodes {
            if !n.name.is_safe() {
                return Err(RepoError::damaged(
                    lifeboat_store::Kind::Pack,
                    tree.to_hex(),
                    self.repo.location(),
                    format!("unsafe name {:?} in a tree", n.name.display()),
                ));
            }
            self.entry(&path.join(n.name.as_os_str()), n)?;
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, n: &Node) -> Result<()> {
        let name = path.strip_prefix("/").unwrap_or(path).to_path_buf();
        let io_err = |e: io::Error| RepoError::io("write tar entry", path, e);
        let mut h = tar::Header::new_ustar();
        h.set_mode(n.mode);
        h.set_uid(u64::from(n.uid));
        h.set_gid(u64::from(n.gid));
        h.set_mtime(u64::try_from(n.mtime_ns.div_euclid(1_000_000_000)).unwrap_or(0));
        h.set_size(0);
        if !n.xattrs.is_empty() {
            let pax: Vec<(String, &[u8])> = n
                .xattrs
                .iter()
                .map(|x| {
                    (
                        format!("SCHILY.xattr.{}", x.name.display()),
                        x.value.as_slice(),
                    )
                })
                .collect();
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), *v)))
                .map_err(io_err)?;
        }
        match n.kind {
            NodeKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                self.builder
                    .append_data(&mut h, &name, io::empty())
                    .map_err(io_err)?;
                self.summary.entries += 1;
                if let Some(st) = n.subtree {
                    self.children(path, &st)?;
                }
                return Ok(());
            }
            NodeKind::File if n.links > 1 => {
                if let Some(first) = self.links.get(&(n.device, n.inode)) {
                    h.set_entry_type(tar::EntryType::Link);
                    let first = first.clone();
                    self.builder
                        .append_link(&mut h, &name, &first)
                        .map_err(io_err)?;
                    self.summary.entries += 1;
                    return Ok(());
                }
                self.links.insert((n.device, n.inode), name.clone());
                self.file(&mut h, &name, path, n)?;
            }
            NodeKind::File => self.file(&mut h, &name, path, n)?,
            NodeKind::Symlink => {
                h.set_entry_type(tar::EntryType::Symlink);
                let target = n
                    .link_target
                    .as_ref()
                    .map(|t| t.display())
                    .unwrap_or_default();
                self.builder
                    .append_link(&mut h, &name, target)
                    .map_err(io_err)?;
            }
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
                h.set_entry_type(match n.kind {
                    NodeKind::Fifo => tar::EntryType::Fifo,
                    NodeKind::CharDevice => tar::EntryType::Char,
                    _ => tar::EntryType::Block,
                });
                let (major, minor) = (libc::major(n.rdev), libc::minor(n.rdev));
                h.set_device_major(major).map_err(io_err)?;
                h.set_device_minor(minor).map_err(io_err)?;
                self.builder
                    .append_data(&mut h, &name, io::empty())
                    .map_err(io_err)?;
            }
            NodeKind::Socket => {
                self.summary.skipped_sockets += 1;
                return Ok(());
            }
        }
        self.summary.entries += 1;
        Ok(())
    }

    fn file(&mut self, h: &mut tar::Header, name: &Path, path: &Path, n: &Node) -> Result<()> {
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(n.size);
        let content = Content {
            repo: self.repo,
            ids: n.content.iter(),
            current: vec![],
            pos: 0,
        };
        // A member must hold exactly its size: a snapshot whose blobs sum
        // to another size is damaged, and the dump stops.
        let mut exact = content.take(n.size);
        let mut counted = CountingReader {
            inner: &mut exact,
            n: 0,
        };
        self.builder
            .append_data(h, name, &mut counted)
            .map_err(|e| RepoError::io("dump file into tar", path, e))?;
        if counted.n != n.size {
            return Err(RepoError::damaged(
                lifeboat_store::Kind::Pack,
                path.display().to_string(),
                self.repo.location(),
                format!("{} bytes of content, {} recorded", counted.n, n.size),
            ));
        }
        self.summary.bytes += n.size;
        Ok(())
    }
}

struct CountingReader<'a, R: Read> {
    inner: &'a mut R,
    n: u64,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}
