//! Content-defined chunking (FastCDC 2020 with a per-repository gear seed).
//!
//! We drive `fastcdc::v2020::cut_gear` over our own buffer instead of using
//! the crate's `StreamCDC`, which allocates a fresh `Vec` per chunk and cannot
//! share one read buffer across files.

use std::io::{self, Read};

use fastcdc::v2020::{cut_gear, get_gear_with_seed, logarithm2, Normalization, MASKS};
use serde::{Deserialize, Serialize};

/// Chunk size bounds, stored in the repository config.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkerParams {
    /// Minimum chunk size in bytes.
    pub min_size: u32,
    /// Target average chunk size in bytes.
    pub avg_size: u32,
    /// Maximum chunk size in bytes.
    pub max_size: u32,
}

impl ChunkerParams {
    /// Defaults chosen by measurement (docs/FORMAT.md): 512 KiB / 1 MiB / 8 MiB.
    pub const DEFAULT: ChunkerParams = ChunkerParams {
        min_size: 512 << 10,
        avg_size: 1 << 20,
        max_size: 8 << 20,
    };

    /// Whether the bounds are ones FastCDC accepts.
    pub fn is_valid(&self) -> bool {
        use fastcdc::v2020::*;
        (MINIMUM_MIN..=MINIMUM_MAX).contains(&self.min_size)
            && (AVERAGE_MIN..=AVERAGE_MAX).contains(&self.avg_size)
            && (MAXIMUM_MIN..=MAXIMUM_MAX).contains(&self.max_size)
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size
    }
}

/// A chunker: parameters plus the seeded gear tables.
#[derive(Clone)]
pub struct Chunker {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
}

impl Chunker {
    /// A chunker for `params` (must be valid) and `seed`.
    pub fn new(params: ChunkerParams, seed: u64) -> Chunker {
        let bits = logarithm2(params.avg_size);
        let norm = Normalization::Level1.bits();
        let (gear, gear_ls) = get_gear_with_seed(seed);
        Chunker {
            min: params.min_size as usize,
            avg: params.avg_size as usize,
            max: params.max_size as usize,
            mask_s: MASKS[(bits + norm) as usize],
            mask_l: MASKS[(bits - norm) as usize],
            gear,
            gear_ls,
        }
    }

    /// The maximum chunk size.
    pub fn max_size(&self) -> usize {
        self.max
    }

    /// Length of the first chunk of `data`. Only valid when `data` holds at
    /// least `max_size` bytes or is the end of the stream.
    pub fn cut(&self, data: &[u8]) -> usize {
        let (_, n) = cut_gear(
            data,
            self.min,
            self.avg,
            self.max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        n.max(1).min(data.len())
    }

    /// Splits a whole in-memory buffer into chunk lengths.
    pub fn chunk_lengths(&self, data: &[u8]) -> Vec<usize> {
        let mut out = vec![];
        let mut pos = 0;
        while pos < data.len() {
            let n = self.cut(&data[pos..]);
            out.push(n);
            pos += n;
        }
        out
    }

    /// Reads `reader` to the end, calling `f` with each chunk in order.
    /// `buf` is reused across calls to keep allocations down.
    pub fn for_each_chunk<R: Read, E: From<io::Error>>(
        &self,
        mut reader: R,
        buf: &mut Vec<u8>,
        mut f: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<u64, E> {
        // A window of one maximal chunk plus a quarter: a cut is final once
        // a boundary is found before the end of the bytes held (FastCDC
        // decides a boundary from the bytes before it), the window holds a
        // maximal chunk, or the stream ended; only an undecided tail is ever
        // moved to the front. The buffer grows as far as the largest file
        // needs and is never re-zeroed.
        let cap = self.max + self.max / 4;
        let (mut start, mut end, mut eof, mut total) = (0usize, 0usize, false, 0u64);
        loop {
            if start < end {
                let n = self.cut(&buf[start..end]);
                if n < end - start || end - start >= self.max || eof {
                    f(&buf[start..start + n])?;
                    start += n;
                    continue;
                }
            } else if eof {
                return Ok(total);
            }
            // Undecided (or empty): fill the window before cutting again,
            // so a stream read in small pieces is not scanned over and over.
            if start > 0 {
                buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
            }
            while !eof && end < cap {
                let want = cap.min(end + READ_SIZE);
                if buf.len() < want {
                    buf.resize(want, 0);
                }
                match reader.read(&mut buf[end..want]) {
                    Ok(0) => eof = true,
                    Ok(n) => {
                        end += n;
                        total += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// Bytes asked of the reader at a time.
const READ_SIZE: usize = 1 << 20;

/// How a stream is cut into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Chunking {
    /// Content-defined (FastCDC): an insertion shifts no later boundary.
    #[default]
    ContentDefined,
    /// A tar archive whose members change in place, page by page (a
    /// database's files): each member's data in fixed blocks of this many
    /// bytes aligned to the member's start, so a changed page costs one
    /// block, not a content-defined chunk (about 1 MiB); headers (which
    /// carry times) and padding are chunks of their own.
    TarBlocks(u32),
}

const TAR_BLOCK: usize = 512;

/// Cuts a tar stream as [`Chunking::TarBlocks`] says, calling `f` with each
/// chunk in order; the chunks together are exactly the stream, whatever it
/// holds (bytes that do not parse as tar are cut in plain blocks).
/// Hand-written: no tar crate hands out members' bytes in place while
/// keeping every byte of the archive (headers, padding, end blocks).
pub fn for_each_tar_block<R: Read, E: From<io::Error>>(
    mut reader: R,
    block: usize,
    buf: &mut Vec<u8>,
    mut f: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<u64, E> {
    let block = block.max(TAR_BLOCK);
    if buf.len() < block + TAR_BLOCK {
        buf.resize(block + TAR_BLOCK, 0);
    }
    let mut total = 0u64;
    // Bytes read but not yet handed out: the previous member's padding,
    // held to lead the next header's chunk.
    let mut held = 0usize;
    loop {
        let got = read_full(&mut reader, &mut buf[held..held + TAR_BLOCK])?;
        let header = &buf[held..held + got];
        let size = (got == TAR_BLOCK).then(|| tar_size(header)).flatten();
        let Some(size) = size.filter(|_| !header.iter().all(|&b| b == 0)) else {
            // The end blocks, a short tail or no tar at all: the rest in
            // plain blocks.
            let n = held + got;
            if n > 0 {
                f(&buf[..n])?;
                total += n as u64;
            }
            loop {
                let more = read_full(&mut reader, &mut buf[..block])?;
                if more == 0 {
                    return Ok(total);
                }
                f(&buf[..more])?;
                total += more as u64;
            }
        };
        let head = held + TAR_BLOCK;
        f(&buf[..head])?;
        total += head as u64;
        let mut left = size;
        while left > 0 {
            let want = (left as usize).min(block);
            let n = read_full(&mut reader, &mut buf[..want])?;
            if n > 0 {
                f(&buf[..n])?;
                total += n as u64;
            }
            if n < want {
                return Ok(total); // truncated archive: all of it was handed out
            }
            left -= n as u64;
        }
        let pad = (TAR_BLOCK - (size % TAR_BLOCK as u64) as usize) % TAR_BLOCK;
        held = read_full(&mut reader, &mut buf[..pad])?;
        if held < pad {
            if held > 0 {
                f(&buf[..held])?;
                total += held as u64;
            }
            return Ok(total);
        }
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A tar header's numeric field: octal digits (NUL- or space-padded), or
/// base-256 with the high bit of the first byte set.
pub fn tar_number(f: &[u8]) -> Option<u64> {
    let first = *f.first()?;
    if first & 0x80 != 0 {
        let mut n = u64::from(first & 0x7f);
        for &b in &f[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(n);
    }
    let s = std::str::from_utf8(f)
        .ok()?
        .trim_matches(|c: char| c == '\0' || c == ' ');
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

/// A ustar header's size field; `None` when the block is not a tar header
/// (its checksum does not match).
pub fn tar_size(h: &[u8]) -> Option<u64> {
    let stored = tar_number(&h[148..156])?;
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    (sum == stored).then(|| tar_number(&h[124..136])).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn small() -> ChunkerParams {
        ChunkerParams {
            min_size: 1024,
            avg_size: 4096,
            max_size: 16384,
        }
    }

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    fn boundaries(c: &Chunker, data: &[u8]) -> Vec<usize> {
        let mut pos = 0;
        c.chunk_lengths(data)
            .into_iter()
            .map(|n| {
                pos += n;
                pos
            })
            .collect()
    }

    #[test]
    fn streaming_matches_in_memory_and_respects_bounds() {
        let c = Chunker::new(small(), 42);
        let data = pseudo_random(300_000, 7);
        let mut streamed = vec![];
        let mut buf = vec![];
        // A reader that returns odd-sized pieces.
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = out.len().min(self.0.len()).min(777);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let total = c
            .for_each_chunk::<_, io::Error>(Dribble(&data), &mut buf, |ch| {
                streamed.push(ch.to_vec());
                Ok(())
            })
            .unwrap();
        assert_eq!(total, data.len() as u64);
        assert_eq!(streamed.concat(), data);
        let lens: Vec<usize> = streamed.iter().map(|c| c.len()).collect();
        assert_eq!(lens, c.chunk_lengths(&data));
        for l in &lens[..lens.len() - 1] {
            assert!((1024..=16384).contains(l), "chunk of {l} bytes");
        }
    }

    #[test]
    fn seed_changes_boundaries() {
        let data = pseudo_random(200_000, 9);
        assert_ne!(
            boundaries(&Chunker::new(small(), 1), &data),
            boundaries(&Chunker::new(small(), 2), &data)
        );
    }

    /// A reader that hands out at most `step` bytes per call.
    struct Pieces<'a>(&'a [u8], usize);
    impl Read for Pieces<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = out.len().min(self.0.len()).min(self.1);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// However the stream arrives, in pieces of any size and with
        /// stretches that hold no boundary, it is cut exactly where the whole
        /// buffer is cut, and one window serves file after file.
        #[test]
        fn streamed_cuts_equal_in_memory_cuts(
            seed in any::<u64>(),
            len in 0usize..150_000,
            step in 1usize..40_000,
            flat_from in 0usize..150_000,
            flat_len in 0usize..60_000,
        ) {
            let c = Chunker::new(small(), seed);
            let mut data = pseudo_random(len, seed ^ 0xa5);
            let from = flat_from.min(len);
            let to = (from + flat_len).min(len);
            data[from..to].fill(7); // no boundary in a constant run
            let mut buf = vec![];
            for _ in 0..2 {
                let mut lens = vec![];
                let total = c
                    .for_each_chunk::<_, io::Error>(Pieces(&data, step), &mut buf, |ch| {
                        lens.push(ch.len());
                        Ok(())
                    })
                    .unwrap();
                prop_assert_eq!(total, len as u64);
                prop_assert_eq!(&lens, &c.chunk_lengths(&data));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        /// An insertion shifts only the boundaries near it: every boundary
        /// well after the insertion point reappears, shifted by its length.
        #[test]
        fn insert_shifts_only_nearby_boundaries(seed in any::<u64>(), at in 0usize..100_000, ins in proptest::collection::vec(any::<u8>(), 1..500)) {
            let c = Chunker::new(small(), seed);
            let data = pseudo_random(200_000, seed ^ 0x55);
            let mut changed = data[..at].to_vec();
            changed.extend_from_slice(&ins);
            changed.extend_from_slice(&data[at..]);
            let before = boundaries(&c, &data);
            let after: std::collections::HashSet<usize> = boundaries(&c, &changed).into_iter().collect();
            // Boundaries before the insertion minus one max chunk are untouched.
            for b in before.iter().filter(|&&b| b + 16384 < at) {
                prop_assert!(after.contains(b), "boundary {} before the insert moved", b);
            }
            // Boundaries far after it are shifted by exactly the inserted length.
            let far: Vec<usize> = before.iter().copied().filter(|&b| b > at + 4 * 16384).collect();
            let kept = far.iter().filter(|&&b| after.contains(&(b + ins.len()))).count();
            prop_assert!(kept * 10 >= far.len() * 9, "only {} of {} far boundaries survived", kept, far.len());
        }
    }

    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_mtime(1_700_000_000);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn tar_chunks(bytes: &[u8], block: usize) -> Vec<Vec<u8>> {
        let mut out = vec![];
        let mut buf = vec![];
        for_each_tar_block::<_, io::Error>(bytes, block, &mut buf, |c| {
            out.push(c.to_vec());
            Ok(())
        })
        .unwrap();
        out
    }

    proptest! {
        /// The chunks are the stream, tar or not, cut anywhere.
        #[test]
        fn tar_blocks_are_the_whole_stream(
            sizes in proptest::collection::vec(0usize..200_000, 0..5),
            junk in proptest::collection::vec(any::<u8>(), 0..3000),
            cut in 0usize..4000,
        ) {
            let data: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &n)| (0..n).map(|j| (i * 31 + j * 7) as u8).collect()).collect();
            let names: Vec<String> = (0..sizes.len()).map(|i| format!("base/1/{i}")).collect();
            let members: Vec<(&str, &[u8])> = names.iter().map(String::as_str).zip(data.iter().map(Vec::as_slice)).collect();
            let mut bytes = tar_of(&members);
            bytes.truncate(bytes.len().saturating_sub(cut));
            prop_assert_eq!(tar_chunks(&bytes, 65536).concat(), bytes.clone());
            prop_assert_eq!(tar_chunks(&junk, 65536).concat(), junk);
        }
    }

    #[test]
    fn a_changed_page_changes_one_block() {
        let page: Vec<u8> = (0..1_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut changed = page.clone();
        changed[300_000] ^= 1;
        let a = tar_chunks(
            &tar_of(&[
                ("global/pg_control", &[1u8; 8192][..]),
                ("base/1/1259", &page),
            ]),
            65536,
        );
        let b = tar_chunks(
            &tar_of(&[
                ("global/pg_control", &[1u8; 8192][..]),
                ("base/1/1259", &changed),
            ]),
            65536,
        );
        assert_eq!(a.len(), b.len());
        let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert_eq!(differ, 1, "only the block holding the changed byte");
        assert!(a.iter().all(|c| c.len() <= 65536 + 512));
    }
}
