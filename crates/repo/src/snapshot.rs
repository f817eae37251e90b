//! Snapshot objects: one consistent point of one backup.

use serde::{Deserialize, Serialize};

use crate::id::Id;

/// Snapshot format version.
pub const SNAPSHOT_VERSION: u32 = 1;

/// What a backup did, stored in its snapshot.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BackupSummary {
    /// Files not in the parent snapshot.
    pub files_new: u64,
    /// Files whose metadata changed since the parent (re-read).
    pub files_changed: u64,
    /// Files taken from the parent without reading.
    pub files_unmodified: u64,
    /// Directories seen.
    pub dirs: u64,
    /// Data blobs written.
    pub data_blobs: u64,
    /// Tree blobs written.
    pub tree_blobs: u64,
    /// Bytes read from files and streams.
    pub bytes_read: u64,
    /// Total size of all files in the snapshot.
    pub bytes_total: u64,
    /// Plaintext bytes of new blobs.
    pub bytes_added: u64,
    /// Bytes of new blobs as stored (compressed and encrypted).
    pub bytes_stored: u64,
    /// Entries skipped with a warning.
    pub warnings: u64,
    /// Wall time in seconds.
    pub duration_seconds: f64,
}

/// A snapshot as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    /// Format version ([`SNAPSHOT_VERSION`]).
    pub version: u32,
    /// When the backup started.
    pub time: jiff::Timestamp,
    /// The root tree.
    pub tree: Id,
    /// What was backed up: absolute paths, stored at their absolute place below the root tree (a stream: `/NAME`).
    pub paths: Vec<String>,
    /// Host name.
    pub hostname: String,
    /// User name.
    #[serde(default)]
    pub username: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The snapshot used to skip unchanged files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Id>,
    /// lifeboat version that wrote it.
    #[serde(default)]
    pub program_version: String,
    /// What the backup did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<BackupSummary>,
    /// Source-specific metadata (a database's LSN range, a dump's format …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<serde_json::Value>,
    /// Whether every node records its extended attributes (absent or false
    /// in snapshots of builds that did not read them): a backup takes an
    /// unchanged entry's attributes from its parent only when this is true.
    #[serde(default)]
    pub xattrs: bool,
    /// The snapshot this one was rewritten from (by `tag` or `repair
    /// snapshots`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Id>,
    /// What `repair snapshots` left out because its data was lost: absolute
    /// paths, directories (emptied) ending in `/`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<String>,
}

impl Snapshot {
    /// Whether the snapshot has a tag.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// Which snapshots a command considers, as restic's `--host`, `--tag` and
/// `--path`: a snapshot matches when every given kind of filter matches.
/// `latest` means the newest snapshot that matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotFilter {
    /// Any of these hosts (empty: any host).
    pub hosts: Vec<String>,
    /// Any of these tag sets, where a set matches a snapshot that has every
    /// tag in it (`--tag a,b --tag c`: a and b, or c). Empty: any tags.
    pub tags: Vec<Vec<String>>,
    /// Snapshots whose paths include every one of these (empty: any).
    pub paths: Vec<String>,
}

impl SnapshotFilter {
    /// Whether nothing is filtered.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.tags.is_empty() && self.paths.is_empty()
    }

    /// Whether `s` passes the filter.
    pub fn matches(&self, s: &Snapshot) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(&s.hostname))
            && (self.tags.is_empty()
                || self.tags.iter().any(|set| set.iter().all(|t| s.has_tag(t))))
            && self.paths.iter().all(|p| {
                let p = p.trim_end_matches('/');
                let p = if p.is_empty() { "/" } else { p };
                s.paths.iter().any(|sp| sp == p)
            })
    }
}

/// Which snapshot fields group snapshots (`--group-by host,paths,tags`):
/// for listings, for `--latest N`, and for `forget`'s keep rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupBy {
    /// By host name.
    pub host: bool,
    /// By the sorted backup paths.
    pub paths: bool,
    /// By the sorted tags.
    pub tags: bool,
}

impl GroupBy {
    /// Host and paths: how `forget` and parent selection group by default.
    pub const HOST_AND_PATHS: GroupBy = GroupBy {
        host: true,
        paths: true,
        tags: false,
    };

    /// Parses a comma-separated subset of `host`, `paths`, `tags` (empty:
    /// no grouping).
    pub fn parse(spec: &str) -> Result<GroupBy, String> {
        let mut g = GroupBy::default();
        for f in spec.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            match f {
                "host" => g.host = true,
                "paths" => g.paths = true,
                "tags" => g.tags = true,
                bad => {
                    return Err(format!(
                        "unknown group field {bad:?}; use host, paths, tags (comma-separated)"
                    ))
                }
            }
        }
        Ok(g)
    }

    /// Whether nothing groups (one group of everything).
    pub fn is_none(&self) -> bool {
        !(self.host || self.paths || self.tags)
    }

    /// The key of `s`'s group.
    pub fn key(&self, s: &Snapshot) -> GroupKey {
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        GroupKey {
            host: self.host.then(|| s.hostname.clone()),
            paths: self.paths.then(|| sorted(&s.paths)),
            tags: self.tags.then(|| sorted(&s.tags)),
        }
    }
}

/// The fields a group shares; absent are those not grouped by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Default)]
pub struct GroupKey {
    /// Host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Sorted paths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Sorted tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

impl std::fmt::Display for GroupKey {
    /// `host h, paths /a /b, tags x,y`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![];
        if let Some(h) = &self.host {
            parts.push(format!("host {h}"));
        }
        if let Some(p) = &self.paths {
            parts.push(format!("paths {}", p.join(" ")));
        }
        if let Some(t) = &self.tags {
            parts.push(format!("tags {}", t.join(",")));
        }
        if parts.is_empty() {
            parts.push("all snapshots".into());
        }
        f.write_str(&parts.join(", "))
    }
}

impl std::fmt::Display for SnapshotFilter {
    /// The filter as the options that give it (`--host h --tag a,b`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![];
        parts.extend(self.hosts.iter().map(|h| format!("--host {h}")));
        parts.extend(self.tags.iter().map(|t| format!("--tag {}", t.join(","))));
        parts.extend(self.paths.iter().map(|p| format!("--path {p}")));
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_ignored_for_forward_compatibility() {
        let json = format!(
            r#"{{"version":1,"time":"2026-01-01T00:00:00Z","tree":"{}","paths":["/x"],"hostname":"h","future_field":42}}"#,
            Id([3; 32])
        );
        let s: Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(s.paths, vec!["/x"]);
        assert_eq!(s.tree, Id([3; 32]));
    }

    fn snap(host: &str, tags: &[&str], paths: &[&str]) -> Snapshot {
        let json = format!(
            r#"{{"version":1,"time":"2026-01-01T00:00:00Z","tree":"{}","paths":{},"hostname":"{host}","tags":{}}}"#,
            Id([3; 32]),
            serde_json::to_string(paths).unwrap(),
            serde_json::to_string(tags).unwrap()
        );
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn filters_need_every_kind_any_host_any_tag_set_and_every_path() {
        let s = snap("db1", &["nightly", "pg"], &["/etc/app", "/var/lib/app"]);
        let f = |hosts: &[&str], tags: &[&[&str]], paths: &[&str]| SnapshotFilter {
            hosts: hosts.iter().map(|x| x.to_string()).collect(),
            tags: tags
                .iter()
                .map(|t| t.iter().map(|x| x.to_string()).collect())
                .collect(),
            paths: paths.iter().map(|x| x.to_string()).collect(),
        };
        assert!(f(&[], &[], &[]).matches(&s));
        assert!(f(&["db2", "db1"], &[], &[]).matches(&s));
        assert!(!f(&["db2"], &[], &[]).matches(&s));
        assert!(f(&[], &[&["nightly", "pg"]], &[]).matches(&s));
        assert!(!f(&[], &[&["nightly", "weekly"]], &[]).matches(&s));
        assert!(f(&[], &[&["nightly", "weekly"], &["pg"]], &[]).matches(&s));
        assert!(f(&[], &[], &["/etc/app/"]).matches(&s));
        assert!(!f(&[], &[], &["/etc/app", "/srv"]).matches(&s));
        assert!(!f(&["db1"], &[&["pg"]], &["/srv"]).matches(&s));
    }
}
