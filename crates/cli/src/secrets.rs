//! Where passwords come from: `LIFEBOAT_PASSWORD`, `LIFEBOAT_PASSWORD_FILE`
//! (or `--password-file`), else a prompt on the terminal. Never from a flag
//! value; never printed or logged.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// A password that is wiped from memory when dropped.
pub struct Secret(Vec<u8>);

impl Secret {
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

fn from_file(path: &Path) -> Result<Secret> {
    let mut s = std::fs::read(path)
        .with_context(|| format!("cannot read password file {}", path.display()))?;
    while s.last().is_some_and(|&c| c == b'\n' || c == b'\r') {
        s.pop();
    }
    Ok(Secret(s))
}

/// Reads a password from `VAR`, `VAR_FILE`, the given file, or a prompt.
/// `confirm` asks twice (for new passwords).
pub fn read(var: &str, file_flag: Option<&Path>, what: &str, confirm: bool) -> Result<Secret> {
    if let Ok(p) = std::env::var(var) {
        return Ok(Secret(p.into_bytes()));
    }
    if let Some(f) = file_flag {
        return from_file(f);
    }
    if let Ok(f) = std::env::var(format!("{var}_FILE")) {
        return from_file(Path::new(&f));
    }
    if !std::io::stdin().is_terminal() {
        bail!(crate::UsageError(format!(
            "no {what}: set {var}_FILE (or {var}) or run on a terminal to be prompted"
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
    if p.is_empty() {
        bail!(crate::UsageError("empty password".into()));
    }
    Ok(Secret(p.into_bytes()))
}
