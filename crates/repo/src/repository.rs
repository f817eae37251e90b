//! Opening, creating and reading a repository.
//!
//! Two states, two types: a [`Repository`] is unlocked (key and config read)
//! and can list snapshots and manage keys; an [`IndexedRepository`] has also
//! loaded the index and is the only thing that can read blobs, back up,
//! restore, check or prune. The compiler therefore rejects an operation that
//! needs the index on a repository that has not loaded it.

use std::collections::HashSet;
use std::ops::Deref;
use std::sync::Arc;

use lifeboat_store::{Kind, WriteStore};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::blob;
use crate::chunker::ChunkerParams;
use crate::crypto::{KdfParams, KeyFile, MasterKey};
use crate::error::{RepoError, Result};
use crate::id::Id;
use crate::index::{Index, IndexFile, IndexPack, INDEX_VERSION};
use crate::pack;
use crate::snapshot::{Snapshot, SnapshotFilter, SNAPSHOT_VERSION};
use crate::tree::Tree;

/// The repository format version this code writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// The `config` object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Config {
    /// Repository format version.
    pub version: u32,
    /// Random repository id (hex).
    pub id: String,
    /// Chunker bounds.
    pub chunker: ChunkerParams,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// zstd level for new blobs (0 = off).
    pub compression: i32,
}

/// Options for `init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Chunker bounds.
    pub chunker: ChunkerParams,
    /// Target pack size.
    pub pack_size: u32,
    /// zstd level.
    pub compression: i32,
    /// KDF cost for the first key.
    pub kdf: KdfParams,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunker: ChunkerParams::DEFAULT,
            pack_size: 16 << 20,
            compression: 3,
            kdf: KdfParams::DEFAULT,
        }
    }
}

/// A key as `key list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// Key id: the hash of the key object, and its name.
    pub id: Id,
    /// Whether this key opened the repository.
    pub current: bool,
    /// Creation time.
    pub created: String,
    /// `user@host` that created it.
    pub created_by: String,
    /// Its Argon2id cost (a generated secret's is minimal).
    pub params: crate::crypto::KdfParams,
}

/// Intact keys (oldest first) and the errors of damaged or stray key objects.
pub type KeyList = (Vec<KeyInfo>, Vec<RepoError>);

/// Readable snapshots (oldest first) and the errors of unreadable ones.
pub type SnapshotList = (Vec<(Id, Snapshot)>, Vec<RepoError>);

/// An unlocked repository.
#[derive(Debug, Clone)]
pub struct Repository {
    store: Arc<dyn WriteStore>,
    key: Arc<MasterKey>,
    key_id: Id,
    config: Config,
}

fn who() -> String {
    // SAFETY: getuid cannot fail.
    let user =
        std::env::var("USER").unwrap_or_else(|_| format!("uid {}", unsafe { libc::getuid() }));
    format!("{user}@{}", hostname())
}

/// This machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for 256 bytes; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".into()
    }
}

impl Repository {
    /// Creates a repository in an empty store.
    pub fn init(
        store: Arc<dyn WriteStore>,
        password: &[u8],
        opts: InitOptions,
    ) -> Result<Repository> {
        Repository::init_with_key(store, password, opts, MasterKey::generate())
    }

    /// Creates a repository in an empty store that names blobs and cuts
    /// chunks as `like` does (its id key, chunker seed and chunker bounds;
    /// its own encryption key and password): snapshots copy between the
    /// two blob for blob, and deduplicate against each other
    /// ([`MasterKey::with_same_ids`]).
    pub fn init_like(
        store: Arc<dyn WriteStore>,
        password: &[u8],
        mut opts: InitOptions,
        like: &Repository,
    ) -> Result<Repository> {
        opts.chunker = like.config.chunker;
        Repository::init_with_key(store, password, opts, like.key.with_same_ids())
    }

    fn init_with_key(
        store: Arc<dyn WriteStore>,
        password: &[u8],
        opts: InitOptions,
        key: MasterKey,
    ) -> Result<Repository> {
        if store.exists(Kind::Config, "config")? {
            return Err(RepoError::AlreadyInitialized {
                location: store.location(),
            });
        }
        if !opts.chunker.is_valid() {
            return Err(RepoError::Usage(format!(
                "invalid chunker parameters {:?}",
                opts.chunker
            )));
        }
        if !(1 << 20..=1 << 30).contains(&opts.pack_size) {
            return Err(RepoError::Usage(
                "pack size must be between 1 MiB and 1 GiB".into(),
            ));
        }
        if !(0..=22).contains(&opts.compression) {
            return Err(RepoError::Usage(
                "compression level must be 0 (off) to 22".into(),
            ));
        }
        store.create()?;
        let config = Config {
            version: FORMAT_VERSION,
            id: hex::encode(rand::random::<[u8; 16]>()),
            chunker: opts.chunker,
            pack_size: opts.pack_size,
            compression: opts.compression,
        };
        let kf = KeyFile::wrap(&key, password, opts.kdf, who())?;
        let key_id = save_key_file(store.as_ref(), &kf)?;
        let repo = Repository {
            store,
            key: Arc::new(key),
            key_id,
            config,
        };
        // The config goes last: a crash before this leaves no repository.
        let sealed = repo.key.seal(
            &serde_json::to_vec(&repo.config).map_err(|e| RepoError::Internal(e.to_string()))?,
        );
        repo.store.put(Kind::Config, "config", &sealed)?;
        Ok(repo)
    }

    /// Opens a repository with a password.
    pub fn open(store: Arc<dyn WriteStore>, password: &[u8]) -> Result<Repository> {
        let location = store.location();
        let sealed_config = match store.get(Kind::Config, "config") {
            Ok(c) => c,
            Err(e) if e.is_not_found() => return Err(RepoError::NotARepository { location }),
            Err(e) => return Err(e.into()),
        };
        let mut names = store.list(Kind::Key)?;
        names.sort_by(|a, b| a.name.cmp(&b.name));
        // A damaged key object must not pass for a wrong password.
        let mut damaged = vec![];
        let mut keys = vec![];
        for k in names {
            match read_key(store.as_ref(), &k.name) {
                Ok(key) => keys.push(key),
                Err(e @ RepoError::Damaged { .. }) => {
                    tracing::warn!("{e}");
                    damaged.push(k.name);
                }
                Err(e) => return Err(e),
            }
        }
        // Cheapest first: a generated secret's key is tried in microseconds
        // before a password's Argon2 is paid.
        keys.sort_by_key(|(id, kf)| (kf.params.cost(), *id));
        for (id, kf) in keys {
            if let Some(key) = kf.unwrap_with(password)? {
                let plain = key.open(&sealed_config).map_err(|_| {
                    RepoError::damaged(
                        Kind::Config,
                        "config",
                        location.clone(),
                        "does not decrypt with the repository key",
                    )
                })?;
                let config: Config = serde_json::from_slice(&plain).map_err(|e| {
                    RepoError::damaged(Kind::Config, "config", location.clone(), e.to_string())
                })?;
                if config.version > FORMAT_VERSION {
                    return Err(RepoError::NewerVersion {
                        kind: Kind::Config,
                        name: "config".into(),
                        location,
                        version: config.version,
                        supported: FORMAT_VERSION,
                    });
                }
                return Ok(Repository {
                    store,
                    key: Arc::new(key),
                    key_id: id,
                    config,
                });
            }
        }
        match damaged.into_iter().next() {
            Some(name) => Err(RepoError::damaged(
                Kind::Key,
                name,
                location,
                "no intact key opens with this password (if it was this password's key, use another password or restore the key object from a copy)",
            )),
            None => Err(RepoError::WrongPassword { location }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn WriteStore> {
        &self.store
    }

    /// The master key.
    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where the repository is.
    pub fn location(&self) -> String {
        self.store.location()
    }

    fn damaged(&self, kind: Kind, id: &str, reason: impl Into<String>) -> RepoError {
        RepoError::damaged(kind, id, self.location(), reason)
    }

    /// Writes a metadata object: `seal(zstd(json))`, named by the BLAKE3 of
    /// the stored bytes.
    pub fn save_json<T: Serialize>(&self, kind: Kind, value: &T) -> Result<Id> {
        let json = serde_json::to_vec(value).map_err(|e| RepoError::Internal(e.to_string()))?;
        let compressed =
            zstd::bulk::compress(&json, 3).map_err(|e| RepoError::Internal(e.to_string()))?;
        let sealed = self.key.seal(&compressed);
        let id = Id::hash_of(&sealed);
        self.store.put(kind, &id.to_hex(), &sealed)?;
        Ok(id)
    }

    /// Reads and verifies a metadata object.
    pub fn load_json<T: DeserializeOwned>(&self, kind: Kind, name: &str) -> Result<T> {
        let bytes = self.store.get(kind, name)?;
        self.decode_json(kind, name, &bytes)
    }

    /// Verifies and decodes the bytes of a metadata object.
    pub fn decode_json<T: DeserializeOwned>(
        &self,
        kind: Kind,
        name: &str,
        bytes: &[u8],
    ) -> Result<T> {
        if Id::hash_of(bytes).to_hex() != name {
            return Err(self.damaged(
                kind,
                name,
                "content does not match its name (modified or truncated)",
            ));
        }
        let compressed = self
            .key
            .open(bytes)
            .map_err(|_| self.damaged(kind, name, "fails authentication"))?;
        // Metadata objects are small; 1 GiB bounds a hostile frame.
        let json = zstd::stream::decode_all(&compressed[..])
            .map_err(|e| self.damaged(kind, name, format!("bad compression: {e}")))?;
        serde_json::from_slice(&json)
            .map_err(|e| self.damaged(kind, name, format!("bad content: {e}")))
    }

    /// Every snapshot, oldest first. Damaged snapshots are returned as errors
    /// in the second list.
    pub fn snapshots(&self) -> Result<SnapshotList> {
        let mut ok = vec![];
        let mut bad = vec![];
        for o in self.store.list(Kind::Snapshot)? {
            let Ok(id) = o.name.parse::<Id>() else {
                continue;
            };
            match self.load_json::<Snapshot>(Kind::Snapshot, &o.name) {
                Ok(s) if s.version > SNAPSHOT_VERSION => bad.push(RepoError::NewerVersion {
                    kind: Kind::Snapshot,
                    name: id.to_hex(),
                    location: self.location(),
                    version: s.version,
                    supported: SNAPSHOT_VERSION,
                }),
                Ok(s) => ok.push((id, s)),
                Err(RepoError::Store(e)) if e.is_not_found() => {} // removed meanwhile
                Err(e) => bad.push(e),
            }
        }
        ok.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok((ok, bad))
    }

    /// Resolves `latest` (the newest snapshot that `filter` matches) or a
    /// unique id prefix to a snapshot. `latest` is refused while any
    /// snapshot object is damaged: its time cannot be read, so it may be the
    /// newest, and silently taking an older one would restore the wrong
    /// point.
    pub fn find_snapshot(&self, arg: &str, filter: &SnapshotFilter) -> Result<(Id, Snapshot)> {
        let (all, bad) = self.snapshots()?;
        if arg == "latest" {
            if let Some(e) = bad.into_iter().next() {
                return Err(RepoError::LatestUnknown(Box::new(e)));
            }
            return all
                .into_iter()
                .rev()
                .find(|(_, s)| filter.matches(s))
                .ok_or_else(|| {
                    RepoError::SnapshotNotFound(if filter.is_empty() {
                        "the repository has no snapshots".into()
                    } else {
                        format!("no snapshot matches {filter}")
                    })
                });
        }
        let arg_l = arg.to_ascii_lowercase();
        if arg_l.is_empty() || !arg_l.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RepoError::SnapshotNotFound(format!(
                "{arg:?} is not `latest` or a snapshot id (prefix)"
            )));
        }
        let mut m: Vec<_> = all
            .into_iter()
            .filter(|(id, _)| id.to_hex().starts_with(&arg_l))
            .collect();
        match m.len() {
            0 => Err(RepoError::SnapshotNotFound(format!(
                "no snapshot matches {arg:?}"
            ))),
            1 => Ok(m.remove(0)),
            n => Err(RepoError::SnapshotNotFound(format!(
                "{arg:?} matches {n} snapshots; give more characters"
            ))),
        }
    }

    /// Writes a snapshot object.
    pub fn save_snapshot(&self, s: &Snapshot) -> Result<Id> {
        self.save_json(Kind::Snapshot, s)
    }

    /// Deletes a snapshot object.
    pub fn delete_snapshot(&self, id: &Id) -> Result<()> {
        Ok(self.store.delete(Kind::Snapshot, &id.to_hex())?)
    }

    /// The id of the key that opened the repository.
    pub fn key_id(&self) -> Id {
        self.key_id
    }

    /// Lists the keys, oldest first, and the errors of key objects that are
    /// damaged or are not key objects at all.
    pub fn keys(&self) -> Result<KeyList> {
        let (mut keys, mut bad) = (vec![], vec![]);
        for o in self.store.list(Kind::Key)? {
            match read_key(self.store.as_ref(), &o.name) {
                Ok((id, kf)) => keys.push(KeyInfo {
                    current: id == self.key_id,
                    id,
                    created: kf.created,
                    created_by: kf.created_by,
                    params: kf.params,
                }),
                Err(e @ RepoError::Damaged { .. }) => bad.push(e),
                Err(RepoError::Store(e)) if e.is_not_found() => {} // removed since the listing
                Err(e) => return Err(e),
            }
        }
        keys.sort_by(|a, b| a.created.cmp(&b.created));
        Ok((keys, bad))
    }

    /// Adds a key for another password. Returns its id.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<Id> {
        let kf = KeyFile::wrap(&self.key, password, kdf, who())?;
        save_key_file(self.store.as_ref(), &kf)
    }

    /// Removes a key (by id or unique prefix). The key in use cannot be removed.
    pub fn remove_key(&self, prefix: &str) -> Result<Id> {
        let (keys, _) = self.keys()?;
        let prefix = prefix.to_ascii_lowercase();
        let m: Vec<_> = keys
            .iter()
            .filter(|k| !prefix.is_empty() && k.id.to_hex().starts_with(&prefix))
            .collect();
        let k = match m.as_slice() {
            [k] => *k,
            [] => return Err(RepoError::Usage(format!("no key matches {prefix:?}"))),
            _ => return Err(RepoError::Usage(format!("{prefix:?} matches several keys"))),
        };
        if k.current {
            return Err(RepoError::Usage(format!(
                "key {} is the one in use; open the repository with another key to remove it",
                k.id
            )));
        }
        self.store.delete(Kind::Key, &k.id.to_hex())?;
        Ok(k.id)
    }

    /// Replaces the current key's password: adds a new key, removes the old one.
    pub fn change_password(&self, new_password: &[u8], kdf: KdfParams) -> Result<Id> {
        let new_id = self.add_key(new_password, kdf)?;
        self.store.delete(Kind::Key, &self.key_id.to_hex())?;
        Ok(new_id)
    }

    /// Reads the header of a pack from the store.
    pub fn read_pack_header(&self, name: &str, size: u64) -> Result<Vec<pack::PackEntry>> {
        let damaged =
            |reason: String| RepoError::damaged(Kind::Pack, name, self.location(), reason);
        if size < 4 {
            return Err(damaged("pack is truncated".into()));
        }
        let trailer = self.store().get_range(Kind::Pack, name, size - 4, 4)?;
        let hlen = pack::header_len([trailer[0], trailer[1], trailer[2], trailer[3]], size)
            .map_err(|e| damaged(e.to_string()))?;
        let start = size - 4 - u64::from(hlen);
        let sealed = self
            .store()
            .get_range(Kind::Pack, name, start, u64::from(hlen))?;
        pack::parse_header(self.key(), &sealed, start).map_err(|e| damaged(e.to_string()))
    }

    /// Index entries, from their headers, for the `listed` packs that
    /// `index` does not know; and the errors of those whose header cannot
    /// be read (a pack deleted meanwhile is skipped silently).
    fn unindexed_packs(
        &self,
        index: &Index,
        listed: &[lifeboat_store::ObjectInfo],
    ) -> (Vec<IndexPack>, Vec<RepoError>) {
        let mut found = vec![];
        let mut bad = vec![];
        for o in listed {
            let Ok(id) = o.name.parse::<Id>() else {
                continue;
            };
            if index.knows_pack(&id) {
                continue;
            }
            match self.read_pack_header(&o.name, o.size) {
                Ok(entries) => found.push(IndexPack::live(id, o.size, &entries)),
                Err(RepoError::Store(e)) if e.is_not_found() => {}
                Err(e) => bad.push(e),
            }
        }
        (found, bad)
    }

    /// Loads every index object and returns the indexed repository.
    ///
    /// Index objects are listed before the packs, so a pack they name that
    /// the store does not list is lost, not merely new: its blobs are not
    /// live (a backup stores them again) and a copy elsewhere wins.
    pub fn load_index(self) -> Result<IndexedRepository> {
        let objects = self.store.list(Kind::Index)?;
        let packs = self.store.list(Kind::Pack)?;
        let mut index =
            Index::with_present_packs(packs.iter().filter_map(|o| o.name.parse().ok()).collect());
        let mut files = vec![];
        let mut damaged = vec![];
        for o in objects {
            let f: IndexFile = match self.load_json(Kind::Index, &o.name) {
                Ok(f) => f,
                Err(RepoError::Store(e)) if e.is_not_found() => continue, // replaced by a prune meanwhile
                Err(e @ RepoError::Damaged { .. }) => {
                    tracing::warn!("{e}; reading pack headers instead");
                    damaged.push(o.name);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if f.version > INDEX_VERSION {
                return Err(RepoError::NewerVersion {
                    kind: Kind::Index,
                    name: o.name,
                    location: self.location(),
                    version: f.version,
                    supported: INDEX_VERSION,
                });
            }
            index.add_file(&f);
            files.push(o.name);
        }
        index.listing_done();
        // A damaged index object blocks nothing: what it described is read
        // from the headers of the packs no intact object names (in memory;
        // `repair::repair_index` writes it down).
        if !damaged.is_empty() {
            for p in self.unindexed_packs(&index, &packs).0 {
                index.add_pack(&p);
            }
        }
        Ok(IndexedRepository {
            repo: self,
            index,
            index_files: files,
            damaged_index: damaged,
        })
    }
}

fn save_key_file(store: &dyn WriteStore, kf: &KeyFile) -> Result<Id> {
    let bytes = serde_json::to_vec_pretty(kf).map_err(|e| RepoError::Internal(e.to_string()))?;
    let id = Id::hash_of(&bytes);
    store.put(Kind::Key, &id.to_hex(), &bytes)?;
    Ok(id)
}

/// Reads the key object `name`: key objects are named by the hash of their
/// bytes, so one whose name is not an id, or whose bytes do not match it, is
/// damaged (and must never pass for a wrong password).
fn read_key(store: &dyn WriteStore, name: &str) -> Result<(Id, KeyFile)> {
    let damaged = |reason: String| RepoError::damaged(Kind::Key, name, store.location(), reason);
    let Ok(id) = name.parse::<Id>() else {
        return Err(damaged("not a key object: its name is not a key id".into()));
    };
    let bytes = store.get(Kind::Key, name)?;
    if Id::hash_of(&bytes) != id {
        return Err(damaged("its content does not match its name".into()));
    }
    let kf = serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?;
    Ok((id, kf))
}

/// What [`IndexedRepository::reconcile_with_store`] found.
#[derive(Debug)]
pub struct Reconciled {
    /// Unindexed packs now indexed.
    pub recovered: usize,
    /// Indexed packs the store no longer has.
    pub missing: usize,
    /// Unindexed packs whose header could not be read.
    pub damaged: Vec<RepoError>,
}

/// A repository with its index loaded.
#[derive(Debug)]
pub struct IndexedRepository {
    repo: Repository,
    pub(crate) index: Index,
    pub(crate) index_files: Vec<String>,
    /// Index objects that could not be read (their packs were indexed from
    /// headers, in memory only).
    pub(crate) damaged_index: Vec<String>,
}

impl Deref for IndexedRepository {
    type Target = Repository;
    fn deref(&self) -> &Repository {
        &self.repo
    }
}

impl IndexedRepository {
    /// The merged index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Index objects that were damaged when the index was loaded.
    pub fn damaged_index_objects(&self) -> &[String] {
        &self.damaged_index
    }

    /// Reads, decrypts and verifies one blob.
    pub fn read_blob(&self, id: &Id) -> Result<Vec<u8>> {
        let loc = *self.index.get(id).ok_or(RepoError::BlobNotIndexed(*id))?;
        let pack = self.index.pack(loc.pack).id;
        let stored = self.store().get_range(
            Kind::Pack,
            &pack.to_hex(),
            u64::from(loc.offset),
            u64::from(loc.length),
        )?;
        blob::decode(self.key(), &stored, id, loc.raw_length).map_err(|e| {
            RepoError::damaged(
                Kind::Pack,
                pack.to_hex(),
                self.location(),
                format!("blob {}: {e}", id.short()),
            )
        })
    }

    /// Reads a tree blob.
    pub fn load_tree(&self, id: &Id) -> Result<Tree> {
        let bytes = self.read_blob(id)?;
        Tree::from_bytes(&bytes).map_err(|e| {
            RepoError::damaged(
                Kind::Pack,
                id.to_hex(),
                self.location(),
                format!("tree blob: {e}"),
            )
        })
    }

    /// Writes an index object and merges it into the in-memory index.
    pub fn save_index(&mut self, packs: Vec<IndexPack>) -> Result<Option<Id>> {
        if packs.is_empty() {
            return Ok(None);
        }
        let file = IndexFile {
            version: INDEX_VERSION,
            packs,
        };
        let id = self.save_json(Kind::Index, &file)?;
        self.index.add_file(&file);
        self.index_files.push(id.to_hex());
        Ok(Some(id))
    }

    /// Merges packs that a write pipeline stored (and indexed on disk) into
    /// the in-memory index, so this handle can read what it just wrote.
    pub fn add_written_packs(&mut self, packs: &[IndexPack]) {
        for p in packs {
            self.index.add_pack(p);
        }
    }

    /// Indexes packs no index mentions (left by an interrupted backup, or
    /// written by a backup still running), so their blobs are reused instead
    /// of uploaded again, and counts the indexed packs the store lacks
    /// (their blobs are stored again by a backup, see [`Repository::load_index`]).
    /// Damaged unindexed packs are skipped and returned.
    pub fn reconcile_with_store(&mut self) -> Result<Reconciled> {
        let listed = self.store().list(Kind::Pack)?;
        let (found, bad) = self.unindexed_packs(&self.index, &listed);
        let recovered = found.len();
        self.save_index(found)?;
        Ok(Reconciled {
            recovered,
            missing: self.index.packs().iter().filter(|p| p.missing).count(),
            damaged: bad,
        })
    }

    /// Every blob reachable from the given trees (trees and data), walking
    /// each tree once. Errors name the tree that could not be read.
    pub fn reachable_blobs(&self, roots: &[Id]) -> (HashSet<Id>, Vec<RepoError>) {
        let mut seen = HashSet::new();
        let mut errors = vec![];
        let mut stack: Vec<Id> = roots.to_vec();
        while let Some(t) = stack.pop() {
            if !seen.insert(t) {
                continue;
            }
            match self.load_tree(&t) {
                Ok(tree) => {
                    for n in tree.nodes {
                        seen.extend(n.content);
                        if let Some(s) = n.subtree {
                            stack.push(s);
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        (seen, errors)
    }
}

impl IndexedRepository {
    /// Builds an indexed repository from an index loaded elsewhere (check
    /// loads index objects one by one to report each damaged one).
    pub(crate) fn from_parts(
        repo: Repository,
        index: Index,
        index_files: Vec<String>,
    ) -> IndexedRepository {
        IndexedRepository {
            repo,
            index,
            index_files,
            damaged_index: vec![],
        }
    }

    /// The same repository over a store that writes nowhere
    /// ([`lifeboat_store::DryRunStore`]): an operation run on it does all
    /// its work and reports what it would have written, changing nothing.
    pub fn dry_run(mut self) -> IndexedRepository {
        let inner = self.repo.store.clone();
        self.repo.store = Arc::new(lifeboat_store::DryRunStore::new(inner));
        self
    }

    /// Gives back the unlocked repository.
    pub fn into_repository(self) -> Repository {
        self.repo
    }
}
