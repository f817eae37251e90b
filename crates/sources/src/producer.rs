//! A program whose standard output is a backup's stream (pg_dump, an
//! exporter command): its end is reported only once it has exited
//! successfully, so a producer that fails or is killed fails the backup
//! and no snapshot is written.

use std::io::{self, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Result, SourceError};
use lifeboat_repo::archiver::SourceFailed;

/// How much of a producer's stderr is kept for its error message.
const STDERR_KEPT: usize = 8 * 1024;

/// A running producer and its output.
pub struct Producer {
    program: String,
    target: String,
    child: Child,
    stdout: ChildStdout,
    stderr: Option<StderrTail>,
    /// Where the kept stderr goes once the producer exited 0.
    said: Option<Arc<Mutex<String>>>,
}

/// The last [`STDERR_KEPT`] bytes of a child's stderr, read on a thread
/// (a full pipe would block the child).
pub struct StderrTail {
    kept: Arc<Mutex<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
}

impl StderrTail {
    /// Starts reading `pipe`.
    pub fn spawn(pipe: impl Read + Send + 'static) -> StderrTail {
        StderrTail::spawn_echoing(pipe, false)
    }

    /// Starts reading `pipe`; with `echo`, what it reads is also written
    /// to our stderr as it comes (a command the user runs through us).
    pub fn spawn_echoing(mut pipe: impl Read + Send + 'static, echo: bool) -> StderrTail {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let k = kept.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if echo {
                    let _ = std::io::Write::write_all(&mut std::io::stderr(), &buf[..n]);
                }
                let mut k = k.lock().unwrap_or_else(|e| e.into_inner());
                k.extend_from_slice(&buf[..n]);
                if k.len() > 2 * STDERR_KEPT {
                    let cut = k.len() - STDERR_KEPT;
                    k.drain(..cut);
                }
            }
        });
        StderrTail {
            kept,
            thread: Some(thread),
        }
    }

    /// What was kept, once the pipe has closed: its last lines, trimmed.
    pub fn finish(&mut self) -> String {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let k = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let start = k.len().saturating_sub(STDERR_KEPT);
        String::from_utf8_lossy(&k[start..]).trim().to_string()
    }
}

impl Producer {
    /// Starts `cmd` with its stdout piped to us. `program` and `target`
    /// name it in errors (never its arguments: they may hold secrets).
    /// With `capture_stderr`, its stderr is kept for the error message;
    /// otherwise it goes to ours.
    pub fn spawn(
        cmd: Command,
        program: &str,
        target: &str,
        capture_stderr: bool,
    ) -> Result<Producer> {
        Producer::start(cmd, program, target, capture_stderr, false)
    }

    fn start(
        mut cmd: Command,
        program: &str,
        target: &str,
        capture_stderr: bool,
        echo: bool,
    ) -> Result<Producer> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        cmd.stderr(if capture_stderr {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
        let mut child = cmd.spawn().map_err(|e| SourceError::Tool {
            program: program.to_string(),
            target: target.to_string(),
            message: format!("cannot run it: {}", lifeboat_repo::error::io_words(&e)),
        })?;
        let stdout = child.stdout.take().ok_or_else(|| SourceError::Tool {
            program: program.to_string(),
            target: target.to_string(),
            message: "no output pipe".into(),
        })?;
        widen_pipe(&stdout);
        let stderr = child
            .stderr
            .take()
            .map(|e| StderrTail::spawn_echoing(e, echo));
        Ok(Producer {
            program: program.to_string(),
            target: target.to_string(),
            child,
            stdout,
            stderr,
            said: None,
        })
    }

    /// Like [`Producer::spawn`] with its stderr both kept and shown on ours
    /// as it comes.
    pub fn spawn_echoing(cmd: Command, program: &str, target: &str) -> Result<Producer> {
        Producer::start(cmd, program, target, true, true)
    }

    /// Where the kept stderr will be once the producer has exited 0 (its
    /// last lines, trimmed; a backup records them).
    pub fn stderr_on_success(&mut self) -> Arc<Mutex<String>> {
        self.said.get_or_insert_with(Default::default).clone()
    }

    /// The error of a producer that exited with `status`.
    fn failed(&mut self, status: std::process::ExitStatus) -> SourceError {
        let said = self
            .stderr
            .as_mut()
            .map(StderrTail::finish)
            .unwrap_or_default();
        SourceError::Tool {
            program: self.program.clone(),
            target: self.target.clone(),
            message: if said.is_empty() {
                format!("{status}; no snapshot was written")
            } else {
                format!("{said} ({status}); no snapshot was written")
            },
        }
    }
}

impl Drop for Producer {
    /// A backup that stops early (a full disk, Ctrl-C) leaves no producer behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Read for Producer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let status = self.child.wait()?;
            if !status.success() {
                return Err(SourceFailed::io(self.failed(status).to_string()));
            }
            if let (Some(slot), Some(tail)) = (&self.said, self.stderr.as_mut()) {
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = tail.finish();
            }
        }
        Ok(n)
    }
}

/// Gives the stored file `node` to `cmd` on its standard input (its
/// stdout is the caller's to set); its stderr is kept for the error, and
/// shown on ours as it comes with `echo`. A command that cannot start or
/// exits non-zero is a [`SourceError::Tool`] in its own words; once it
/// exited 0, the feed's own result: the bytes given, or why not all were.
pub fn feed_stored(
    repo: &lifeboat_repo::IndexedRepository,
    node: &lifeboat_repo::tree::Node,
    cmd: Command,
    program: &str,
    target: &str,
    echo: bool,
) -> Result<std::result::Result<u64, lifeboat_repo::RepoError>> {
    feed_stored_through(repo, node, cmd, program, target, echo, |w| w)
}

/// [`feed_stored`] through a writer `through` wraps around the command's
/// stdin (a filter of what it is given); dropping it closes the stdin.
pub fn feed_stored_through<W: std::io::Write>(
    repo: &lifeboat_repo::IndexedRepository,
    node: &lifeboat_repo::tree::Node,
    mut cmd: Command,
    program: &str,
    target: &str,
    echo: bool,
    through: impl FnOnce(std::process::ChildStdin) -> W,
) -> Result<std::result::Result<u64, lifeboat_repo::RepoError>> {
    let tool = |message: String| SourceError::Tool {
        program: program.to_string(),
        target: target.to_string(),
        message,
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            tool(format!(
                "cannot run it: {}",
                lifeboat_repo::error::io_words(&e)
            ))
        })?;
    let mut said = StderrTail::spawn_echoing(child.stderr.take().expect("piped"), echo);
    let mut sink = through(child.stdin.take().expect("piped"));
    let fed = lifeboat_repo::browse::dump(repo, node, &mut sink).and_then(|n| {
        sink.flush()
            .map_err(|e| lifeboat_repo::RepoError::io("write to", program, e))?;
        Ok(n)
    });
    drop(sink);
    let status = child
        .wait()
        .map_err(|e| tool(lifeboat_repo::error::io_words(&e)))?;
    let words = said.finish();
    let words = words.lines().last().unwrap_or("");
    if !status.success() {
        return Err(tool(if words.is_empty() {
            format!("{status}")
        } else {
            format!("{words} ({status})")
        }));
    }
    Ok(fed)
}

/// A receiver a stream drives (`pg_receivewal`, `mariadb-binlog`) must not
/// outlive it: an interrupted stream exits at once, and so does its child.
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only this process.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

/// Grows a pipe we read from to the system's largest pipe size
/// (`/proc/sys/fs/pipe-max-size`, 1 MiB by default) from the 64 KiB it
/// starts with: a producer such as `mariadb-dump` writes many small pieces,
/// and with the small pipe it and the reader wake each other for every
/// one (measured: a 583 MiB dump piped into a backup in 6.4 s with 64 KiB,
/// 5.1 s with 1 MiB). Not a pipe, or not allowed: left as it is.
pub fn widen_pipe(fd: &impl std::os::fd::AsRawFd) {
    let max = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse::<libc::c_int>().ok())
        .unwrap_or(1 << 20);
    // SAFETY: F_SETPIPE_SZ on a descriptor we own; failure is harmless.
    unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, max);
    }
}
