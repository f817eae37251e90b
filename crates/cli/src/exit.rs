//! Exit codes: the one place they are defined. Stable, because cron jobs
//! and scripts depend on them.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | failure: nothing or not everything was done (a restore with damaged files, a check that found errors, a wrong password, a damaged repository, a full disk …) |
//! | 2 | bad usage or configuration: unknown flag, malformed argument, no repository at the path, nothing matches |
//! | 3 | finished, but some source data could not be read (listed in the output); the snapshot was written |
//! | 130 | interrupted (Ctrl-C, SIGTERM, SIGHUP): what it means is printed; this run's partial objects are removed |

/// Success.
pub const SUCCESS: u8 = 0;
/// Failure.
pub const FAILURE: u8 = 1;
/// Bad usage or configuration.
pub const USAGE: u8 = 2;
/// Finished with unreadable source data.
pub const PARTIAL: u8 = 3;
/// Interrupted by Ctrl-C, SIGTERM or SIGHUP (128 + SIGINT, as shells report).
pub const INTERRUPTED: u8 = 130;
