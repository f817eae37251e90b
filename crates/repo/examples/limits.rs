//! Measures this machine's limits for the pieces of the backup pipeline, and
//! the effect of format parameters. Used by `bench/run.sh`; prints Markdown.
//!
//! `cargo run --release -p lifeboat-repo --example limits -- SAMPLE_FILE [CHANGED_FILE]`
//!
//! SAMPLE_FILE: a few hundred MB of real data (the bench concatenates part of
//! its tree). CHANGED_FILE: the same data after a small change, to compare
//! deduplication at different chunk sizes.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::collections::HashSet;
use std::time::Instant;

use aes_gcm::aead::{Aead, KeyInit};
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data = std::fs::read(&args[1]).unwrap();
    let n = data.len();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
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
