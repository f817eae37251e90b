//! Extended attributes: read from an entry at backup (never following a
//! symlink), written back at restore.
//!
//! Written against libc (already a dependency) rather than the `xattr`
//! crate: four system calls, and the crate would add `rustix` to the build.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::sys::{c_path, At};
use crate::tree::{FileName, Xattr};

/// Whether an error means the file system keeps no extended attributes.
fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::ENOSYS))
}

/// Runs a `*listxattr`/`*getxattr` style call until its answer fits: a
/// small stack buffer first (nearly every entry has no attributes at all,
/// which costs one call), then the size the call asks for.
fn fill(call: impl Fn(*mut libc::c_void, usize) -> isize) -> io::Result<Vec<u8>> {
    let mut small = [0u8; 512];
    let n = call(small.as_mut_ptr().cast(), small.len());
    if n >= 0 {
        return Ok(small[..n as usize].to_vec());
    }
    loop {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) {
            return Err(e);
        }
        let need = call(std::ptr::null_mut(), 0);
        if need < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; need as usize];
        let n = call(buf.as_mut_ptr().cast(), buf.len());
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf);
        }
        // It grew in between: ask again.
    }
}

/// The extended attributes of the entry at `path` (a symlink's own),
/// sorted by name. None where the file system keeps none.
pub(crate) fn read(path: &Path) -> io::Result<Vec<Xattr>> {
    let c = c_path(path)?;
    // SAFETY: `c` is NUL-terminated; `buf` is valid for `len` bytes (or null with 0).
    let names = match fill(|buf, len| unsafe { libc::llistxattr(c.as_ptr(), buf.cast(), len) }) {
        Ok(n) => n,
        Err(e) if unsupported(&e) => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let mut out = vec![];
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let c_name = CString::new(name).map_err(|_| io::Error::other("attribute name with NUL"))?;
        // SAFETY: as above.
        match fill(|buf, len| unsafe { libc::lgetxattr(c.as_ptr(), c_name.as_ptr(), buf, len) }) {
            Ok(value) => out.push(Xattr {
                name: FileName(name.to_vec()),
                value,
            }),
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {} // removed meanwhile
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("extended attribute {}: {e}", String::from_utf8_lossy(name)),
                ))
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Sets `xattrs` on the entry at `at`. Without root, only the `user.`
/// namespace is attempted: the others (`security.`, `trusted.`, ACLs of
/// files one does not own) are root's, as owners are.
pub(crate) fn write(at: &At<'_>, xattrs: &[Xattr], root: bool) -> io::Result<()> {
    let path = match at {
        At::Path(p) => Some(c_path(p)?),
        At::File(_) => None,
    };
    for x in xattrs
        .iter()
        .filter(|x| root || x.name.0.starts_with(b"user."))
    {
        let name = CString::new(x.name.0.clone())
            .map_err(|_| io::Error::other("attribute name with NUL"))?;
        let value = x.value.as_ptr().cast();
        let rc = match (at, &path) {
            // SAFETY: open descriptor, NUL-terminated name, value valid for its length.
            (At::File(f), _) => unsafe {
                libc::fsetxattr(f.as_raw_fd(), name.as_ptr(), value, x.value.len(), 0)
            },
            // SAFETY: NUL-terminated path and name, value valid for its length.
            (At::Path(_), Some(p)) => unsafe {
                libc::lsetxattr(p.as_ptr(), name.as_ptr(), value, x.value.len(), 0)
            },
            (At::Path(_), None) => unreachable!("a path was converted above"),
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("extended attribute {}: {e}", x.name.display()),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_through_a_file_and_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        assert_eq!(read(&f).unwrap(), vec![], "none yet");
        let long = vec![0xabu8; 3000]; // beyond the first buffer
        let attrs = vec![
            Xattr {
                name: FileName::from("user.a"),
                value: b"short".to_vec(),
            },
            Xattr {
                name: FileName::from("user.b-long-binary"),
                value: long,
            },
        ];
        let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
        write(&At::File(&file), &attrs, false).unwrap();
        assert_eq!(read(&f).unwrap(), attrs);
        let d = dir.path().join("d");
        std::fs::create_dir(&d).unwrap();
        write(&At::Path(&d), &attrs[..1], false).unwrap();
        assert_eq!(read(&d).unwrap(), attrs[..1]);
    }

    #[test]
    fn a_symlinks_target_is_never_read_or_written() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"x").unwrap();
        let one = [Xattr {
            name: FileName::from("user.on-target"),
            value: b"v".to_vec(),
        }];
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&target)
            .unwrap();
        write(&At::File(&file), &one, false).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(read(&link).unwrap(), vec![], "the link's own: none");
        // user.* attributes are not allowed on symlinks: refused, target untouched.
        let other = [Xattr {
            name: FileName::from("user.other"),
            value: b"w".to_vec(),
        }];
        assert!(write(&At::Path(&link), &other, false).is_err());
        assert_eq!(read(&target).unwrap(), one);
    }
}
