#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]
use lifeboat_repo::blob::BlobKind;
use lifeboat_repo::Repository;
use lifeboat_store::LocalStore;
use std::sync::Arc;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let store = Arc::new(LocalStore::new(path.into()));
    let repo = Repository::open(store, b"x").unwrap().load_index().unwrap();
    let idx = repo.index();
    let mut hist = [0u64; 12];
    let (mut n, mut st, mut raw, mut tn, mut ts, mut traw) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut incompressible = 0u64;
    let mut small_n = 0u64;
    let mut small_st = 0u64;
    let mut small_raw = 0u64;
    for (_, b) in idx.blobs() {
        match b.kind {
            BlobKind::Data => {
                n += 1;
                st += b.length as u64;
                raw += b.raw_length as u64;
                if b.length as u64 >= b.raw_length as u64 + 41 {
                    incompressible += 1;
                }
                let bucket = (64 - (b.raw_length as u64).leading_zeros()) as usize / 2;
                hist[bucket.min(11)] += 1;
                if b.raw_length < 4096 {
                    small_n += 1;
                    small_st += b.length as u64;
                    small_raw += b.raw_length as u64;
                }
            }
            BlobKind::Tree => {
                tn += 1;
                ts += b.length as u64;
                traw += b.raw_length as u64;
            }
        }
    }
    let packs: u64 = idx.packs().iter().map(|p| p.size).sum();
    println!(
        "data blobs {n} stored {st} raw {raw} ratio {:.3} incompressible {incompressible}",
        st as f64 / raw as f64
    );
    println!("small(<4K) data blobs {small_n} stored {small_st} raw {small_raw}");
    println!("tree blobs {tn} stored {ts} raw {traw}");
    println!(
        "packs {} total {packs} headers+trailers {}",
        idx.packs().len(),
        packs - st - ts
    );
    println!("size hist (log4 buckets of raw length): {hist:?}");
}
