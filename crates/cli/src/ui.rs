//! Terminal output: progress bars (stderr, TTY only) and the human or JSON
//! rendering of results.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lifeboat_repo::progress::Progress;
use serde::Serialize;

/// How results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// One JSON document on stdout.
    pub json: bool,
    /// No progress bars and no summaries: only problems (and listings,
    /// which are the result itself).
    pub quiet: bool,
}

impl Output {
    /// Prints a result: `value` as JSON, or the `human` text.
    pub fn print<T: Serialize>(
        &self,
        value: &T,
        human: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        if self.json {
            serde_json::to_writer_pretty(&mut out, value)?;
            writeln!(out)?;
        } else {
            let text = human();
            if !text.is_empty() {
                write!(out, "{text}")?;
                if !text.ends_with('\n') {
                    writeln!(out)?;
                }
            }
        }
        out.flush()?;
        Ok(())
    }

    /// Prints the outcome of an action (init, backup, restore, check,
    /// forget, prune, key changes): `value` as JSON; otherwise each of
    /// `problems` as a line on stderr, always (so a `--quiet` job run from
    /// cron says nothing unless something is wrong), and the `summary` on
    /// stdout unless `--quiet`.
    pub fn outcome<T: Serialize>(
        &self,
        value: &T,
        problems: &[String],
        summary: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        if self.json {
            return self.print(value, String::new);
        }
        let mut err = std::io::stderr().lock();
        for p in problems {
            writeln!(err, "{p}")?;
        }
        if self.quiet {
            return Ok(());
        }
        self.print(value, summary)
    }

    /// A progress bar for byte-counted work, hidden unless stderr is a terminal.
    pub fn bar(&self, label: &str) -> Bar {
        let show = !self.json && !self.quiet && std::io::stderr().is_terminal();
        let pb = ProgressBar::with_draw_target(
            None,
            if show {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        pb.set_style(spinner_style());
        pb.set_message(label.to_string());
        pb.enable_steady_tick(Duration::from_millis(200));
        Bar(pb)
    }
}

/// `n` and the noun, singular for one: `count(1, "pack")` is `1 pack`,
/// `count(2, "entry")` is `2 entries`.
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else if let Some(stem) = noun
        .strip_suffix('y')
        .filter(|s| !s.ends_with(['a', 'e', 'o', 'u']))
    {
        format!("{n} {stem}ies")
    } else if noun.ends_with(['s', 'x']) || noun.ends_with("ch") || noun.ends_with("sh") {
        format!("{n} {noun}es")
    } else {
        format!("{n} {noun}s")
    }
}

/// `problems`, closed by the line `closing(count)` when there are any.
pub fn listed(mut problems: Vec<String>, closing: impl FnOnce(usize) -> String) -> Vec<String> {
    if !problems.is_empty() {
        problems.push(closing(problems.len()));
    }
    problems
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} {bytes} ({binary_bytes_per_sec}) {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} ({binary_bytes_per_sec}, ETA {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// A progress bar that the library drives through [`Progress`].
pub struct Bar(ProgressBar);

impl Progress for Bar {
    fn set_total(&self, bytes: u64) {
        self.0.set_style(bar_style());
        self.0.set_length(bytes);
        self.0.set_position(0);
    }
    fn add_total(&self, bytes: u64) {
        if self.0.length().is_none() {
            self.0.set_style(bar_style());
            self.0.set_length(0);
        }
        self.0.inc_length(bytes);
    }
    fn add(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn is_shown(&self) -> bool {
        !self.0.is_hidden()
    }
    fn phase(&self, name: &str) {
        self.0.set_message(name.to_string());
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// `1.5 GiB`-style sizes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Formats a time in the local time zone with its offset
/// (`2026-12-02 05:16:33 +01:00`): every listing shows times this way.
pub fn local_time(t: jiff::Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

/// A text table: each column as wide as its widest cell, two spaces apart;
/// the columns in `right` aligned right (sizes, counts). The last column is
/// not padded.
pub fn table<const N: usize>(header: [&str; N], rows: &[[String; N]], right: &[usize]) -> String {
    let mut width = header.map(|h| h.chars().count());
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut t = String::new();
    let line = |t: &mut String, cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            let pad = width[i].saturating_sub(c.chars().count());
            if right.contains(&i) {
                l.extend(std::iter::repeat_n(' ', pad));
                l.push_str(c);
            } else {
                l.push_str(c);
                if i + 1 < N {
                    l.extend(std::iter::repeat_n(' ', pad));
                }
            }
        }
        t.push_str(l.trim_end());
        t.push('\n');
    };
    line(&mut t, header.to_vec());
    for r in rows {
        line(&mut t, r.iter().map(String::as_str).collect());
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_singular_for_one() {
        assert_eq!(count(1u64, "pack"), "1 pack");
        assert_eq!(count(0u64, "pack"), "0 packs");
        assert_eq!(count(2u64, "entry"), "2 entries");
        assert_eq!(count(3u64, "key"), "3 keys");
        assert_eq!(count(2u64, "match"), "2 matches");
    }
}
