//! Writing restored content into a file: holes kept, large files written
//! around the page cache, writeback of large cached pieces started early.
//!
//! A restore writes gigabytes that nobody reads back soon. Through the page
//! cache every byte is copied into freshly allocated kernel pages (measured:
//! that copy was ≈40 % of a restore's CPU here, and slower still on a VM
//! whose host must first back those pages). A [`FileSink`] for a large file
//! therefore also holds an `O_DIRECT` descriptor: the page-aligned middle
//! of every write goes straight to the device from one reused, aligned
//! buffer, and only the unaligned ends of each run go through the cache.
//! The two never share a page (a page fully inside a run is written direct;
//! a page that a run only partly covers is written buffered), so the kernel
//! has nothing to reconcile. Where `O_DIRECT` is refused (some FUSE file
//! systems, tmpfs before Linux 6.6) the sink quietly writes everything
//! buffered. Durability is the restore's final `syncfs`, which covers both
//! paths.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Files at least this large are also opened with `O_DIRECT`.
const DIRECT_FROM: u64 = 1 << 20;

/// Alignment of direct writes: a page, a multiple of every logical block
/// size in use.
const ALIGN: usize = 4096;

/// Granularity of hole detection: runs of zeros this long stay holes.
const HOLE_BLOCK: usize = 64 << 10;

/// Pieces at least this large that went through the page cache have their
/// writeback started at once. Smaller ones are left to the kernel's
/// flusher and the restore's final `syncfs`, which allocate and write many
/// files in one pass: starting writeback file by file ran ext4's block
/// allocation and a bio per small file in the restoring thread (measured:
/// 2 s of a 7.8 s restore of 100 k files).
const WRITEBACK_FROM: usize = 64 << 10;

/// The most bytes staged for one direct write (a multiple of `ALIGN`).
const DIRECT_PIECE: usize = 1 << 20;

/// An open file being filled by a restore.
pub struct FileSink {
    buffered: File,
    direct: Option<File>,
}

/// A reusable buffer whose usable part starts on an `ALIGN` (4 KiB) boundary, as
/// `O_DIRECT` requires of memory.
#[derive(Default)]
pub struct AlignedBuf {
    raw: Vec<u8>,
}

impl AlignedBuf {
    fn slice(&mut self, len: usize) -> &mut [u8] {
        if self.raw.len() < len + ALIGN {
            self.raw = vec![0; len + ALIGN];
        }
        let off = self.raw.as_ptr().align_offset(ALIGN);
        &mut self.raw[off..off + len]
    }
}

impl FileSink {
    /// Creates a new file at `path` (failing if anything exists there, never
    /// following a symlink) with permission bits `mode`, to be filled up to
    /// `size`. A large file is sized at once, so its direct writes land
    /// inside the file; a small one grows as it is written and gets its
    /// final size with its metadata.
    pub fn create(path: &Path, size: u64, mode: u32) -> io::Result<FileSink> {
        let buffered = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(mode)
            .open(path)?;
        if size >= DIRECT_FROM {
            buffered.set_len(size)?;
        }
        Ok(FileSink {
            direct: Self::direct(path, size),
            buffered,
        })
    }

    /// Opens an existing file at `path` (never following a symlink there)
    /// whose final size is `size`.
    pub fn open(path: &Path, size: u64) -> io::Result<FileSink> {
        let buffered = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        Ok(FileSink {
            direct: Self::direct(path, size),
            buffered,
        })
    }

    /// The `O_DIRECT` descriptor of a large file, where the file system allows.
    fn direct(path: &Path, size: u64) -> Option<File> {
        (size >= DIRECT_FROM)
            .then(|| {
                OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECT)
                    .open(path)
                    .ok()
            })
            .flatten()
    }

    /// The file, for its metadata.
    pub fn file(&self) -> &File {
        &self.buffered
    }

    /// Writes `data` at `offset`, skipping zero blocks: skipped blocks stay
    /// holes (a hole at the end is closed by the file's final size), so a
    /// sparse file stays sparse. A large piece that went through the page
    /// cache has its writeback started at once.
    pub fn write_at(
        &mut self,
        data: &[u8],
        offset: u64,
        scratch: &mut AlignedBuf,
    ) -> io::Result<()> {
        let mut run: Option<usize> = None; // start of the pending non-zero run
        for (i, block) in data.chunks(HOLE_BLOCK).enumerate() {
            let start = i * HOLE_BLOCK;
            match (is_all_zero(block), run) {
                (false, None) => run = Some(start),
                (true, Some(r)) => {
                    self.write_run(&data[r..start], offset + r as u64, scratch)?;
                    run = None;
                }
                _ => {}
            }
        }
        if let Some(r) = run {
            self.write_run(&data[r..], offset + r as u64, scratch)?;
        }
        if self.direct.is_none() && data.len() >= WRITEBACK_FROM {
            start_writeback(&self.buffered, offset, data.len());
        }
        Ok(())
    }

    /// Writes one run of bytes: its whole pages direct when possible, the
    /// rest buffered.
    fn write_run(&mut self, data: &[u8], offset: u64, scratch: &mut AlignedBuf) -> io::Result<()> {
        let end = offset + data.len() as u64;
        let first_page = offset.next_multiple_of(ALIGN as u64);
        let last_page = end / ALIGN as u64 * ALIGN as u64;
        if self.direct.is_none() || last_page <= first_page {
            return self.buffered.write_all_at(data, offset);
        }
        let head = (first_page - offset) as usize;
        let middle = (last_page - first_page) as usize;
        if head > 0 {
            self.buffered.write_all_at(&data[..head], offset)?;
        }
        // In pieces of at most DIRECT_PIECE, so the staging buffer stays
        // small (measured: 26 MiB of a restore's peak heap for four
        // workers staging whole 8 MiB chunks).
        let mut done = 0;
        while done < middle {
            let n = (middle - done).min(DIRECT_PIECE);
            let piece = &data[head + done..head + done + n];
            let at = first_page + done as u64;
            match self.direct.as_ref() {
                Some(direct) => {
                    let buf = scratch.slice(n);
                    buf.copy_from_slice(piece);
                    match direct.write_all_at(buf, at) {
                        Ok(()) => {}
                        // Refused after all (an unusual block size): buffered from now on.
                        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                            self.direct = None;
                            self.buffered.write_all_at(piece, at)?;
                        }
                        Err(e) => return Err(e),
                    }
                }
                None => self.buffered.write_all_at(piece, at)?,
            }
            done += n;
        }
        if head + middle < data.len() {
            self.buffered
                .write_all_at(&data[head + middle..], last_page)?;
        }
        Ok(())
    }
}

/// Whether every byte of `b` is zero.
fn is_all_zero(b: &[u8]) -> bool {
    // Compared block by block against zeros: memcmp is vectorised.
    static ZEROS: [u8; 4096] = [0; 4096];
    b.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()])
}

/// Asks the kernel to start writing a range back now, without waiting.
/// On a machine with much RAM the kernel would otherwise keep the whole
/// restore dirty and write it only at the final `syncfs`, serially; this
/// overlaps the disk with decoding (measured: the final `syncfs` went from
/// ≈3 s to ≈0.1 s of a 2.5 GiB restore). A hint only: errors surface at
/// `syncfs`.
fn start_writeback(f: &File, offset: u64, len: usize) {
    // SAFETY: plain syscall on an open descriptor; no memory is passed.
    unsafe {
        libc::sync_file_range(
            f.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::MetadataExt;

    fn sized_file(dir: &Path, size: u64) -> std::path::PathBuf {
        let p = dir.join("f");
        let f = File::create(&p).unwrap();
        f.set_len(size).unwrap();
        p
    }

    #[test]
    fn sparse_writes_leave_zero_blocks_as_holes() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = vec![0u8; 8 << 20];
        data[10] = 1;
        data[5 << 20] = 2;
        let p = sized_file(dir.path(), data.len() as u64);
        let mut sink = FileSink::open(&p, data.len() as u64).unwrap();
        sink.write_at(&data, 0, &mut AlignedBuf::default()).unwrap();
        drop(sink);
        assert_eq!(std::fs::read(&p).unwrap(), data);
        assert!(std::fs::metadata(&p).unwrap().blocks() * 512 <= 4 * HOLE_BLOCK as u64);
    }

    #[test]
    fn create_makes_a_new_file_and_never_follows_or_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        let sink = FileSink::create(&big, DIRECT_FROM * 3, 0o640).unwrap();
        assert!(sink.direct.is_some());
        let m = std::fs::metadata(&big).unwrap();
        assert_eq!(m.len(), DIRECT_FROM * 3, "a large file is sized at once");
        assert_eq!(m.mode() & 0o777, 0o640 & !current_umask());
        assert!(FileSink::create(&big, 1, 0o600).is_err(), "exists");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(FileSink::create(&link, 1, 0o600).is_err());
        assert!(FileSink::open(&link, 1).is_err(), "O_NOFOLLOW");
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    }

    /// Read without changing it (other tests run in parallel).
    fn current_umask() -> u32 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
        u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
    }

    #[test]
    fn zero_detection() {
        assert!(is_all_zero(&[0; 1000]));
        assert!(is_all_zero(&[]));
        let mut v = vec![0u8; 1001];
        v[1000] = 1;
        assert!(!is_all_zero(&v));
        v[1000] = 0;
        v[3] = 1;
        assert!(!is_all_zero(&v));
    }

    #[test]
    fn large_files_on_this_file_system_get_a_direct_descriptor() {
        // The tests' temporary directory is on ext4 here (as in CI), which
        // supports O_DIRECT: the direct path below is really exercised.
        let dir = tempfile::tempdir().unwrap();
        let p = sized_file(dir.path(), DIRECT_FROM);
        assert!(FileSink::open(&p, DIRECT_FROM).unwrap().direct.is_some());
        assert!(FileSink::open(&p, DIRECT_FROM - 1)
            .unwrap()
            .direct
            .is_none());
    }

    #[test]
    fn without_a_direct_descriptor_everything_is_written_buffered() {
        // As on a file system that refuses O_DIRECT (FUSE, tmpfs before 6.6).
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8 | 1).collect();
        let p = sized_file(dir.path(), data.len() as u64);
        let mut sink = FileSink::open(&p, 0).unwrap();
        assert!(sink.direct.is_none());
        let mut scratch = AlignedBuf::default();
        sink.write_at(&data[1_234_567..], 1_234_567, &mut scratch)
            .unwrap();
        sink.write_at(&data[..1_234_567], 0, &mut scratch).unwrap();
        drop(sink);
        assert_eq!(std::fs::read(&p).unwrap(), data);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Pieces of any size at any offsets, in any order, with zero runs:
        /// the file ends up exactly equal to the data.
        #[test]
        fn pieces_at_unaligned_offsets_reassemble_exactly(
            cuts in proptest::collection::vec(1usize..300_000, 1..12),
            zero_from in 0usize..2_000_000,
            zero_len in 0usize..400_000,
            reverse in any::<bool>(),
        ) {
            let len: usize = cuts.iter().sum();
            let mut data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 | 1).collect();
            let z = zero_from.min(len);
            let zl = zero_len.min(len - z);
            data[z..z + zl].fill(0);
            let dir = tempfile::tempdir().unwrap();
            let p = sized_file(dir.path(), len as u64);
            let mut sink = FileSink::open(&p, DIRECT_FROM.max(len as u64)).unwrap();
            let mut scratch = AlignedBuf::default();
            let mut pieces = vec![];
            let mut at = 0;
            for c in &cuts {
                pieces.push((at, *c));
                at += c;
            }
            if reverse {
                pieces.reverse();
            }
            for (at, c) in pieces {
                sink.write_at(&data[at..at + c], at as u64, &mut scratch).unwrap();
            }
            drop(sink);
            prop_assert_eq!(std::fs::read(&p).unwrap(), data);
        }
    }
}
