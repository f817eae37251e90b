//! Measures this machine's limits for the pieces of the backup pipeline, and
//! the effect of format parameters. Used by `bench/run.sh`; prints Markdown.
//!
//! `cargo run --release -p lifeboat-repo --example limits -- SAMPLE_FILE [CHANGED_FILE]`
//!
//! SAMPLE_FILE: a few hundred MB of real data (the bench concatenates part of
//! its tree). CHANGED_FILE: the same data after a small change, to compare
//! deduplication at different chunk sizes.
//!
//! `limits --limit TREE`: the machine's limit for an initial backup of TREE,
//! as the issue defines it (each stage's throughput on all cores): the
//! stages every backup must run (read every file, chunk, hash, compress the
//! unique chunks, seal), each timed on all cores over TREE's own data, and
//! their sum, for zstd levels 3 and 1.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use aes_gcm::aead::{Aead, KeyInit};
use lifeboat_repo::blob::Encoder;
use lifeboat_repo::chunker::{Chunker, ChunkerParams};
use lifeboat_repo::crypto::MasterKey;

fn mibps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / 1_048_576.0 / secs
}

fn time<F: FnMut()>(mut f: F) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn par<F: Fn(&[u8]) + Sync>(data: &[u8], threads: usize, f: F) -> f64 {
    let part = data.len() / threads;
    time(|| {
        std::thread::scope(|s| {
            for i in 0..threads {
                let slice = &data[i * part..(i + 1) * part];
                let f = &f;
                s.spawn(move || f(slice));
            }
        })
    })
}

/// Lists `dir` depth first, `lstat`-ing every entry, into `out` (regular
/// files only).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            walk(&path, out);
        } else if meta.is_file() {
            out.push(path);
        }
    }
}

/// Runs `f` on every item of `items` on `threads` threads (items handed out
/// one at a time, as a backup's readers take files), each thread with its
/// own state from `init` (reused buffers and contexts, as in a backup);
/// returns seconds and the results in order.
fn par_items<T: Sync, S, R: Send>(
    items: &[T],
    threads: usize,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, &T) -> R + Sync,
) -> (f64, Vec<R>) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let secs = time(|| {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let mut state = init();
                    let mut mine = vec![];
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, f(&mut state, item)));
                    }
                    results.lock().unwrap().extend(mine);
                });
            }
        })
    });
    let mut r = results.into_inner().unwrap();
    r.sort_by_key(|(i, _)| *i);
    (secs, r.into_iter().map(|(_, x)| x).collect())
}

/// The machine's limit for an initial backup of `tree`: each stage's work
/// that no backup can avoid, timed on all cores over the tree's own data,
/// summed (the stages share the cores). Bookkeeping (metadata, trees,
/// index, hand-offs between threads) is not counted, nor is the disk
/// write, which overlaps with the CPU work.
fn limit(tree: &Path, threads: usize) {
    let key = MasterKey::generate();
    let chunker = Chunker::new(ChunkerParams::DEFAULT, key.chunker_seed());
    let mut files = vec![];
    walk(tree, &mut files);
    // Read into one reused buffer per thread, as a backup does; the data
    // is then loaded once more, untimed, for the later stages.
    let (read, _) = par_items(&files, threads, Vec::new, |buf, p| {
        buf.clear();
        std::fs::File::open(p)
            .and_then(|mut f| f.read_to_end(buf))
            .unwrap_or(0)
    });
    let data: Vec<Vec<u8>> = files
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_default())
        .collect();
    let total: usize = data.iter().map(Vec::len).sum();
    let (chunk, cuts) = par_items(&data, threads, || (), |_, d| chunker.chunk_lengths(d));
    let chunks: Vec<&[u8]> = data
        .iter()
        .zip(&cuts)
        .flat_map(|(d, lens)| {
            let mut pos = 0;
            lens.iter().map(move |&n| {
                pos += n;
                &d[pos - n..pos]
            })
        })
        .collect();
    let (hash, ids) = par_items(&chunks, threads, || (), |_, c| key.blob_id(c));
    let mut seen = HashSet::new();
    let unique: Vec<&[u8]> = chunks
        .iter()
        .zip(ids)
        .filter(|(_, id)| seen.insert(*id))
        .map(|(c, _)| *c)
        .collect();
    let unique_bytes: usize = unique.iter().map(|c| c.len()).sum();
    let mib = |b: usize| b as f64 / 1_048_576.0;
    println!("| stage | MiB | seconds on {threads} threads |");
    println!("|---|---:|---:|");
    println!(
        "| read {} files from the page cache | {:.0} | {read:.2} |",
        files.len(),
        mib(total)
    );
    println!("| FastCDC | {:.0} | {chunk:.2} |", mib(total));
    println!("| BLAKE3 keyed | {:.0} | {hash:.2} |", mib(total));
    let common = read + chunk + hash;
    let mut sums = vec![];
    for level in [3, 1] {
        // lifeboat's own encoder: zstd into a reused buffer (stored raw
        // when it does not shrink), then XChaCha20-Poly1305 in place.
        let (encode, out) = par_items(
            &unique,
            threads,
            || Encoder::new(level),
            |e, c| e.encode(&key, c).len(),
        );
        let stored: usize = out.iter().sum();
        println!(
            "| zstd level {level} and XChaCha20-Poly1305 of the unique chunks ({:.0} MiB stored) | {:.0} | {encode:.2} |",
            mib(stored),
            mib(unique_bytes)
        );
        sums.push((level, common + encode));
    }
    println!();
    for (level, sum) in sums {
        println!("limit at zstd level {level}: {sum:.2} s");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    if args.get(1).map(String::as_str) == Some("--limit") {
        limit(Path::new(&args[2]), threads);
        return;
    }
    let data = std::fs::read(&args[1]).unwrap();
    let n = data.len();
    let key = MasterKey::generate();
    println!("| operation | 1 thread MiB/s | {threads} threads MiB/s |");
    println!("|---|---:|---:|");
    let row = |name: &str, f: &(dyn Fn(&[u8]) + Sync)| {
        let one = mibps(n, par(&data, 1, f));
        let all = mibps(n, par(&data, threads, f));
        println!("| {name} | {one:.0} | {all:.0} |");
    };
    row("BLAKE3 keyed (1 MiB pieces)", &|d: &[u8]| {
        for c in d.chunks(1 << 20) {
            std::hint::black_box(key.blob_id(c));
        }
    });
    for level in [1, 3] {
        row(
            &format!("zstd level {level} (1 MiB pieces)"),
            &|d: &[u8]| {
                for c in d.chunks(1 << 20) {
                    std::hint::black_box(zstd::bulk::compress(c, level).unwrap());
                }
            },
        );
    }
    row("XChaCha20-Poly1305 (1 MiB pieces)", &|d: &[u8]| {
        for c in d.chunks(1 << 20) {
            std::hint::black_box(key.seal(c));
        }
    });
    row("AES-256-GCM (1 MiB pieces)", &|d: &[u8]| {
        let c = aes_gcm::Aes256Gcm::new(&[7u8; 32].into());
        for (i, p) in d.chunks(1 << 20).enumerate() {
            let mut nonce = [0u8; 12];
            nonce[..8].copy_from_slice(&(i as u64).to_le_bytes());
            std::hint::black_box(c.encrypt(&nonce.into(), p).unwrap());
        }
    });
    row("FastCDC 512K/1M/8M cut points", &|d: &[u8]| {
        let ch = Chunker::new(ChunkerParams::DEFAULT, 42);
        std::hint::black_box(ch.chunk_lengths(d));
    });
    let ratio = |level: i32| {
        let out: usize = data
            .chunks(1 << 20)
            .map(|c| zstd::bulk::compress(c, level).unwrap().len().min(c.len()))
            .sum();
        n as f64 / out as f64
    };
    println!();
    println!(
        "compression ratio of the sample: zstd 1 = {:.3}, zstd 3 = {:.3}",
        ratio(1),
        ratio(3)
    );

    if let Some(changed) = args.get(2) {
        let changed = std::fs::read(changed).unwrap();
        println!();
        println!("| chunker min/avg/max | chunks | stored after both versions (MiB) | unique chunks of version 2 (MiB) |");
        println!("|---|---:|---:|---:|");
        for (min, avg, max) in [
            (256 << 10, 512 << 10, 4 << 20),
            (512 << 10, 1 << 20, 8 << 20),
            (1 << 20, 2 << 20, 16 << 20),
        ] {
            let ch = Chunker::new(
                ChunkerParams {
                    min_size: min,
                    avg_size: avg,
                    max_size: max,
                },
                42,
            );
            let mut seen = HashSet::new();
            let mut stored = 0usize;
            let mut count = 0;
            let mut new_in_second = 0usize;
            for (v, d) in [&data, &changed].into_iter().enumerate() {
                let mut pos = 0;
                for len in ch.chunk_lengths(d) {
                    let id = key.blob_id(&d[pos..pos + len]);
                    count += 1;
                    if seen.insert(id) {
                        stored += len;
                        if v == 1 {
                            new_in_second += len;
                        }
                    }
                    pos += len;
                }
            }
            println!(
                "| {}K/{}K/{}K | {count} | {:.1} | {:.1} |",
                min >> 10,
                avg >> 10,
                max >> 10,
                stored as f64 / 1048576.0,
                new_in_second as f64 / 1048576.0
            );
        }
    }
}
