//! The write half of the pipeline: compress → encrypt → pack → upload, with
//! the index written every few packs so an interrupted run loses little.
//!
//! [`BlobSaver`] is shared by worker threads: `save` hashes a blob, drops it
//! when the repository or this run already has it, and otherwise queues it
//! for the compressor threads (`save_with` an encoder encodes it on the
//! caller's thread instead). Encoded blobs stream into the open pack of their
//! kind, a staged store object: trees and data go to separate packs, so
//! reading a snapshot's trees (restore's plan, `ls`, `diff`, the next
//! backup's parent) touches few packs. Full packs go to one uploader thread
//! that publishes them. A bounded queue between every stage bounds memory.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{Scope, ScopedJoinHandle};

use crossbeam_channel::{bounded, Receiver, Sender};
use lifeboat_store::Kind;
use parking_lot::{Mutex, RwLock};

use crate::blob::{self, BlobKind};
use crate::error::{RepoError, Result};
use crate::id::Id;
use crate::index::{Index, IndexFile, IndexPack, INDEX_VERSION};
use crate::pack::{FinishedPack, PackWriter};
use crate::repository::Repository;

/// Write an index object after this many packs (about 128 MiB of data at
/// the default pack size), so a killed backup leaves at most that much data
/// unindexed (and the next backup indexes it anyway).
const INDEX_EVERY_PACKS: usize = 8;

/// Counters of what a run wrote.
#[derive(Debug, Default)]
pub struct SaveStats {
    /// New data blobs.
    pub data_blobs: AtomicU64,
    /// New tree blobs.
    pub tree_blobs: AtomicU64,
    /// Plaintext bytes of new blobs.
    pub bytes_added: AtomicU64,
    /// Stored bytes of new blobs.
    pub bytes_stored: AtomicU64,
}

enum Job {
    Plain(BlobKind, Id, Vec<u8>),
    Encoded(BlobKind, Id, Vec<u8>, u32),
}

/// Shared entry point for blobs during a write run.
pub struct BlobSaver<'a> {
    repo: &'a Repository,
    index: &'a Index,
    seen: Mutex<HashSet<Id>>,
    jobs: RwLock<Option<Sender<Job>>>,
    jobs_rx: Mutex<Option<Receiver<Job>>>,
    /// The open pack of each kind, indexed by [`pack_slot`].
    packer: [Mutex<Option<PackWriter>>; 2],
    /// Buffers of finished jobs, reused for the next (a fresh buffer per
    /// chunk is zeroed, page-faulted memory).
    spare: Mutex<Vec<Vec<u8>>>,
    /// Largest buffer kept in `spare` ([`BlobSaver::keep_large_buffers`]).
    spare_max: usize,
    upload: RwLock<Option<Sender<FinishedPack>>>,
    upload_rx: Mutex<Option<Receiver<FinishedPack>>>,
    failed: AtomicBool,
    /// Set by `start`: before it, nothing would drain the queues, so a
    /// save is refused instead of blocking forever.
    started: AtomicBool,
    /// What was written.
    pub stats: SaveStats,
}

/// The running pipeline's threads; call [`Pipeline::finish`] to flush.
pub struct Pipeline<'scope> {
    compressors: Vec<ScopedJoinHandle<'scope, Result<()>>>,
    uploader: ScopedJoinHandle<'scope, Result<Vec<IndexPack>>>,
}

impl<'a> BlobSaver<'a> {
    /// A saver deduplicating against `index`.
    pub fn new(repo: &'a Repository, index: &'a Index) -> Self {
        let (tx, rx) = bounded::<Job>(crate::cores() * 2);
        // One finished pack may wait while the previous one is published:
        // compressors keep working through the uploader's fsync. Packs are
        // streamed into staged objects, so none is held in memory.
        let (upload_tx, upload_rx) = bounded::<FinishedPack>(1);
        BlobSaver {
            repo,
            index,
            seen: Mutex::new(HashSet::new()),
            jobs: RwLock::new(Some(tx)),
            jobs_rx: Mutex::new(Some(rx)),
            packer: [Mutex::new(None), Mutex::new(None)],
            spare: Mutex::new(Vec::new()),
            spare_max: typical_chunk(repo),
            upload: RwLock::new(Some(upload_tx)),
            upload_rx: Mutex::new(Some(upload_rx)),
            failed: AtomicBool::new(false),
            started: AtomicBool::new(false),
            stats: SaveStats::default(),
        }
    }

    /// Starts compressor and uploader threads in `scope`.
    pub fn start<'scope>(&'scope self, scope: &'scope Scope<'scope, '_>) -> Pipeline<'scope>
    where
        'a: 'scope,
    {
        self.started.store(true, Ordering::SeqCst);
        let upload_rx = self.upload_rx.lock().take().unwrap_or_else(|| bounded(0).1);
        let uploader = scope.spawn(move || self.flag(upload_loop(self.repo, upload_rx)));
        // The compressors hold the only receivers: if they all stop, every
        // producer's send fails instead of blocking forever.
        let jobs_rx = self.jobs_rx.lock().take().unwrap_or_else(|| bounded(0).1);
        let compressors = (0..crate::cores())
            .map(|_| {
                let rx = jobs_rx.clone();
                scope.spawn(move || self.flag(self.compress_loop(rx)))
            })
            .collect();
        Pipeline {
            compressors,
            uploader,
        }
    }

    fn flag<T>(&self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.failed.store(true, Ordering::SeqCst);
        }
        r
    }

    /// Saves a blob unless it exists; returns its id. The compressor
    /// threads encode it, so the caller can go on reading.
    pub fn save(&self, kind: BlobKind, data: &[u8]) -> Result<Id> {
        self.save_with(kind, data, None)
    }

    /// Like [`BlobSaver::save`], but with `encoder` given the blob is
    /// encoded and packed on the calling thread: no copy, no hand-off.
    /// Readers do this while they alone keep every core busy.
    pub fn save_with(
        &self,
        kind: BlobKind,
        data: &[u8],
        encoder: Option<&mut blob::Encoder>,
    ) -> Result<Id> {
        self.check_started()?;
        let id = self.repo.key().blob_id(data);
        if self.index.has_live(&id) || !self.seen.lock().insert(id) {
            return Ok(id);
        }
        self.count(kind, data.len() as u64);
        match encoder {
            Some(enc) => {
                let stored = enc.encode(self.repo.key(), data);
                self.add_to_pack(kind, id, stored, data.len() as u32)?;
            }
            None => {
                let typical = typical_chunk(self.repo);
                let mut copy = self.spare.lock().pop().unwrap_or_default();
                copy.clear();
                copy.reserve(typical.max(data.len()));
                copy.extend_from_slice(data);
                self.send(Job::Plain(kind, id, copy))?
            }
        }
        Ok(id)
    }

    /// A fresh encoder at the repository's compression level.
    pub fn encoder(&self) -> blob::Encoder {
        blob::Encoder::new(self.repo.config().compression)
    }

    fn compress_loop(&self, rx: Receiver<Job>) -> Result<()> {
        let mut encoder = self.encoder();
        for job in rx {
            match job {
                Job::Plain(kind, id, data) => {
                    let stored = encoder.encode(self.repo.key(), &data);
                    self.add_to_pack(kind, id, stored, data.len() as u32)?;
                    self.recycle(data);
                }
                Job::Encoded(kind, id, stored, raw) => self.add_to_pack(kind, id, &stored, raw)?,
            }
        }
        Ok(())
    }

    /// Keeps a job's buffer for the next one, unless enough are kept or it
    /// is larger than a typical chunk (memory stays bounded).
    fn recycle(&self, buf: Vec<u8>) {
        let mut spare = self.spare.lock();
        // As many as can be in flight: queued, being encoded, one more.
        if buf.capacity() <= self.spare_max && spare.len() < 3 * crate::cores() + 1 {
            spare.push(buf);
        }
    }

    /// Keeps buffers of any chunk size for reuse, not only typical ones: for
    /// one stream, whose chunks are often far above the average (a
    /// database dump's averaged 3.9 MB), and where fresh pages for each were
    /// a tenth of the backup's time. Peak memory stays what the jobs in
    /// flight need anyway: no more buffers are kept than can be in flight.
    /// A tree backup keeps only typical ones, so a few large files do not
    /// leave large buffers resident for the rest of the run.
    pub fn keep_large_buffers(&mut self) {
        self.spare_max = self.repo.config().chunker.max_size as usize;
    }

    /// Appends an encoded blob to the open pack; a full pack goes to the
    /// uploader.
    fn add_to_pack(&self, kind: BlobKind, id: Id, stored: &[u8], raw_len: u32) -> Result<()> {
        self.stats
            .bytes_stored
            .fetch_add(stored.len() as u64, Ordering::Relaxed);
        let full = {
            let mut guard = self.packer[pack_slot(kind)].lock();
            let w = match guard.as_mut() {
                Some(w) => w,
                None => guard.insert(PackWriter::new(self.repo.store().stage(Kind::Pack)?)),
            };
            w.add(kind, id, stored, raw_len)?;
            if w.size() >= u64::from(self.repo.config().pack_size) {
                guard.take()
            } else {
                None
            }
        };
        if let Some(w) = full {
            self.ship(w.finish(self.repo.key())?)?;
        }
        Ok(())
    }

    fn ship(&self, pack: FinishedPack) -> Result<()> {
        self.check_started()?;
        match self.upload.read().as_ref() {
            Some(tx) => tx.send(pack).map_err(|_| pipeline_stopped()),
            None => Err(pipeline_stopped()),
        }
    }

    fn check_started(&self) -> Result<()> {
        if self.started.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(RepoError::Internal(
                "a blob was saved before the saver's pipeline was started".into(),
            ))
        }
    }

    fn send(&self, job: Job) -> Result<()> {
        self.check_started()?;
        match self.jobs.read().as_ref() {
            Some(tx) => tx.send(job).map_err(|_| pipeline_stopped()),
            None => Err(pipeline_stopped()),
        }
    }

    /// Adds an already encoded blob to the open pack on the calling thread
    /// (a copy's workers, which alone keep the cores busy); false if this
    /// run already had it.
    pub fn save_encoded_here(
        &self,
        kind: BlobKind,
        id: Id,
        stored: &[u8],
        raw_length: u32,
    ) -> Result<bool> {
        self.check_started()?;
        if !self.seen.lock().insert(id) {
            return Ok(false);
        }
        self.count(kind, u64::from(raw_length));
        self.add_to_pack(kind, id, stored, raw_length)?;
        Ok(true)
    }

    /// Adds an already encoded blob (prune's repack copies stored bytes).
    pub fn save_encoded(
        &self,
        kind: BlobKind,
        id: Id,
        stored: Vec<u8>,
        raw_length: u32,
    ) -> Result<()> {
        if !self.seen.lock().insert(id) {
            return Ok(());
        }
        self.count(kind, u64::from(raw_length));
        self.send(Job::Encoded(kind, id, stored, raw_length))
    }

    fn count(&self, kind: BlobKind, len: u64) {
        match kind {
            BlobKind::Data => self.stats.data_blobs.fetch_add(1, Ordering::Relaxed),
            BlobKind::Tree => self.stats.tree_blobs.fetch_add(1, Ordering::Relaxed),
        };
        self.stats.bytes_added.fetch_add(len, Ordering::Relaxed);
    }

    /// Whether a stage failed; producers should stop.
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }
}

/// Which open pack a blob of `kind` goes to.
fn pack_slot(kind: BlobKind) -> usize {
    match kind {
        BlobKind::Data => 0,
        BlobKind::Tree => 1,
    }
}

/// Twice the average chunk: most chunks fit a buffer of this size.
fn typical_chunk(repo: &Repository) -> usize {
    2 * repo.config().chunker.avg_size as usize
}

fn pipeline_stopped() -> RepoError {
    RepoError::Internal("write pipeline stopped".into())
}

fn upload_loop(repo: &Repository, rx: Receiver<FinishedPack>) -> Result<Vec<IndexPack>> {
    let mut indexed = vec![];
    let mut pending = vec![];
    for p in rx {
        p.object.finish(&p.id.to_hex())?;
        crate::faults::crash_point("after-pack-upload");
        pending.push(IndexPack::live(p.id, p.size, &p.entries));
        if pending.len() >= INDEX_EVERY_PACKS {
            flush_index(repo, &mut pending, &mut indexed)?;
            crate::faults::crash_point("after-index-write");
        }
    }
    flush_index(repo, &mut pending, &mut indexed)?;
    Ok(indexed)
}

/// Writes an index object for `pending` packs and moves them to `indexed`.
fn flush_index(
    repo: &Repository,
    pending: &mut Vec<IndexPack>,
    indexed: &mut Vec<IndexPack>,
) -> Result<()> {
    if !pending.is_empty() {
        let file = IndexFile {
            version: INDEX_VERSION,
            packs: std::mem::take(pending),
        };
        repo.save_json(Kind::Index, &file)?;
        indexed.extend(file.packs);
    }
    Ok(())
}

impl Pipeline<'_> {
    /// Flushes everything: waits for compressors, uploads the last partial
    /// pack, writes the final index object. Returns the packs written.
    /// On failure, returns the first real error (the uploader's, if any).
    pub fn finish(self, saver: &BlobSaver<'_>) -> Result<Vec<IndexPack>> {
        // Dropping the only sender ends the compressors once they drain.
        drop(saver.jobs.write().take());
        let mut first_err = None;
        for c in self.compressors {
            let r = c
                .join()
                .unwrap_or_else(|_| Err(RepoError::Internal("compressor thread panicked".into())));
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        for open in &saver.packer {
            if first_err.is_some() {
                break;
            }
            if let Some(w) = open.lock().take() {
                if !w.is_empty() {
                    let shipped = w
                        .finish(saver.repo.key())
                        .map_err(RepoError::from)
                        .and_then(|p| saver.ship(p));
                    if let Err(e) = shipped {
                        first_err = Some(e);
                    }
                }
            }
        }
        // The uploader ends once the last sender is gone.
        drop(saver.upload.write().take());
        let uploaded = self
            .uploader
            .join()
            .unwrap_or_else(|_| Err(RepoError::Internal("uploader thread panicked".into())));
        match (uploaded, first_err) {
            (Err(e), _) => Err(e),
            (Ok(_), Some(e)) => Err(e),
            (Ok(p), None) => Ok(p),
        }
    }
}
