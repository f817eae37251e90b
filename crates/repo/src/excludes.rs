//! What a backup leaves out: patterns (case-sensitive or not), directories
//! marked by a file (`--exclude-if-present`, cache directories tagged as in
//! <https://bford.info/cachedir/>), files larger than a size, and other file
//! systems. One type serves the backup's walker and the scan that sizes
//! the source, so both leave out the same entries.

use std::collections::HashSet;
use std::fs::{self, Metadata};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::pattern::Patterns;

/// The first bytes of a `CACHEDIR.TAG` file that marks a cache directory.
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// What to leave out, as the user gives it.
#[derive(Debug, Clone, Default)]
pub struct ExcludeOptions {
    /// Patterns ([`crate::pattern`]).
    pub patterns: Vec<String>,
    /// Patterns matched ignoring case.
    pub ipatterns: Vec<String>,
    /// Leave out a directory that holds a file of one of these names.
    pub if_present: Vec<String>,
    /// Leave out directories tagged with a valid `CACHEDIR.TAG`.
    pub caches: bool,
    /// Leave out files larger than this many bytes.
    pub larger_than: Option<u64>,
    /// Stay on the file systems of the backup paths.
    pub one_file_system: bool,
}

/// Compiled [`ExcludeOptions`].
#[derive(Debug, Clone)]
pub struct Excludes {
    patterns: Patterns,
    ipatterns: Patterns,
    if_present: Vec<String>,
    caches: bool,
    larger_than: Option<u64>,
    /// The devices of the backup paths, with `one_file_system`.
    devices: Option<HashSet<u64>>,
}

impl Excludes {
    /// Compiles the options for a backup of `paths` (absolute).
    pub fn new(opts: &ExcludeOptions, paths: &[PathBuf]) -> Result<Excludes> {
        let devices = opts.one_file_system.then(|| {
            paths
                .iter()
                .filter_map(|p| fs::symlink_metadata(p).ok())
                .map(|m| m.dev())
                .collect()
        });
        Ok(Excludes {
            patterns: Patterns::new(&opts.patterns, "exclude")?,
            ipatterns: Patterns::new_case_insensitive(&opts.ipatterns, "iexclude")?,
            if_present: opts.if_present.clone(),
            caches: opts.caches,
            larger_than: opts.larger_than,
            devices,
        })
    }

    /// Nothing left out.
    pub fn none() -> Excludes {
        // Empty pattern lists always compile.
        Excludes::new(&ExcludeOptions::default(), &[]).unwrap_or_else(|_| unreachable!())
    }

    /// Whether the entry at `path`, whose metadata could not be read, is
    /// left out by its name alone (so its error is not worth a warning).
    pub fn excludes_name(&self, path: &Path) -> bool {
        self.patterns.matches(path, false) || self.ipatterns.matches(path, false)
    }

    /// Whether the entry at `path` is left out.
    pub fn excludes(&self, path: &Path, meta: &Metadata) -> bool {
        let is_dir = meta.is_dir();
        if self.patterns.matches(path, is_dir) || self.ipatterns.matches(path, is_dir) {
            return true;
        }
        if meta.is_file() && self.larger_than.is_some_and(|max| meta.len() > max) {
            return true;
        }
        if let Some(devs) = &self.devices {
            if !devs.contains(&meta.dev()) {
                return true;
            }
        }
        if is_dir {
            if self.if_present.iter().any(|n| path.join(n).exists()) {
                return true;
            }
            if self.caches && is_tagged_cache(path) {
                return true;
            }
        }
        false
    }
}

fn is_tagged_cache(dir: &Path) -> bool {
    let mut head = [0u8; CACHEDIR_SIGNATURE.len()];
    fs::File::open(dir.join("CACHEDIR.TAG"))
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == CACHEDIR_SIGNATURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_exclusion() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["cache", "fake-cache", "marked", "plain"] {
            fs::create_dir(root.join(d)).unwrap();
        }
        let mut sig = CACHEDIR_SIGNATURE.to_vec();
        sig.extend_from_slice(b"\n# a cache\n");
        fs::write(root.join("cache/CACHEDIR.TAG"), &sig).unwrap();
        fs::write(root.join("fake-cache/CACHEDIR.TAG"), b"Signature: wrong").unwrap();
        fs::write(root.join("marked/.nobackup"), b"").unwrap();
        fs::write(root.join("big"), vec![0; 2000]).unwrap();
        fs::write(root.join("small"), vec![0; 10]).unwrap();
        fs::write(root.join("Photo.JPG"), b"x").unwrap();
        let ex = Excludes::new(
            &ExcludeOptions {
                patterns: vec!["*.tmp".into()],
                ipatterns: vec!["*.jpg".into()],
                if_present: vec![".nobackup".into()],
                caches: true,
                larger_than: Some(1000),
                one_file_system: true,
            },
            &[root.to_path_buf()],
        )
        .unwrap();
        let out = |name: &str| {
            let p = root.join(name);
            ex.excludes(&p, &fs::symlink_metadata(&p).unwrap())
        };
        assert!(out("cache"));
        assert!(!out("fake-cache"), "only a valid signature marks a cache");
        assert!(out("marked"));
        assert!(!out("plain"));
        assert!(out("big"));
        assert!(!out("small"));
        assert!(out("Photo.JPG"), "case-insensitive pattern");
        assert!(ex.excludes_name(&root.join("x.tmp")));
        // /proc is another file system than the temporary directory.
        let proc = Path::new("/proc");
        assert!(ex.excludes(proc, &fs::symlink_metadata(proc).unwrap()));
        assert!(!Excludes::none().excludes(proc, &fs::symlink_metadata(proc).unwrap()));
    }
}
