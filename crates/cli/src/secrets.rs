//! Where passwords come from: `--password-file`, `--password-command`,
//! `LIFEBOAT_PASSWORD`, `LIFEBOAT_PASSWORD_FILE`, `LIFEBOAT_PASSWORD_COMMAND`,
//! else a prompt on the terminal. Never from a flag value; never printed or
//! logged.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// A password that is wiped from memory when dropped.
pub struct Secret(Vec<u8>);

impl Secret {
    /// Holds `bytes` (wiped when dropped).
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // Volatile so the wipe is not optimised away.
            // SAFETY: b is a valid, aligned &mut u8.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

/// Where a password may come from, besides the environment and a prompt:
/// what the command line gave explicitly.
#[derive(Debug, Default, Clone, Copy)]
pub struct Given<'a> {
    /// `--password-file` (or `--new-password-file`).
    pub file: Option<&'a Path>,
    /// `--password-command`.
    pub command: Option<&'a str>,
}

/// A password file holds the password and at most one line ending, which is
/// not part of it (so `echo pw > file` works, and a password that really
/// ends in a space or a second newline is kept whole).
fn trim_line_ending(mut s: Vec<u8>) -> Vec<u8> {
    if s.last() == Some(&b'\n') {
        s.pop();
        if s.last() == Some(&b'\r') {
            s.pop();
        }
    }
    s
}

fn from_file(path: &Path) -> Result<Secret> {
    let s = std::fs::read(path).map_err(|e| {
        crate::UsageError(format!("cannot read password file {}: {e}", path.display()))
    })?;
    Ok(Secret(trim_line_ending(s)))
}

/// Runs `command` with `sh -c`; its standard output is the password. Its
/// stderr goes to ours (a password manager may ask something there).
fn from_command(command: &str) -> Result<Secret> {
    let out = std::process::Command::new("sh")
        .args(["-c", command])
        .stdin(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| crate::UsageError(format!("cannot run the password command: {e}")))?;
    if !out.status.success() {
        // The command itself is not repeated: it may hold a secret.
        bail!(crate::UsageError(format!(
            "the password command failed ({})",
            out.status
        )));
    }
    Ok(Secret(trim_line_ending(out.stdout)))
}

/// Reads a password. An explicit flag beats the environment: `--…-file`,
/// then `--…-command`, then `VAR`, `VAR_FILE`, `VAR_COMMAND`, then a prompt
/// on a terminal. `confirm` asks twice (for new passwords). An empty
/// password is refused wherever it comes from.
pub fn read(var: &str, given: Given<'_>, what: &str, confirm: bool) -> Result<Secret> {
    let (secret, source) = if let Some(f) = given.file {
        (from_file(f)?, format!("password file {}", f.display()))
    } else if let Some(c) = given.command {
        (from_command(c)?, "the password command".to_string())
    } else if let Ok(p) = std::env::var(var) {
        (Secret(p.into_bytes()), var.to_string())
    } else if let Ok(f) = std::env::var(format!("{var}_FILE")) {
        (
            from_file(Path::new(&f))?,
            format!("password file {f} ({var}_FILE)"),
        )
    } else if let Ok(c) = std::env::var(format!("{var}_COMMAND")) {
        (from_command(&c)?, format!("{var}_COMMAND"))
    } else {
        (prompt(var, what, confirm)?, "the prompt".to_string())
    };
    non_empty(secret, what, &source)
}

/// A password from the one source a plan's region names: its file, its
/// command, or its environment variable (nothing else is tried).
pub fn from_source(given: Given<'_>, var: Option<&str>, what: &str) -> Result<Secret> {
    let (secret, source) = match (given.file, given.command, var) {
        (Some(f), _, _) => (from_file(f)?, format!("password file {}", f.display())),
        (_, Some(c), _) => (from_command(c)?, "the password command".to_string()),
        (_, _, Some(v)) => match std::env::var(v) {
            Ok(p) => (Secret(p.into_bytes()), format!("${v}")),
            Err(_) => bail!(crate::UsageError(format!("${v} ({what}) is not set"))),
        },
        _ => bail!(crate::UsageError(format!("no source for the {what}"))),
    };
    non_empty(secret, what, &source)
}

fn non_empty(secret: Secret, what: &str, source: &str) -> Result<Secret> {
    if secret.0.is_empty() {
        bail!(crate::UsageError(format!(
            "empty {what} from {source}: an empty password protects nothing"
        )));
    }
    Ok(secret)
}

fn prompt(var: &str, what: &str, confirm: bool) -> Result<Secret> {
    if !std::io::stdin().is_terminal() {
        bail!(crate::UsageError(format!(
            "no {what}: set {var}_FILE, {var}_COMMAND (or {var}) or run on a terminal to be prompted"
        )));
    }
    let p = rpassword::prompt_password(format!("enter {what}: ")).context("reading password")?;
    if confirm {
        let again = rpassword::prompt_password(format!("enter {what} again: "))
            .context("reading password")?;
        if again != p {
            bail!(crate::UsageError("the passwords do not match".into()));
        }
    }
    Ok(Secret(p.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_line_ending_is_trimmed() {
        assert_eq!(trim_line_ending(b"pw\n".to_vec()), b"pw");
        assert_eq!(trim_line_ending(b"pw\r\n".to_vec()), b"pw");
        assert_eq!(trim_line_ending(b"pw\n\n".to_vec()), b"pw\n");
        assert_eq!(trim_line_ending(b"pw ".to_vec()), b"pw ");
        assert_eq!(trim_line_ending(b"pw".to_vec()), b"pw");
    }
}
