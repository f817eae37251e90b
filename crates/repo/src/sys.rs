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
