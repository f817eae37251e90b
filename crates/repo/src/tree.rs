//! Directory trees: one blob per directory, listing its entries by name.
//!
//! A tree is JSON (`{"nodes": [...]}`) sorted by name bytes, so the same
//! directory content always serializes to the same bytes and dedups: an
//! unchanged subtree costs nothing in a new snapshot.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::id::Id;

/// Tree format version written into every tree blob.
pub const TREE_VERSION: u32 = 1;

/// A file name: arbitrary bytes except `/` and NUL. Serialized as a string
/// when it is UTF-8, else as `{"bytes": "<hex>"}`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FileName(pub Vec<u8>);

impl FileName {
    /// Whether the name is safe to join to a directory: not empty, not `.`
    /// or `..`, no `/` and no NUL. Restore refuses anything else.
    pub fn is_safe(&self) -> bool {
        !self.0.is_empty()
            && self.0 != b"."
            && self.0 != b".."
            && !self.0.contains(&b'/')
            && !self.0.contains(&0)
    }

    /// As an OS string.
    pub fn as_os_str(&self) -> &std::ffi::OsStr {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::OsStr::from_bytes(&self.0)
    }

    /// Lossy display form.
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl std::fmt::Debug for FileName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.display())
    }
}

impl From<&std::ffi::OsStr> for FileName {
    fn from(s: &std::ffi::OsStr) -> Self {
        use std::os::unix::ffi::OsStrExt;
        FileName(s.as_bytes().to_vec())
    }
}

impl From<&str> for FileName {
    fn from(s: &str) -> Self {
        FileName(s.as_bytes().to_vec())
    }
}

/// Bytes in JSON: a string when they are UTF-8, else `{"bytes": "<hex>"}`.
/// Names and extended attribute values are written this way.
mod bytes_repr {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Utf8(String),
        Bytes { bytes: String },
    }

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(b) {
            Ok(u) => Repr::Utf8(u.to_string()).serialize(s),
            Err(_) => Repr::Bytes {
                bytes: hex::encode(b),
            }
            .serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Utf8(s) => Ok(s.into_bytes()),
            Repr::Bytes { bytes } => hex::decode(bytes).map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for FileName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        bytes_repr::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for FileName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        bytes_repr::deserialize(d).map(FileName)
    }
}

/// An extended attribute of an entry (POSIX ACLs, file capabilities and
/// security labels are extended attributes too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    /// Name with its namespace: `user.origin`, `security.capability`,
    /// `system.posix_acl_access`.
    pub name: FileName,
    /// Value, written like a name (a string when UTF-8, else hex bytes).
    #[serde(with = "bytes_repr")]
    pub value: Vec<u8>,
}

/// What kind of entry a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A regular file (content in `content`).
    File,
    /// A directory (entries in `subtree`).
    Dir,
    /// A symbolic link (target in `link_target`).
    Symlink,
    /// A named pipe.
    Fifo,
    /// A Unix socket (restored as the node; no process listens on it).
    Socket,
    /// A character device (number in `rdev`; restored only as root).
    CharDevice,
    /// A block device (number in `rdev`; restored only as root).
    BlockDevice,
}

impl NodeKind {
    /// Whether this is a FIFO, socket or device: an entry with no content
    /// that a restore recreates with `mknod`.
    pub fn is_special(self) -> bool {
        matches!(
            self,
            NodeKind::Fifo | NodeKind::Socket | NodeKind::CharDevice | NodeKind::BlockDevice
        )
    }
}

/// One directory entry with its metadata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Node {
    /// Entry name.
    pub name: FileName,
    /// Entry kind.
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Access time, ns since the epoch; 0 (and absent from the tree) when
    /// not recorded, as by default. A restore then gives the entry its
    /// mtime as atime.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub atime_ns: i64,
    /// Status change time, ns since the epoch (used to detect changes).
    #[serde(default)]
    pub ctime_ns: i64,
    /// Inode number (change detection, hard links).
    #[serde(default)]
    pub inode: u64,
    /// Device id (hard links).
    #[serde(default)]
    pub device: u64,
    /// Link count (hard links).
    #[serde(default)]
    pub links: u64,
    /// Size in bytes (files).
    #[serde(default)]
    pub size: u64,
    /// Data blobs, in order (files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Id>,
    /// Tree blob (directories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
    /// Link target (symlinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<FileName>,
    /// Extended attributes, sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
    /// A device's number (`st_rdev`); absent (0) for other kinds.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub rdev: u64,
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// A directory's entries.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tree {
    /// Tree format version.
    #[serde(default)]
    pub version: u32,
    /// Entries, sorted by name.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// A tree from nodes (sorted here).
    pub fn new(mut nodes: Vec<Node>) -> Tree {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Tree {
            version: TREE_VERSION,
            nodes,
        }
    }

    /// Serialized form (the tree blob's plaintext).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a tree blob.
    pub fn from_bytes(b: &[u8]) -> Result<Tree, String> {
        let t: Tree = serde_json::from_slice(b).map_err(|e| e.to_string())?;
        if t.version > TREE_VERSION {
            return Err(format!(
                "tree version {} is newer than this lifeboat understands ({TREE_VERSION})",
                t.version
            ));
        }
        Ok(t)
    }

    /// The entry with this name.
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.0.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(name: Vec<u8>) -> Node {
        Node {
            name: FileName(name),
            kind: NodeKind::File,
            mode: 0o644,
            uid: 1,
            gid: 2,
            mtime_ns: 3,
            atime_ns: 4,
            ctime_ns: 5,
            inode: 6,
            device: 7,
            links: 1,
            size: 8,
            content: vec![Id([1; 32])],
            subtree: None,
            link_target: Some(FileName(vec![0xff, b'x'])),
            xattrs: vec![
                Xattr {
                    name: FileName::from("security.capability"),
                    value: vec![1, 0, 0, 2, 0x20, 0xff],
                },
                Xattr {
                    name: FileName::from("user.origin"),
                    value: b"text value".to_vec(),
                },
            ],
            rdev: 0x0103,
        }
    }

    proptest! {
        #[test]
        fn tree_round_trip(names in proptest::collection::btree_set(proptest::collection::vec(1u8..=255, 1..20), 0..10)) {
            let t = Tree::new(names.into_iter().map(node).collect());
            let back = Tree::from_bytes(&t.to_bytes()).unwrap();
            prop_assert_eq!(&back, &t);
            for n in &t.nodes {
                prop_assert_eq!(back.find(&n.name.0), Some(n));
            }
        }
    }

    #[test]
    fn unsafe_names_are_recognised() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/etc", b"x\0y"] {
            assert!(!FileName(bad.to_vec()).is_safe(), "{bad:?}");
        }
        assert!(FileName(b"..x".to_vec()).is_safe());
    }

    #[test]
    fn newer_tree_version_is_rejected() {
        assert!(Tree::from_bytes(br#"{"version":99,"nodes":[]}"#).is_err());
    }
}
