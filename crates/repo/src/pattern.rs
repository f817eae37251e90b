//! Path patterns, one meaning for every option that takes them (`backup
//! --exclude`, `--exclude-file`, `restore --include`), as in gitignore:
//!
//! - `*` and `?` match within one path component, never across `/`;
//!   `**` matches across components (`/srv/**/*.log`);
//! - a pattern with no `/` but a trailing one (`*.tmp`, `node_modules`)
//!   matches a name at any depth;
//! - a pattern with a `/` at its start or in its middle (`/var/cache`,
//!   `app/uploads`) is anchored at the root of the file system, which is
//!   also the root of every snapshot (paths keep their absolute place);
//! - a trailing `/` (`cache/`) matches directories only;
//! - a matched directory stands for everything below it.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{RepoError, Result};

/// Compiled patterns.
#[derive(Debug, Clone)]
pub struct Patterns {
    /// Anchored: matched against the whole absolute path.
    by_path: [GlobSet; 2],
    /// Unanchored: matched against the last component.
    by_name: [GlobSet; 2],
    empty: bool,
}

/// Index into the pairs above: patterns for any entry, for directories only.
const ANY: usize = 0;
const DIRS: usize = 1;

impl Patterns {
    /// Compiles `patterns`; `what` names the option in errors
    /// (`exclude`, `include`). A bad pattern is a usage error naming it.
    pub fn new(patterns: &[String], what: &str) -> Result<Patterns> {
        Patterns::build(patterns, what, false)
    }

    /// Like [`Patterns::new`], ignoring case (`--iexclude`).
    pub fn new_case_insensitive(patterns: &[String], what: &str) -> Result<Patterns> {
        Patterns::build(patterns, what, true)
    }

    fn build(patterns: &[String], what: &str, case_insensitive: bool) -> Result<Patterns> {
        let mut by_path = [GlobSetBuilder::new(), GlobSetBuilder::new()];
        let mut by_name = [GlobSetBuilder::new(), GlobSetBuilder::new()];
        for p in patterns {
            let bad = |e: &dyn std::fmt::Display| {
                RepoError::Usage(format!("bad {what} pattern {p:?}: {e}"))
            };
            let (body, kind) = match p.strip_suffix('/') {
                Some(b) => (b, DIRS),
                None => (p.as_str(), ANY),
            };
            if body.is_empty() || body == "/" {
                return Err(bad(&"it matches nothing (use / alone to mean everything)"));
            }
            let glob = |g: &str| {
                GlobBuilder::new(g)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .case_insensitive(case_insensitive)
                    .build()
                    .map_err(|e| bad(&e))
            };
            if body.contains('/') {
                let anchored = if body.starts_with('/') || body.starts_with("**") {
                    body.to_string()
                } else {
                    format!("/{body}")
                };
                by_path[kind].add(glob(&anchored)?);
            } else {
                by_name[kind].add(glob(body)?);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| RepoError::Usage(format!("{what} patterns: {e}")))
        };
        let [pa, pd] = by_path;
        let [na, nd] = by_name;
        Ok(Patterns {
            by_path: [build(pa)?, build(pd)?],
            by_name: [build(na)?, build(nd)?],
            empty: patterns.is_empty(),
        })
    }

    /// Whether no pattern was given.
    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// Whether the entry at absolute `path` matches itself (not counting a
    /// matched parent directory: callers walking a tree carry that down).
    pub fn matches(&self, path: &Path, is_dir: bool) -> bool {
        let hit = |k: usize| {
            self.by_path[k].is_match(path)
                || path
                    .file_name()
                    .is_some_and(|n| self.by_name[k].is_match(n))
        };
        hit(ANY) || (is_dir && hit(DIRS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(list: &[&str]) -> Patterns {
        Patterns::new(
            &list.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "test",
        )
        .unwrap()
    }

    #[test]
    fn star_stays_within_one_component_and_double_star_crosses() {
        let e = p(&["/data/*.jpg"]);
        assert!(e.matches(Path::new("/data/a.jpg"), false));
        assert!(!e.matches(Path::new("/data/x/y/z/a.jpg"), false));
        let e = p(&["/data/**/*.jpg"]);
        assert!(e.matches(Path::new("/data/a.jpg"), false));
        assert!(e.matches(Path::new("/data/x/y/a.jpg"), false));
        let e = p(&["app/doc/*.gz"]);
        assert!(e.matches(Path::new("/app/doc/a.gz"), false));
        assert!(!e.matches(Path::new("/app/doc/sub/a.gz"), false));
    }

    #[test]
    fn bare_names_match_at_any_depth_and_slashes_anchor() {
        let e = p(&["node_modules", "*.tmp"]);
        assert!(e.matches(Path::new("/a/b/node_modules"), true));
        assert!(e.matches(Path::new("/x.tmp"), false));
        assert!(e.matches(Path::new("/a/b/c/x.tmp"), false));
        assert!(!e.matches(Path::new("/a/tmp"), false));
        let e = p(&["cache/x"]);
        assert!(e.matches(Path::new("/cache/x"), false));
        assert!(!e.matches(Path::new("/srv/cache/x"), false));
    }

    #[test]
    fn a_trailing_slash_matches_directories_only() {
        let e = p(&["cache/", "/srv/logs/"]);
        assert!(e.matches(Path::new("/a/cache"), true));
        assert!(!e.matches(Path::new("/a/cache"), false));
        assert!(e.matches(Path::new("/srv/logs"), true));
        assert!(!e.matches(Path::new("/srv/logs"), false));
    }

    #[test]
    fn bad_patterns_are_usage_errors_naming_them() {
        for bad in ["[", "/", ""] {
            let e = Patterns::new(&[bad.to_string()], "exclude").unwrap_err();
            assert!(e.is_usage(), "{e}");
            assert!(e.to_string().contains("exclude pattern"), "{e}");
        }
    }

    proptest! {
        /// `*` never matches a `/`: a one-star pattern matches exactly the
        /// paths with the same number of components.
        #[test]
        fn a_single_star_never_crosses_a_separator(parts in proptest::collection::vec("[a-z]{1,5}", 1..6), depth in 1usize..6) {
            let pattern = format!("/{}", vec!["*"; depth].join("/"));
            let path = format!("/{}", parts.join("/"));
            let e = p(&[&pattern]);
            prop_assert_eq!(e.matches(Path::new(&path), false), parts.len() == depth);
        }
    }
}
