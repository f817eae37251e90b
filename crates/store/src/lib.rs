//! Where lifeboat's bytes live.
//!
//! A store holds immutable, named objects of a closed set of kinds
//! ([`Kind`]). Reading and writing are separate capabilities: [`ReadStore`]
//! can only look, [`WriteStore`] extends it with `put` and `delete`. A
//! verification or a drill is handed a `&dyn ReadStore`, so the type system
//! forbids it to delete backups.
//!
//! The one design decision a reader must know: the contract asks nothing an
//! object store cannot give. There is no rename, no append, no conditional
//! write the repository relies on for correctness, and a listing may lag a
//! write. `put` of a name that already exists fails with
//! [`StoreError::AlreadyExists`] where the backend can tell cheaply (a local
//! directory can); callers never depend on that check for safety, because every
//! name except `config` is the hash of the object's content.
//!
//! Every backend must pass [`conformance::run_all`].

pub mod conformance;
mod dry_run;
mod local;

pub use dry_run::DryRunStore;
pub use local::LocalStore;

use std::fmt;
use std::path::PathBuf;

/// The closed set of object kinds a repository stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// The single `config` object.
    Config,
    /// Wrapped master keys, one object per password.
    Key,
    /// Pack files holding encrypted blobs.
    Pack,
    /// Index objects mapping blobs to packs.
    Index,
    /// Snapshot objects.
    Snapshot,
    /// Log objects: pieces of a continuous log (PostgreSQL WAL segments),
    /// each under the name its producer gives it.
    Log,
}

impl Kind {
    /// Every kind, in a stable order.
    pub const ALL: [Kind; 6] = [
        Kind::Config,
        Kind::Key,
        Kind::Pack,
        Kind::Index,
        Kind::Snapshot,
        Kind::Log,
    ];

    /// The folder (prefix) that holds objects of this kind.
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Config => "",
            Kind::Key => "keys",
            Kind::Pack => "data",
            Kind::Index => "index",
            Kind::Snapshot => "snapshots",
            Kind::Log => "logs",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Config => "config",
            Kind::Key => "key",
            Kind::Pack => "pack",
            Kind::Index => "index",
            Kind::Snapshot => "snapshot",
            Kind::Log => "log",
        })
    }
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's name within its kind (for content-named objects, the hex id).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Everything that can go wrong in a store.
///
/// Retrying makes sense only for [`StoreError::Io`] whose cause is transient
/// (see [`StoreError::is_retryable`]); the other variants describe the state of
/// the store and will be the same on a second try.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The object does not exist.
    #[error("{kind} object {name:?} not found in {location}")]
    NotFound {
        /// Object kind.
        kind: Kind,
        /// Object name.
        name: String,
        /// Where the store is (path or URL).
        location: String,
    },
    /// A repository address whose kind of store does not exist (yet).
    #[error("repository {location:?}: {scheme:?} repositories are not supported yet; use a local directory path")]
    UnsupportedLocation {
        /// The address given.
        location: String,
        /// Its scheme.
        scheme: String,
    },
    /// A local repository path that is something other than a directory.
    #[error("repository {location} is not a directory")]
    NotADirectory {
        /// The path given.
        location: String,
    },
    /// `put` of a name that already exists.
    #[error("{kind} object {name:?} already exists in {location}")]
    AlreadyExists {
        /// Object kind.
        kind: Kind,
        /// Object name.
        name: String,
        /// Where the store is.
        location: String,
    },
    /// A ranged read past the end of the object.
    #[error("{kind} object {name:?} in {location} is {size} bytes, shorter than the requested range {offset}+{length}")]
    ShortObject {
        /// Object kind.
        kind: Kind,
        /// Object name.
        name: String,
        /// Where the store is.
        location: String,
        /// Actual size.
        size: u64,
        /// Requested offset.
        offset: u64,
        /// Requested length.
        length: u64,
    },
    /// A name that is not allowed (empty, path separators, leading dot).
    #[error("invalid object name {0:?}")]
    InvalidName(String),
    /// An I/O failure talking to the store.
    #[error("{op} {what}: {source}")]
    Io {
        /// What was being done ("write", "read", "list" …).
        op: &'static str,
        /// The path or URL concerned.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Whether a retry of the same call could succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
            ),
            _ => false,
        }
    }

    /// Whether this error means "the object is not there".
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }

    /// Whether the user gave something unusable (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            StoreError::UnsupportedLocation { .. } | StoreError::NotADirectory { .. }
        )
    }
}

/// Result alias for store calls.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Read access to a store.
pub trait ReadStore: Send + Sync + fmt::Debug {
    /// A human-readable location (a path or a URL) for messages.
    fn location(&self) -> String;

    /// Reads a whole object.
    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>>;

    /// Reads `length` bytes at `offset`. Fails with [`StoreError::ShortObject`]
    /// when the object is shorter.
    fn get_range(&self, kind: Kind, name: &str, offset: u64, length: u64) -> Result<Vec<u8>>;

    /// Like [`ReadStore::get_range`], reading into `buf` (replacing its
    /// contents), so a caller reading many objects reuses one buffer
    /// instead of faulting in fresh pages for each.
    fn get_range_into(
        &self,
        kind: Kind,
        name: &str,
        offset: u64,
        length: u64,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        *buf = self.get_range(kind, name, offset, length)?;
        Ok(())
    }

    /// Lists the objects of a kind. The order is unspecified and the listing
    /// may miss objects written moments ago.
    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>>;

    /// Whether an object exists.
    fn exists(&self, kind: Kind, name: &str) -> Result<bool>;

    /// The size of an object.
    fn size(&self, kind: Kind, name: &str) -> Result<u64>;
}

/// Write access to a store: everything [`ReadStore`] does, plus `put` and
/// `delete`.
pub trait WriteStore: ReadStore {
    /// Writes a new object atomically and durably: after `Ok`, the whole
    /// object is there and survives a power cut; after `Err` or a crash, the
    /// object is either whole or absent. Never overwrites: an existing name
    /// gives [`StoreError::AlreadyExists`].
    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()>;

    /// Starts an object that is written piece by piece and published under
    /// its name only by [`StagedObject::finish`], for content-named objects
    /// too large to hold in memory (packs), whose name is known only at the
    /// end. Dropping it unfinished leaves nothing behind.
    fn stage(&self, kind: Kind) -> Result<Box<dyn StagedObject>>;

    /// Deletes an object. Deleting a missing object is not an error.
    fn delete(&self, kind: Kind, name: &str) -> Result<()>;

    /// Creates whatever the backend needs before the first `put` (folders,
    /// buckets). Idempotent.
    fn create(&self) -> Result<()>;

    /// A read-only view of this store.
    fn as_read(&self) -> &dyn ReadStore;

    /// Counts the partial objects writers left behind that are older than
    /// `older_than` (what [`WriteStore::remove_stale_temporaries`] would
    /// remove), so a check can report them.
    fn temporaries(&self, _older_than: std::time::Duration) -> Result<Temporaries> {
        Ok(Temporaries::default())
    }

    /// Removes partial objects that writers killed mid-write left behind,
    /// when older than `older_than`. Backends whose writes cannot leave
    /// partial objects (one PUT on S3) have nothing to do.
    fn remove_stale_temporaries(&self, _older_than: std::time::Duration) -> Result<usize> {
        Ok(0)
    }

    /// Removes the partial objects this process is writing (an interrupted
    /// command cleaning up after itself), never another process's.
    fn remove_own_temporaries(&self) -> Result<usize> {
        Ok(0)
    }
}

/// Partial objects left by writers; see [`WriteStore::temporaries`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Temporaries {
    /// How many.
    pub count: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// An object being written; see [`WriteStore::stage`].
pub trait StagedObject: Send {
    /// Appends bytes.
    fn write(&mut self, data: &[u8]) -> Result<()>;

    /// Bytes written so far.
    fn size(&self) -> u64;

    /// Publishes the object under `name`, with [`WriteStore::put`]'s
    /// contract: atomic, durable, never overwriting.
    fn finish(self: Box<Self>, name: &str) -> Result<()>;
}

/// Checks an object name: non-empty, no path separators, no leading dot
/// (reserved for temporary files), printable ASCII only.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName(name.to_string()))
    }
}

/// Opens the store a repository location names. Today a plain path (or
/// `local:PATH`) is a local directory.
///
/// A location of the form `scheme:rest` names a backend; only `local:` (or
/// a plain path) exists so far. Anything else (`s3:…`, `sftp:host:/repo`)
/// is refused rather than taken for a local folder of that name (write
/// `./name:x` for a local path with a colon).
pub fn open(location: &str) -> Result<Box<dyn WriteStore>> {
    if let Some((scheme, _)) = location.split_once(':') {
        let is_scheme = !scheme.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if is_scheme && scheme != "local" {
            return Err(StoreError::UnsupportedLocation {
                location: location.to_string(),
                scheme: scheme.to_string(),
            });
        }
    }
    let path = location.strip_prefix("local:").unwrap_or(location);
    if std::fs::metadata(path).is_ok_and(|m| !m.is_dir()) {
        return Err(StoreError::NotADirectory {
            location: path.to_string(),
        });
    }
    Ok(Box::new(LocalStore::new(PathBuf::from(path))))
}
