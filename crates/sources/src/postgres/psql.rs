//! A control session with a PostgreSQL server, through `psql`.
//!
//! psql rather than a Rust client: the session must connect exactly as the
//! `pg_dump`/`pg_restore` it works beside (libpq: `~/.pgpass`, service
//! files, `PGSSLMODE`, GSSAPI, multi-host failover), so it is libpq too.
//! Queries go to psql's stdin one at a time, each followed by `\echo` of a
//! marker; its output up to the marker is the result (unaligned, fields
//! split by U+001F). With `ON_ERROR_STOP` a failed query ends psql, and its
//! stderr is the error.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use super::program;
use crate::error::{Result, SourceError};
use crate::producer::StderrTail;
use crate::url::ConnUrl;

const FIELD_SEP: char = '\u{1f}';

/// An open psql session.
pub struct Session {
    target: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr: StderrTail,
    marker: String,
}

impl Session {
    /// Connects to `url` (its database) and proves the connection works.
    pub fn connect(url: &ConnUrl) -> Result<Session> {
        let target = url.to_string();
        let mut child = Command::new(program("psql"))
            .args(["-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1"])
            .arg(format!("--field-separator={FIELD_SEP}"))
            .envs(url.env())
            .env("PGAPPNAME", "lifeboat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| SourceError::Tool {
                program: "psql".into(),
                target: target.clone(),
                message: format!(
                    "cannot run it ({}); install the PostgreSQL client programs",
                    lifeboat_repo::error::io_words(&e)
                ),
            })?;
        let (stdin, stdout, stderr) =
            match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
                (Some(i), Some(o), Some(e)) => (i, o, e),
                _ => {
                    return Err(SourceError::Tool {
                        program: "psql".into(),
                        target,
                        message: "no pipes".into(),
                    })
                }
            };
        let marker = format!("lifeboat-done-{}-{}", std::process::id(), rand_suffix());
        let mut s = Session {
            target,
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            stderr: StderrTail::spawn(stderr),
            marker,
        };
        s.query("SELECT 1")?;
        Ok(s)
    }

    /// Runs one statement; returns its rows, each split into fields.
    pub fn query(&mut self, sql: &str) -> Result<Vec<Vec<String>>> {
        let sent = match self.stdin.as_mut() {
            Some(stdin) => {
                writeln!(stdin, "{sql};\n\\echo {}", self.marker).and_then(|()| stdin.flush())
            }
            None => Err(std::io::Error::other("session closed")),
        };
        if sent.is_err() {
            return Err(self.ended());
        }
        let mut rows = vec![];
        let mut line = String::new();
        loop {
            line.clear();
            match self.stdout.read_line(&mut line) {
                Ok(0) | Err(_) => return Err(self.ended()),
                Ok(_) => {}
            }
            let l = line.trim_end_matches('\n');
            if l == self.marker {
                return Ok(rows);
            }
            rows.push(l.split(FIELD_SEP).map(str::to_string).collect());
        }
    }

    /// Runs a query that returns one value.
    pub fn value(&mut self, sql: &str) -> Result<String> {
        let rows = self.query(sql)?;
        match rows.as_slice() {
            [row] if row.len() == 1 => Ok(row[0].clone()),
            _ => Err(SourceError::Tool {
                program: "psql".into(),
                target: self.target.clone(),
                message: format!("expected one value from {sql:?}, got {} rows", rows.len()),
            }),
        }
    }

    /// Ends the session cleanly.
    pub fn close(mut self) -> Result<()> {
        drop(self.stdin.take());
        match self.child.wait() {
            Ok(s) if s.success() => Ok(()),
            _ => Err(self.ended()),
        }
    }

    /// The error of a session that ended early: psql's own words.
    fn ended(&mut self) -> SourceError {
        drop(self.stdin.take());
        let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
        let said = self.stderr.finish();
        SourceError::Tool {
            program: "psql".into(),
            target: self.target.clone(),
            message: if said.is_empty() {
                status
            } else {
                last_error(&said)
            },
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The useful part of a libpq program's stderr: its lines joined, without
/// the program's `psql: error:` prefix.
pub fn last_error(said: &str) -> String {
    let lines: Vec<&str> = said
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let joined = lines.join("; ");
    for prefix in ["psql: error: ", "pg_dump: error: ", "pg_restore: error: "] {
        if let Some(rest) = joined.strip_prefix(prefix) {
            return rest.to_string();
        }
    }
    joined
}

/// A SQL identifier, quoted.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish()
}
