//! What the modules that touch restored entries by descriptor or by path
//! share (`metadata` sets owners, modes and times; `xattr` reads and writes
//! extended attributes): the target of a call and the C form of a path.
//! Here so neither module depends on the other.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Where the entry is: an open regular file, or a path (never followed if it
/// is a symlink).
pub(crate) enum At<'a> {
    /// A regular file open for writing.
    File(&'a File),
    /// Any entry, by path.
    Path(&'a Path),
}

/// A NUL-terminated copy of `path` for system calls.
pub(crate) fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::other("path contains NUL"))
}

/// Asks the kernel to back the spare capacity of a large buffer with huge
/// pages (Linux `MADV_HUGEPAGE`; transparent huge pages are often in
/// `madvise` mode): filling 16 MiB then takes 8 page faults, not 4096. A
/// hint only: refused or unsupported, nothing changes.
pub(crate) fn advise_huge_pages(buf: &mut Vec<u8>) {
    const HUGE: usize = 2 << 20;
    if buf.capacity() < 2 * HUGE {
        return;
    }
    let start = buf.as_mut_ptr() as usize;
    let from = start.next_multiple_of(HUGE);
    let to = (start + buf.capacity()) / HUGE * HUGE;
    if to > from {
        // SAFETY: [from, to) lies inside the Vec's allocation, which
        // outlives the call; madvise reads no memory and changes no content
        // (MADV_HUGEPAGE only changes how untouched pages are backed).
        unsafe {
            libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
        }
    }
}
