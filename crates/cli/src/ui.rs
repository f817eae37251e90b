//! Terminal output: progress bars (stderr, TTY only) and the human or JSON
//! rendering of results.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
        pb.set_style(style(Shape::Spinner));
        pb.enable_steady_tick(Duration::from_millis(200));
        Bar::new(pb, label)
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

/// The three shapes a progress line takes.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Bytes so far, no total yet.
    Spinner,
    /// A known total: a bar.
    Bar,
    /// A total that is still growing (the scan is sizing the source).
    Growing,
}

/// The widest line a progress line's fixed fields may take: the file
/// name (`{wide_msg}`) gets what is left, and a line wider than the
/// terminal would wrap and leave a copy of itself on every redraw.
fn template(shape: Shape, columns: usize) -> &'static str {
    match shape {
        Shape::Spinner if columns >= 70 => {
            "{spinner} {prefix} {bytes} ({binary_bytes_per_sec}) {elapsed} {wide_msg}"
        }
        Shape::Spinner => "{spinner} {prefix} {bytes}",
        Shape::Bar if columns >= 106 => {
            "{prefix} [{bar:20}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {wide_msg}"
        }
        Shape::Bar if columns >= 82 => {
            "{prefix} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {wide_msg}"
        }
        Shape::Bar => "{prefix} {percent}% ETA {eta}",
        Shape::Growing if columns >= 75 => {
            "{spinner} {prefix} {bytes} of {total_bytes}+ ({binary_bytes_per_sec}) {wide_msg}"
        }
        Shape::Growing => "{spinner} {prefix} {bytes}",
    }
}

/// Our terminal's width (stderr's), 80 when it cannot be told.
fn columns() -> usize {
    console::Term::stderr()
        .size_checked()
        .map_or(80, |(_, cols)| usize::from(cols))
}

fn style(shape: Shape) -> ProgressStyle {
    let fallback = match shape {
        Shape::Bar => ProgressStyle::default_bar(),
        _ => ProgressStyle::default_spinner(),
    };
    ProgressStyle::with_template(template(shape, columns()))
        .unwrap_or(fallback)
        .progress_chars("=> ")
}

/// A progress bar that the library drives through [`Progress`]: bytes, and
/// for a backup files done of files found and the file being read.
pub struct Bar {
    pb: ProgressBar,
    files_done: AtomicU64,
    files_total: AtomicU64,
    /// The total is complete (set_total, or the scan finished).
    known: AtomicBool,
    label: String,
}

impl Bar {
    fn new(pb: ProgressBar, label: &str) -> Bar {
        pb.set_prefix(label.to_string());
        Bar {
            pb,
            files_done: AtomicU64::new(0),
            files_total: AtomicU64::new(0),
            known: AtomicBool::new(false),
            label: label.to_string(),
        }
    }

    /// The label with the file counts: `backup 120/5 000 files`.
    fn label_now(&self) -> String {
        let done = self.files_done.load(Ordering::Relaxed);
        let total = self.files_total.load(Ordering::Relaxed);
        match (done, total) {
            (0, 0) => self.label.clone(),
            (d, 0) => format!("{} {d} files", self.label),
            (d, t) => format!("{} {d}/{t} files", self.label),
        }
    }
}

impl Progress for Bar {
    fn set_total(&self, bytes: u64) {
        self.known.store(true, Ordering::Relaxed);
        self.pb.set_style(style(Shape::Bar));
        self.pb.set_length(bytes);
        self.pb.set_position(0);
    }
    fn add_total(&self, bytes: u64) {
        if self.pb.length().is_none() {
            self.pb.set_style(style(Shape::Growing));
            self.pb.set_length(0);
        }
        self.pb.inc_length(bytes);
    }
    fn add(&self, bytes: u64) {
        self.pb.inc(bytes);
        // Never more done than the total: until the scan is complete the
        // total is only what it has found so far.
        if let Some(len) = self.pb.length() {
            if self.pb.position() > len && !self.known.load(Ordering::Relaxed) {
                self.pb.set_length(self.pb.position());
            }
        }
    }
    fn is_shown(&self) -> bool {
        !self.pb.is_hidden()
    }
    fn phase(&self, name: &str) {
        self.pb.set_prefix(name.to_string());
    }
    fn add_total_files(&self, files: u64) {
        self.files_total.fetch_add(files, Ordering::Relaxed);
    }
    fn total_known(&self) {
        self.known.store(true, Ordering::Relaxed);
        self.pb.set_style(style(Shape::Bar));
        let len = self.pb.length().unwrap_or(0).max(self.pb.position());
        self.pb.set_length(len);
    }
    fn file_started(&self, path: &std::path::Path) {
        if !self.pb.is_hidden() {
            self.pb.set_message(path.display().to_string());
        }
    }
    fn file_done(&self) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        if !self.pb.is_hidden() {
            self.pb.set_prefix(self.label_now());
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.pb.finish_and_clear();
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

    /// The widest each field of a template can render (indicatif's human
    /// sizes and durations; our prefix with a million files).
    fn widest(template: &str) -> usize {
        let fields = [
            ("{spinner}", 1),
            ("{prefix}", "backup 1000000/1000000 files".len()),
            ("{bytes}", "1023.99 GiB".len()),
            ("{total_bytes}", "1023.99 GiB".len()),
            ("{binary_bytes_per_sec}", "1023.99 GiB/s".len()),
            ("{elapsed}", "59 minutes".len()),
            ("{eta}", "59 minutes".len()),
            ("{percent}", 3),
            ("{bar:20}", 20),
            ("{wide_msg}", 0),
        ];
        let mut line = template.to_string();
        let mut width = 0;
        for (field, w) in fields {
            width += line.matches(field).count() * w;
            line = line.replace(field, "");
        }
        width + line.chars().count()
    }

    #[test]
    fn a_progress_line_never_wraps_on_a_terminal_48_columns_or_wider() {
        for columns in 48..=200 {
            for shape in [Shape::Spinner, Shape::Bar, Shape::Growing] {
                let t = template(shape, columns);
                assert!(
                    widest(t) <= columns,
                    "{shape:?} at {columns} columns: {t} takes {}",
                    widest(t)
                );
                assert!(ProgressStyle::with_template(t).is_ok(), "{t}");
            }
        }
        assert!(template(Shape::Bar, 120).contains("{bar:20}"));
        assert!(template(Shape::Bar, 90).contains("{total_bytes}"));
    }

    #[test]
    fn a_growing_total_never_shows_more_done_than_found() {
        let bar = Bar::new(ProgressBar::hidden(), "backup");
        bar.add_total(100);
        bar.add(150);
        assert!(bar.pb.length().unwrap() >= bar.pb.position());
        bar.add_total_files(3);
        bar.file_done();
        assert_eq!(bar.label_now(), "backup 1/3 files");
        bar.total_known();
        bar.add_total(0);
        assert_eq!(bar.pb.length(), Some(150));
        let restore = Bar::new(ProgressBar::hidden(), "restore");
        restore.set_total(10);
        assert_eq!(restore.label_now(), "restore");
    }

    #[test]
    fn counts_are_singular_for_one() {
        assert_eq!(count(1u64, "pack"), "1 pack");
        assert_eq!(count(0u64, "pack"), "0 packs");
        assert_eq!(count(2u64, "entry"), "2 entries");
        assert_eq!(count(3u64, "key"), "3 keys");
        assert_eq!(count(2u64, "match"), "2 matches");
    }
}
