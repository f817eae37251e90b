//! Log objects: the pieces of a continuous log (PostgreSQL WAL segments,
//! later binary logs), one object each under the name its producer gives
//! it, compressed and encrypted like a blob.
//!
//! A piece is pushed from a database's critical path (`archive_command`),
//! once per piece and by many processes at once, so it is one store object
//! written durably in one `put` — no pack, no index — and its name, not a
//! hash, addresses it: pushing the same piece again succeeds, a different
//! piece under a taken name is refused. Bytes of an object:
//!
//! ```text
//! version u8 (1) | id [32] | raw_length u32 LE | blob
//! ```
//!
//! where the blob (see FORMAT.md, "Blobs") seals `name_len u16 LE | name |
//! data` and `id` is its keyed BLAKE3: the name is inside the ciphertext,
//! so an object copied under another name is found out when read.

use lifeboat_store::{Kind, ObjectInfo, StoreError};

use crate::blob;
use crate::error::{RepoError, Result};
use crate::id::Id;
use crate::repository::Repository;

const LOG_VERSION: u8 = 1;
const HEADER: usize = 1 + 32 + 4;

/// What [`Repository::put_log`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogPut {
    /// The piece was stored, durably.
    Stored,
    /// The same piece was already stored (a retried push).
    AlreadyStored,
}

/// A log piece in the form it is sealed in, `name_len | name | data`,
/// built in one buffer: a 16 MiB WAL segment read from its file is not
/// copied again (each copy of that size costs thousands of page faults on
/// `archive_command`'s critical path).
pub struct LogPiece {
    name: String,
    plain: Vec<u8>,
    data_at: usize,
}

impl LogPiece {
    fn with_capacity(name: &str, data_len: usize) -> Result<LogPiece> {
        let len = u16::try_from(name.len())
            .map_err(|_| RepoError::Usage(format!("log name {name:?} is too long")))?;
        let mut plain = Vec::with_capacity(2 + name.len() + data_len);
        crate::sys::advise_huge_pages(&mut plain);
        plain.extend_from_slice(&len.to_le_bytes());
        plain.extend_from_slice(name.as_bytes());
        Ok(LogPiece {
            name: name.to_string(),
            data_at: plain.len(),
            plain,
        })
    }

    /// The piece `name` holding `data`.
    pub fn new(name: &str, data: &[u8]) -> Result<LogPiece> {
        let mut p = LogPiece::with_capacity(name, data.len())?;
        p.plain.extend_from_slice(data);
        Ok(p)
    }

    /// The piece `name` holding the bytes of the file at `path`.
    pub fn read(name: &str, path: &std::path::Path) -> Result<LogPiece> {
        use std::io::Read;
        let io = |e| RepoError::io("read", path, e);
        let mut f = std::fs::File::open(path).map_err(io)?;
        let size = f.metadata().map_err(io)?.len() as usize;
        let mut p = LogPiece::with_capacity(name, size)?;
        f.read_to_end(&mut p.plain).map_err(io)?;
        Ok(p)
    }

    /// The piece's data.
    pub fn data(&self) -> &[u8] {
        &self.plain[self.data_at..]
    }
}

impl std::fmt::Debug for LogPiece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogPiece")
            .field("name", &self.name)
            .field("len", &self.data().len())
            .finish()
    }
}

impl AsRef<[u8]> for LogPiece {
    fn as_ref(&self) -> &[u8] {
        self.data()
    }
}

impl std::ops::Deref for LogPiece {
    type Target = [u8];

    /// The piece's data.
    fn deref(&self) -> &[u8] {
        self.data()
    }
}

impl Repository {
    /// Stores a log piece under `name` and returns once it is durable. The
    /// same piece stored again is [`LogPut::AlreadyStored`]; a different
    /// one under a taken name is refused.
    pub fn put_log(&self, name: &str, data: &[u8]) -> Result<LogPut> {
        self.put_log_piece(&LogPiece::new(name, data)?)
    }

    /// [`Repository::put_log`] of a piece already built.
    pub fn put_log_piece(&self, piece: &LogPiece) -> Result<LogPut> {
        let (name, plain) = (piece.name.as_str(), piece.plain.as_slice());
        let id = self.key().blob_id(plain);
        let raw = u32::try_from(plain.len())
            .map_err(|_| RepoError::Usage(format!("log piece {name:?} is over 4 GiB")))?;
        let mut encoder = blob::Encoder::new(self.config().compression);
        let sealed = encoder.encode(self.key(), plain);
        let mut obj = Vec::with_capacity(HEADER + sealed.len());
        obj.push(LOG_VERSION);
        obj.extend_from_slice(&id.0);
        obj.extend_from_slice(&raw.to_le_bytes());
        obj.extend_from_slice(sealed);
        drop(encoder);
        match self.store().put(Kind::Log, name, &obj) {
            Ok(()) => Ok(LogPut::Stored),
            Err(StoreError::AlreadyExists { .. }) => {
                let head = self.store().get_range(Kind::Log, name, 0, HEADER as u64)?;
                if head.len() == HEADER && head[1..33] == id.0[..] {
                    Ok(LogPut::AlreadyStored)
                } else {
                    Err(RepoError::Refused(format!(
                        "log {name} in {} holds different content than the piece pushed now under that name",
                        self.location()
                    )))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the log piece `name`, verified (content and name).
    pub fn get_log(&self, name: &str) -> Result<LogPiece> {
        let obj = self.store().get(Kind::Log, name)?;
        let damaged = |why: &str| RepoError::damaged(Kind::Log, name, self.location(), why);
        if obj.len() < HEADER || obj[0] != LOG_VERSION {
            return Err(damaged("not a version 1 log object"));
        }
        let id = Id(obj[1..33].try_into().map_err(|_| damaged("short header"))?);
        let raw = u32::from_le_bytes(
            obj[33..37]
                .try_into()
                .map_err(|_| damaged("short header"))?,
        );
        let mut obj = obj;
        let plain = blob::decode_owned(self.key(), &mut obj[HEADER..], &id, raw)
            .map_err(|e| damaged(&e.to_string()))?;
        let len = plain
            .get(..2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
        match len {
            Some(len) if plain.get(2..2 + len) == Some(name.as_bytes()) => Ok(LogPiece {
                name: name.to_string(),
                data_at: 2 + len,
                plain,
            }),
            _ => Err(damaged("it holds another piece than its name says")),
        }
    }

    /// Whether the log piece `name` is stored.
    pub fn has_log(&self, name: &str) -> Result<bool> {
        Ok(self.store().exists(Kind::Log, name)?)
    }

    /// Every log object, by name.
    pub fn list_logs(&self) -> Result<Vec<ObjectInfo>> {
        let mut l = self.store().list(Kind::Log)?;
        l.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(l)
    }

    /// Deletes the log piece `name`.
    pub fn delete_log(&self, name: &str) -> Result<()> {
        Ok(self.store().delete(Kind::Log, name)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KdfParams;
    use crate::repository::InitOptions;

    fn repo(dir: &std::path::Path) -> Repository {
        let store = std::sync::Arc::from(lifeboat_store::open(dir.to_str().unwrap()).unwrap());
        Repository::init(
            store,
            b"pw",
            InitOptions {
                kdf: KdfParams::INSECURE_FAST,
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn a_piece_round_trips_a_retry_succeeds_and_a_different_piece_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let r = repo(&dir.path().join("repo"));
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(
            r.put_log("pg-1-000000010000000000000001", &data).unwrap(),
            LogPut::Stored
        );
        assert_eq!(
            r.put_log("pg-1-000000010000000000000001", &data).unwrap(),
            LogPut::AlreadyStored
        );
        let mut other = data.clone();
        other[5] ^= 1;
        let err = r
            .put_log("pg-1-000000010000000000000001", &other)
            .unwrap_err();
        assert!(matches!(err, RepoError::Refused(_)), "{err}");
        assert_eq!(
            r.get_log("pg-1-000000010000000000000001").unwrap().data(),
            data
        );
        assert!(r.has_log("pg-1-000000010000000000000001").unwrap());
        assert!(!r.has_log("pg-1-000000010000000000000002").unwrap());
        // Compressed: the object is much smaller than the piece.
        let listed = r.list_logs().unwrap();
        assert!(listed[0].size < 10_000, "{listed:?}");
    }

    #[test]
    fn a_piece_under_another_name_or_with_a_flipped_byte_is_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let r = repo(&root);
        r.put_log("a", b"first piece").unwrap();
        let bytes = std::fs::read(root.join("logs/a")).unwrap();
        r.store().put(Kind::Log, "b", &bytes).unwrap();
        let err = r.get_log("b").unwrap_err();
        assert!(
            matches!(err, RepoError::Damaged { .. }) && err.to_string().contains("another piece"),
            "{err}"
        );
        for at in [0, 10, 40, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            let name = format!("c{at}");
            r.store().put(Kind::Log, &name, &bad).unwrap();
            assert!(
                matches!(r.get_log(&name), Err(RepoError::Damaged { .. })),
                "flip at {at}"
            );
        }
    }
}
