//! Sizing a backup's source ahead of the backup, so progress can show a
//! total and an ETA (restic does the same).
//!
//! The scan runs on its own thread beside the backup, with the same
//! excludes, and reports what it finds in batches through
//! [`Progress::add_total`]. It is best effort: an entry it cannot read is
//! skipped (the backup itself reports it), and it stops when told to.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::excludes::Excludes;
use crate::progress::Progress;

/// Report the total in steps of this many bytes (and at the end).
const REPORT_EVERY: u64 = 64 << 20;

/// What a scan found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanTotals {
    /// Regular files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Walks `paths` (absolute), adding the size of every regular file that the
/// excludes leave in to `progress`'s total. Returns early, with what it had
/// counted, once `stop` is set.
pub fn scan(
    paths: &[PathBuf],
    excludes: &Excludes,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> ScanTotals {
    let mut totals = ScanTotals::default();
    let mut unreported = 0u64;
    let mut unreported_files = 0u64;
    let mut count = |len: u64, totals: &mut ScanTotals| {
        totals.files += 1;
        totals.bytes += len;
        unreported += len;
        unreported_files += 1;
        if unreported >= REPORT_EVERY || unreported_files >= 1000 {
            progress.add_total(std::mem::take(&mut unreported));
            progress.add_total_files(std::mem::take(&mut unreported_files));
        }
    };
    let mut dirs = vec![];
    for p in paths {
        match fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => dirs.push(p.clone()),
            Ok(m) if m.is_file() => count(m.len(), &mut totals),
            _ => {}
        }
    }
    while let Some(dir) = dirs.pop() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let path = e.path();
            // `DirEntry::metadata` does not follow symlinks.
            let meta = e.metadata();
            let left_out = match &meta {
                Ok(m) => excludes.excludes(&path, m),
                Err(_) => excludes.excludes_name(&path),
            };
            if left_out {
                continue;
            }
            match meta {
                Ok(m) if m.is_dir() => dirs.push(path),
                Ok(m) if m.is_file() => count(m.len(), &mut totals),
                _ => {}
            }
        }
    }
    progress.add_total(unreported);
    progress.add_total_files(unreported_files);
    if !stop.load(Ordering::Relaxed) {
        progress.total_known();
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[derive(Default)]
    struct Totals(AtomicU64);

    impl Progress for Totals {
        fn add_total(&self, bytes: u64) {
            self.0.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    #[test]
    fn counts_regular_files_the_excludes_leave_in() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("src");
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::create_dir_all(root.join("cache")).unwrap();
        fs::write(root.join("one"), vec![1; 1000]).unwrap();
        fs::write(root.join("a/b/two"), vec![2; 70_000]).unwrap();
        fs::write(root.join("a/skip.tmp"), vec![3; 5000]).unwrap();
        fs::write(root.join("cache/big"), vec![4; 9000]).unwrap();
        std::os::unix::fs::symlink("one", root.join("link")).unwrap();
        let single = dir.path().join("single");
        fs::write(&single, vec![5; 10]).unwrap();

        let excludes = Excludes::new(
            &crate::excludes::ExcludeOptions {
                patterns: vec!["*.tmp".into(), "cache".into()],
                ..Default::default()
            },
            &[],
        )
        .unwrap();
        let progress = Totals::default();
        let found = scan(
            &[root, single],
            &excludes,
            &progress,
            &AtomicBool::new(false),
        );
        assert_eq!(
            found,
            ScanTotals {
                files: 3,
                bytes: 71_010
            }
        );
        assert_eq!(progress.0.load(Ordering::Relaxed), 71_010);
    }

    #[test]
    fn a_stopped_scan_ends_without_walking() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("d/f"), b"x").unwrap();
        let found = scan(
            &[dir.path().to_path_buf()],
            &Excludes::none(),
            &Totals::default(),
            &AtomicBool::new(true),
        );
        assert_eq!(found, ScanTotals::default());
    }
}
