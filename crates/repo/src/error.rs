//! Errors of the repository layer.
//!
//! Rules: every variant names what and where (repository location, object
//! kind and id, path). Retrying makes sense only for store I/O errors that
//! say so ([`RepoError::is_retryable`]); a wrong password, a damaged object or
//! a format problem will fail the same way again. A partial failure (some
//! files unreadable during backup, some blobs damaged during restore) is not an
//! error: it is returned as a value next to the result.

use std::path::PathBuf;

use lifeboat_store::{Kind, StoreError};

use crate::id::Id;

/// Errors of the repository layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// A store call failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No key file accepts the password.
    #[error("wrong password: no key in {location} opens with it")]
    WrongPassword {
        /// Repository location.
        location: String,
    },
    /// There is no repository here.
    #[error("no lifeboat repository at {location}")]
    NotARepository {
        /// Repository location.
        location: String,
    },
    /// `init` on a location that already has a repository.
    #[error("a repository already exists at {location}")]
    AlreadyInitialized {
        /// Repository location.
        location: String,
    },
    /// An object whose bytes do not match its name, or that fails to decrypt or parse.
    #[error("{kind} {id} in {location} is damaged: {reason}")]
    Damaged {
        /// Object kind.
        kind: Kind,
        /// Object name.
        id: String,
        /// Repository location.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// `latest` asked for while a snapshot object is damaged (it could be
    /// the newest).
    #[error("cannot tell which snapshot is the latest: {0}")]
    LatestUnknown(Box<RepoError>),
    /// A stream backup read nothing (and empty streams were not allowed).
    #[error("the stream {name:?} is empty: nothing was saved")]
    EmptyStream {
        /// The stream's name in the snapshot.
        name: String,
    },
    /// An operation that would be unsafe on a damaged repository (prune
    /// while a snapshot is unreadable): damage, not usage.
    #[error("{0}")]
    Refused(String),
    /// A blob that no index names.
    #[error("blob {0} is not in the index")]
    BlobNotIndexed(Id),
    /// An object written by a newer lifeboat, in a format version this one
    /// does not read.
    #[error("{kind} {name} in {location} has format version {version}; this lifeboat reads up to {supported}")]
    NewerVersion {
        /// Object kind.
        kind: Kind,
        /// Object name.
        name: String,
        /// Repository location.
        location: String,
        /// Its version.
        version: u32,
        /// The newest this build reads.
        supported: u32,
    },
    /// A key file or parameter that is malformed before any decryption.
    #[error("repository format: {0}")]
    Format(String),
    /// A snapshot argument that matches nothing or more than one snapshot.
    #[error("{0}")]
    SnapshotNotFound(String),
    /// A path inside a snapshot that does not exist.
    #[error("path {path:?} not found in snapshot {snapshot}")]
    PathNotFound {
        /// The path asked for.
        path: String,
        /// The snapshot.
        snapshot: String,
    },
    /// A local file system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Invalid options given by the caller.
    #[error("{0}")]
    Usage(String),
    /// A source failed while its streams were read, in its own words
    /// ([`crate::archiver::SourceFailed`]).
    #[error("{0}")]
    Source(String),
    /// The restore target already holds files the restore would replace.
    #[error(
        "restore target {target} already contains {count} of the files to restore (first: {first})"
    )]
    WouldOverwrite {
        /// The target directory.
        target: PathBuf,
        /// How many conflicts.
        count: usize,
        /// The first conflicting path.
        first: String,
    },
    /// A bug or an impossible state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RepoError {
    /// Whether retrying the same operation could succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            RepoError::Store(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// Whether the caller (the user) is at fault: bad usage or configuration.
    pub fn is_usage(&self) -> bool {
        if let RepoError::Store(e) = self {
            return e.is_usage();
        }
        matches!(
            self,
            RepoError::Usage(_)
                | RepoError::SnapshotNotFound(_)
                | RepoError::PathNotFound { .. }
                | RepoError::NotARepository { .. }
                | RepoError::AlreadyInitialized { .. }
                | RepoError::WouldOverwrite { .. }
        )
    }

    /// The one way to say an object is damaged.
    pub fn damaged(
        kind: Kind,
        id: impl Into<String>,
        location: impl Into<String>,
        reason: impl Into<String>,
    ) -> RepoError {
        RepoError::Damaged {
            kind,
            id: id.into(),
            location: location.into(),
            reason: reason.into(),
        }
    }

    /// A local file system operation on `path` that failed.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> RepoError {
        if let Some(f) = source
            .get_ref()
            .and_then(|e| e.downcast_ref::<crate::archiver::SourceFailed>())
        {
            return RepoError::Source(f.0.clone());
        }
        RepoError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// An OS error in words, without the `(os error N)` tail: for messages
/// about the user's own paths.
pub fn io_words(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => "does not exist".into(),
        K::PermissionDenied => "permission denied".into(),
        K::NotADirectory => "a component of the path is not a directory".into(),
        K::IsADirectory => "is a directory".into(),
        _ => {
            let t = e.to_string();
            match t.find(" (os error") {
                Some(i) => t[..i].to_string(),
                None => t,
            }
        }
    }
}

/// Result alias.
pub type Result<T, E = RepoError> = std::result::Result<T, E>;
