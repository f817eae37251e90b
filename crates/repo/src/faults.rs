//! Named crash points for fault tests.
//!
//! When the environment variable `LIFEBOAT_CRASH_AT` equals a point's name,
//! the process sends itself SIGKILL there: exactly what `kill -9` at that
//! moment does (no destructor, no flush), but at a chosen place instead of a
//! lucky one. The check costs one comparison; the variable is read once.

use std::sync::OnceLock;

/// Kills the process with SIGKILL if `LIFEBOAT_CRASH_AT` is `name`.
pub fn crash_point(name: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    if AT
        .get_or_init(|| std::env::var("LIFEBOAT_CRASH_AT").ok())
        .as_deref()
        == Some(name)
    {
        // SAFETY: getpid and kill have no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
