//! Writing file content: blobs grouped by pack, each pack read in few
//! ranged reads on parallel threads, every blob verified, each file
//! finished by the thread that writes its last byte.

use super::*;

/// One place a blob's bytes go.
#[derive(Clone, Copy)]
pub(super) struct Target {
    pub(super) file: usize,
    pub(super) offset: u64,
}

pub(super) struct BlobJob {
    pub(super) id: Id,
    pub(super) offset: u32,
    pub(super) length: u32,
    pub(super) raw_length: u32,
    pub(super) targets: Vec<Target>,
}

/// Writes the content of `files`: every blob grouped by pack, packs read on
/// several threads. Each file is created by the first worker with bytes for
/// it and finished (size, owner, mode, times, by descriptor) by the worker
/// that writes its last byte; the files no worker finished (empty, or with
/// a damaged or missing blob) are created if need be and finished after.
pub(super) fn write_content(
    repo: &IndexedRepository,
    files: &mut [FileJob],
    entries: &[Entry],
    summary: &mut RestoreSummary,
    progress: &dyn Progress,
) {
    let mut by_pack: HashMap<u32, HashMap<Id, BlobJob>> = HashMap::new();
    let mut file_problems: Vec<Option<String>> = vec![None; files.len()];
    for (fi, f) in files.iter_mut().enumerate() {
        if f.created.get().is_some() {
            continue; // could not be cleared
        }
        let mut offset = 0u64;
        for id in &f.node.content {
            match repo.index().get(id) {
                Some(loc) => {
                    let job = by_pack
                        .entry(loc.pack)
                        .or_default()
                        .entry(*id)
                        .or_insert_with(|| BlobJob {
                            id: *id,
                            offset: loc.offset,
                            length: loc.length,
                            raw_length: loc.raw_length,
                            targets: vec![],
                        });
                    job.targets.push(Target { file: fi, offset });
                    offset += u64::from(loc.raw_length);
                }
                None => {
                    file_problems[fi].get_or_insert_with(|| {
                        format!("blob {} is missing from the repository", id.short())
                    });
                    // Unknown length: later blobs of this file cannot be placed.
                    break;
                }
            }
        }
        *f.remaining.get_mut() = offset;
    }
    let files: &[FileJob] = files;
    let queue: Mutex<Vec<(u32, Vec<BlobJob>)>> = Mutex::new(
        by_pack
            .into_iter()
            .map(|(p, m)| {
                let mut v: Vec<BlobJob> = m.into_values().collect();
                v.sort_by_key(|b| b.offset);
                (p, v)
            })
            .collect(),
    );
    let problems = Mutex::new(file_problems);
    let workers = crate::cores() * 2;
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut worker = PackWorker::default();
                loop {
                    let Some((pack, blobs)) = queue.lock().pop() else {
                        break;
                    };
                    restore_pack(repo, pack, &blobs, files, &mut worker, &problems, progress);
                }
            });
        }
    });

    // Files not finished by a content worker: created if need be, then
    // finished.
    let unfinished: Vec<usize> = (0..files.len())
        .filter(|&fi| !files[fi].finished.load(Ordering::Acquire))
        .collect();
    let finish_results = par_map(&unfinished, |&fi| {
        let f = &files[fi];
        f.sink().and_then(|sink| f.finish(&sink))
    });
    let mut problems = problems.into_inner();
    for (fi, r) in unfinished.into_iter().zip(finish_results) {
        if let Err(e) = r {
            problems[fi].get_or_insert(e);
        }
    }
    for (fi, f) in files.iter().enumerate() {
        if matches!(f.created.get(), Some(Ok(()))) {
            summary.files += 1;
            summary.bytes += f.node.size;
        }
        if let Some(message) = problems[fi].take() {
            let rel = entries[f.entry].rel.clone();
            summary.problems.push(RestoreProblem { path: rel, message });
        }
    }
}

/// A file being restored.
pub(super) struct FileJob<'a> {
    pub(super) path: PathBuf,
    /// Its entry in the plan.
    pub(super) entry: usize,
    pub(super) node: &'a Node,
    /// Set once: created (by the first worker with bytes for it, or at the
    /// end), or why it could not be.
    pub(super) created: OnceLock<std::result::Result<(), String>>,
    /// Content bytes not yet written.
    pub(super) remaining: AtomicU64,
    /// Size, owner, mode and times set.
    pub(super) finished: AtomicBool,
}

impl<'a> FileJob<'a> {
    pub(super) fn new(path: PathBuf, entry: usize, node: &'a Node) -> FileJob<'a> {
        FileJob {
            path,
            entry,
            node,
            created: OnceLock::new(),
            remaining: AtomicU64::new(0),
            finished: AtomicBool::new(false),
        }
    }

    /// The file open for writing, created if nobody has yet.
    pub(super) fn sink(&self) -> std::result::Result<FileSink, String> {
        let mut made = None;
        let created = self.created.get_or_init(|| {
            FileSink::create(&self.path, self.node.size, metadata::create_mode(self.node))
                .map(|s| made = Some(s))
                .map_err(|e| format!("create: {e}"))
        });
        match (created, made) {
            (Err(e), _) => Err(e.clone()),
            (Ok(()), Some(sink)) => Ok(sink),
            (Ok(()), None) => FileSink::open(&self.path, self.node.size)
                .map_err(|e| format!("open for writing: {e}")),
        }
    }

    /// Sets size, owner, mode and times through `sink`.
    pub(super) fn finish(&self, sink: &FileSink) -> std::result::Result<(), String> {
        self.finished.store(true, Ordering::Release);
        metadata::apply(At::File(sink.file()), self.node).map_err(|e| format!("metadata: {e}"))
    }
}

/// What a content thread keeps from pack to pack.
#[derive(Default)]
pub(super) struct PackWorker {
    /// Files open for writing (at most 64).
    pub(super) open: HashMap<usize, FileSink>,
    pub(super) decoder: blob::Decoder,
    /// The bytes read from the current pack.
    pub(super) buf: Vec<u8>,
    /// Staging for direct writes.
    pub(super) aligned: AlignedBuf,
}

pub(super) fn restore_pack(
    repo: &IndexedRepository,
    pack: u32,
    blobs: &[BlobJob],
    files: &[FileJob],
    worker: &mut PackWorker,
    problems: &Mutex<Vec<Option<String>>>,
    progress: &dyn Progress,
) {
    let PackWorker {
        open,
        decoder,
        buf,
        aligned,
    } = worker;
    let pack_id = repo.index().pack(pack).id;
    let name = pack_id.to_hex();
    let fail = |b: &BlobJob, msg: String| {
        let mut p = problems.lock();
        for t in &b.targets {
            p[t.file].get_or_insert_with(|| msg.clone());
        }
    };
    // Coalesce blobs separated by less than 1 MiB into one ranged read of
    // at most about READ_RANGE.
    let mut i = 0;
    while i < blobs.len() {
        let start = u64::from(blobs[i].offset);
        let mut end = start + u64::from(blobs[i].length);
        let mut j = i + 1;
        while j < blobs.len()
            && u64::from(blobs[j].offset) <= end + (1 << 20)
            && end - start < READ_RANGE
        {
            end = end.max(u64::from(blobs[j].offset) + u64::from(blobs[j].length));
            j += 1;
        }
        let read =
            repo.store()
                .get_range_into(lifeboat_store::Kind::Pack, &name, start, end - start, buf);
        for b in &blobs[i..j] {
            if let Err(e) = &read {
                fail(b, format!("pack {}: {e}", pack_id.short()));
                continue;
            }
            let off = (u64::from(b.offset) - start) as usize;
            // Blobs of a pack never overlap, so each is decrypted in place.
            let stored = &mut buf[off..off + b.length as usize];
            let plain = match decoder.decode_in_place(repo.key(), stored, &b.id, b.raw_length) {
                Ok(p) => p,
                Err(e) => {
                    fail(
                        b,
                        format!(
                            "blob {} in pack {} is damaged: {e}",
                            b.id.short(),
                            pack_id.short()
                        ),
                    );
                    continue;
                }
            };
            for t in &b.targets {
                progress.add(plain.len() as u64);
                let file = &files[t.file];
                if open.len() > 64 && !open.contains_key(&t.file) {
                    open.clear();
                }
                let sink = match open.entry(t.file) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => match file.sink() {
                        Ok(sink) => v.insert(sink),
                        Err(e) => {
                            problems.lock()[t.file].get_or_insert(e);
                            continue;
                        }
                    },
                };
                if let Err(e) = sink.write_at(plain, t.offset, aligned) {
                    problems.lock()[t.file].get_or_insert_with(|| format!("write: {e}"));
                }
                let len = plain.len() as u64;
                if file.remaining.fetch_sub(len, Ordering::AcqRel) == len {
                    // The last bytes of the file: every other write is done.
                    if let Some(sink) = open.remove(&t.file) {
                        if let Err(e) = file.finish(&sink) {
                            problems.lock()[t.file].get_or_insert(e);
                        }
                    }
                }
            }
        }
        i = j;
    }
}

/// The longest ranged read of a pack, per worker (measured on the bench
/// tree: 64 MiB ranges held 240 MiB at the peak, 4 MiB 187 MiB, at the
/// same speed).
const READ_RANGE: u64 = 4 << 20;
