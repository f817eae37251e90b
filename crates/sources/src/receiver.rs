//! The receiver a log stream drives (`pg_receivewal` for `wal stream`,
//! `mariadb-binlog` for `binlog stream`), kept running: restarted (at most
//! once a second) whenever it ends — a lost connection, a restarted server
//! — while the stream's pass over its spool runs every quarter second, and
//! once more after the receiver is stopped, so what it wrote last is
//! stored before the stream returns.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Result, SourceError};
use crate::producer::{die_with_parent, StderrTail};

/// What a stream reports after each upload.
#[derive(Debug, Clone)]
pub struct StreamStatus {
    /// The file (WAL segment, binary log) just made durable in the repository.
    pub file: String,
    /// Whether it is still being written (stored as a partial).
    pub partial: bool,
    /// How long since it last changed in the spool.
    pub lag: Duration,
}

/// Runs the receiver `command` makes until `stop` is set, with `pass`
/// every quarter second. `fail` words an error of the receiver's own.
pub fn supervise(
    program: &str,
    stop: &AtomicBool,
    mut command: impl FnMut() -> Result<Command>,
    fail: impl Fn(String) -> SourceError,
    mut pass: impl FnMut() -> Result<()>,
) -> Result<()> {
    let mut child: Option<(Child, StderrTail)> = None;
    let mut restarted = Instant::now() - Duration::from_secs(10);
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if let Some((c, said)) = child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                let words = said.finish();
                tracing::warn!(
                    "{program} ended ({status}): {}; reconnecting",
                    words.trim().lines().last().unwrap_or("")
                );
                child = None;
            }
        }
        if child.is_none() && !stopping && restarted.elapsed() >= Duration::from_secs(1) {
            restarted = Instant::now();
            let mut cmd = command()?;
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            die_with_parent(&mut cmd);
            let mut c = cmd
                .spawn()
                .map_err(|e| fail(lifeboat_repo::error::io_words(&e)))?;
            let said = StderrTail::spawn(c.stderr.take().ok_or_else(|| fail("no stderr".into()))?);
            child = Some((c, said));
        }
        pass()?;
        if stopping {
            if let Some((mut c, _)) = child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            return pass();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
