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
    /// What was backed up (absolute paths, or `stdin:NAME`).
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
}

impl Snapshot {
    /// Whether the snapshot has a tag.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// The key snapshots are grouped by for `forget` and parent selection:
    /// host and sorted paths.
    pub fn group_key(&self) -> (String, Vec<String>) {
        let mut p = self.paths.clone();
        p.sort();
        (self.hostname.clone(), p)
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
}
