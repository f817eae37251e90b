//! `restore --delta`: rewrites an existing data directory into the base
//! backup, touching only what differs — the fast rebuild of a failed
//! primary or a lagging standby.
//!
//! A base backup is stored as one tar archive cut by
//! [`Chunking::TarBlocks`](lifeboat_repo::chunker::Chunking): every member's
//! data in fixed blocks aligned to the member's start. So the block at
//! offset `k × BLOCK` of a file in the data directory is exactly one chunk
//! of the archive, and hashing the local block with the repository's blob
//! key says whether it is already right. Only blocks whose hash differs are
//! read from the repository and written; files the backup lacks are
//! removed, so the directory ends up exactly as a fresh restore would
//! leave it. (pgBackRest compares whole files by checksum; comparing
//! blocks reads and writes less when a file changed in a few pages.)
//!
//! Hand-written walk over the archive's chunk list: a tar reader would
//! need every member's bytes, which is what a delta must not fetch.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use lifeboat_repo::chunker::{tar_number, tar_size};
use lifeboat_repo::tree::Node;
use lifeboat_repo::{Id, IndexedRepository, RepoError};
use serde::Serialize;

use crate::error::{Result, SourceError};

/// What a delta restore did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DeltaStats {
    /// Regular files in the backup.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Bytes found already right in the directory (hashed, not fetched).
    pub bytes_unchanged: u64,
    /// Bytes read from the repository and written.
    pub bytes_written: u64,
    /// Files and directories removed because the backup lacks them.
    pub removed: u64,
}

/// Checks that `target` is a stopped data directory of the cluster
/// `system_id`, so a delta can only rewrite what it is meant to.
pub fn check_target(target: &Path, system_id: u64) -> Result<()> {
    let refuse = |why: String| {
        Err(SourceError::Usage(format!(
            "--delta {}: {why}; nothing was changed",
            target.display()
        )))
    };
    if !target.join("PG_VERSION").is_file() {
        return refuse("not a PostgreSQL data directory (no PG_VERSION)".into());
    }
    if target.join("postmaster.pid").exists() {
        return refuse(
            "a server may be running on it (postmaster.pid exists): stop it first, or remove postmaster.pid if it is stopped".into(),
        );
    }
    match super::wal::system_id(target) {
        Ok(s) if s == system_id => Ok(()),
        Ok(s) => refuse(format!(
            "it belongs to cluster {s}, not to the backup's cluster {system_id}"
        )),
        Err(_) => refuse("it has no readable global/pg_control".into()),
    }
}

/// One archive member, as its header (and any long-name records) say.
struct Member {
    path: PathBuf,
    kind: u8,
    size: u64,
    mode: u32,
    mtime: u64,
    link: PathBuf,
}

/// Rewrites `target` into the archive `node` (a base backup cut in
/// `block`-byte tar blocks). The whole archive is read as a plan (headers
/// only) before anything is written, so an archive cut otherwise is refused
/// with the directory untouched.
pub fn apply(
    repo: &IndexedRepository,
    node: &Node,
    block: u32,
    target: &Path,
) -> Result<DeltaStats> {
    let block = u64::from(block);
    let members = plan(repo, &node.content, block)?;
    let mut stats = DeltaStats::default();
    let mut keep: HashSet<PathBuf> = HashSet::new();
    for (m, data) in &members {
        let path = target.join(&m.path);
        match m.kind {
            b'0' | 0 | b'7' => {
                sync_file(
                    repo,
                    &path,
                    m,
                    &node.content[data.clone()],
                    block,
                    &mut stats,
                )?;
            }
            b'5' => {
                if std::fs::symlink_metadata(&path).is_ok_and(|md| !md.is_dir()) {
                    remove(&path)?;
                }
                std::fs::create_dir_all(&path).map_err(|e| RepoError::io("create", &path, e))?;
                set_attributes(&path, m)?;
            }
            _ => {
                if std::fs::read_link(&path).ok().as_deref() != Some(m.link.as_path()) {
                    if std::fs::symlink_metadata(&path).is_ok() {
                        remove(&path)?;
                    }
                    std::os::unix::fs::symlink(&m.link, &path)
                        .map_err(|e| RepoError::io("create symlink", &path, e))?;
                }
            }
        }
        // The member and every directory above it stay.
        let mut p = m.path.as_path();
        while keep.insert(p.to_path_buf()) {
            match p.parent() {
                Some(q) if !q.as_os_str().is_empty() => p = q,
                _ => break,
            }
        }
    }
    stats.removed = remove_extras(target, Path::new(""), &keep)?;
    Ok(stats)
}

/// The archive's members (files, directories, symlinks; paths made safe)
/// with the range of `chunks` holding each one's data, checked to be cut
/// as a base backup is.
fn plan(
    repo: &IndexedRepository,
    chunks: &[Id],
    block: u64,
) -> Result<Vec<(Member, std::ops::Range<usize>)>> {
    let raw_len = |id: &Id| -> Result<u64> {
        repo.index()
            .get(id)
            .map(|l| u64::from(l.raw_length))
            .ok_or_else(|| RepoError::BlobNotIndexed(*id).into())
    };
    let not_cut = || {
        SourceError::WrongSnapshot(
            "the base backup's archive is not cut in tar blocks, so --delta cannot compare it; restore into an empty directory (nothing was changed)".into(),
        )
    };
    let mut members = vec![];
    let mut long_name: Option<PathBuf> = None;
    let mut long_link: Option<PathBuf> = None;
    let mut pad = 0usize;
    let mut i = 0;
    while i < chunks.len() {
        let head = repo.read_blob(&chunks[i])?;
        i += 1;
        let Some(h) = head.get(pad..).filter(|h| h.len() == 512) else {
            break; // the end blocks
        };
        let Some(size) = tar_size(h).filter(|_| h.iter().any(|&b| b != 0)) else {
            break;
        };
        let n_blocks = size.div_ceil(block) as usize;
        let range = i..i + n_blocks;
        let data = chunks.get(range.clone()).ok_or_else(not_cut)?;
        i += n_blocks;
        for (k, id) in data.iter().enumerate() {
            if raw_len(id)? != (size - k as u64 * block).min(block) {
                return Err(not_cut());
            }
        }
        pad = ((512 - size % 512) % 512) as usize;
        let read_all = |data: &[Id]| -> Result<Vec<u8>> {
            let mut v = Vec::with_capacity(size as usize);
            for id in data {
                v.extend_from_slice(&repo.read_blob(id)?);
            }
            Ok(v)
        };
        let kind = h[156];
        match kind {
            // GNU long name and long link name records.
            b'L' => {
                long_name = Some(c_path(&read_all(data)?));
                continue;
            }
            b'K' => {
                long_link = Some(c_path(&read_all(data)?));
                continue;
            }
            // pax records: `LEN key=value\n`.
            b'x' => {
                for (key, value) in pax_records(&read_all(data)?) {
                    match key.as_str() {
                        "path" => long_name = Some(PathBuf::from(value)),
                        "linkpath" => long_link = Some(PathBuf::from(value)),
                        _ => {}
                    }
                }
                continue;
            }
            b'g' => continue,
            _ => {}
        }
        let field = |r: std::ops::Range<usize>| tar_number(&h[r]).unwrap_or(0);
        let path = safe_relative(&long_name.take().unwrap_or_else(|| ustar_path(h)))?;
        if !matches!(kind, b'0' | 0 | b'7' | b'5' | b'2') {
            return Err(SourceError::WrongSnapshot(format!(
                "the base backup holds {} as a tar member of type {:?}, which --delta does not restore; restore into an empty directory (nothing was changed)",
                path.display(),
                kind as char
            )));
        }
        members.push((
            Member {
                path,
                kind,
                size,
                mode: field(100..108) as u32 & 0o7777,
                mtime: field(136..148),
                link: long_link.take().unwrap_or_else(|| c_path(&h[157..257])),
            },
            range,
        ));
    }
    Ok(members)
}

/// Makes the regular file at `path` hold the member: each block hashed
/// where the file has it, fetched and written only where it differs.
fn sync_file(
    repo: &IndexedRepository,
    path: &Path,
    m: &Member,
    data: &[Id],
    block: u64,
    stats: &mut DeltaStats,
) -> Result<()> {
    if std::fs::symlink_metadata(path).is_ok_and(|md| !md.is_file()) {
        remove(path)?;
    }
    let f: File = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| RepoError::io("open", path, e))?;
    let local = f
        .metadata()
        .map_err(|e| RepoError::io("stat", path, e))?
        .len();
    let mut buf = vec![0u8; block as usize];
    for (k, id) in data.iter().enumerate() {
        let off = k as u64 * block;
        let n = (m.size - off).min(block) as usize;
        if off + n as u64 <= local {
            f.read_exact_at(&mut buf[..n], off)
                .map_err(|e| RepoError::io("read", path, e))?;
            if repo.key().blob_id(&buf[..n]) == *id {
                stats.bytes_unchanged += n as u64;
                continue;
            }
        }
        let bytes = repo.read_blob(id)?;
        f.write_all_at(&bytes, off)
            .map_err(|e| RepoError::io("write", path, e))?;
        stats.bytes_written += n as u64;
    }
    if local != m.size {
        f.set_len(m.size)
            .map_err(|e| RepoError::io("truncate", path, e))?;
    }
    let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(m.mtime);
    f.set_modified(mtime)
        .map_err(|e| RepoError::io("set the time of", path, e))?;
    drop(f);
    set_attributes(path, m)?;
    stats.files += 1;
    stats.bytes += m.size;
    Ok(())
}

/// Sets the member's mode (owners are the caller's: one owner for the
/// whole data directory).
fn set_attributes(path: &Path, m: &Member) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(m.mode))
        .map_err(|e| RepoError::io("chmod", path, e).into())
}

fn remove(path: &Path) -> Result<()> {
    let md = std::fs::symlink_metadata(path).map_err(|e| RepoError::io("stat", path, e))?;
    if md.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
    .map_err(|e| RepoError::io("remove", path, e).into())
}

/// Removes what lies under `target/rel` and is not in `keep`; returns how
/// many entries it removed. `lost+found` at the top is left alone.
fn remove_extras(target: &Path, rel: &Path, keep: &HashSet<PathBuf>) -> Result<u64> {
    let dir = target.join(rel);
    let mut removed = 0;
    for e in std::fs::read_dir(&dir).map_err(|e| RepoError::io("list", &dir, e))? {
        let e = e.map_err(|e| RepoError::io("list", &dir, e))?;
        let r = rel.join(e.file_name());
        if rel.as_os_str().is_empty() && e.file_name() == "lost+found" {
            continue;
        }
        if !keep.contains(&r) {
            remove(&target.join(&r))?;
            removed += 1;
        } else if e
            .file_type()
            .map_err(|x| RepoError::io("stat", e.path(), x))?
            .is_dir()
        {
            removed += remove_extras(target, &r, keep)?;
        }
    }
    Ok(removed)
}

/// A member's path from its ustar header: `prefix/name`.
fn ustar_path(h: &[u8]) -> PathBuf {
    let name = c_path(&h[..100]);
    if &h[257..262] == b"ustar" && h[345] != 0 {
        c_path(&h[345..500]).join(name)
    } else {
        name
    }
}

fn c_path(b: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    PathBuf::from(std::ffi::OsStr::from_bytes(&b[..end]))
}

fn pax_records(b: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(b);
    let mut out = vec![];
    let mut rest: &str = &text;
    while let Some((len, _)) = rest.split_once(' ') {
        let Ok(n) = len.parse::<usize>() else { break };
        let Some(rec) = rest.get(..n) else { break };
        if let Some((k, v)) = rec[len.len() + 1..].trim_end_matches('\n').split_once('=') {
            out.push((k.to_string(), v.to_string()));
        }
        rest = &rest[n..];
    }
    out
}

/// A member path made safe to join under the target: relative, no `..`.
fn safe_relative(p: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(x) => out.push(x),
            Component::CurDir => {}
            _ => {
                return Err(SourceError::WrongSnapshot(format!(
                    "the base backup holds an unsafe path {}",
                    p.display()
                )))
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(SourceError::WrongSnapshot(
            "the base backup holds an empty path".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_parse() {
        let b = "21 path=base/1/12345\n13 mtime=1.5\n";
        assert_eq!(
            pax_records(b.as_bytes()),
            vec![
                ("path".to_string(), "base/1/12345".to_string()),
                ("mtime".to_string(), "1.5".to_string())
            ]
        );
        assert!(pax_records(b"garbage").is_empty());
    }

    #[test]
    fn unsafe_paths_are_refused() {
        assert_eq!(
            safe_relative(Path::new("./base/1")).unwrap(),
            PathBuf::from("base/1")
        );
        for bad in ["../etc", "/etc/passwd", "a/../../b", ""] {
            assert!(safe_relative(Path::new(bad)).is_err(), "{bad}");
        }
    }
}
