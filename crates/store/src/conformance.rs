//! The conformance suite every store backend must pass.
//!
//! A backend's own test calls [`run_all`] with a fresh, empty store. The suite
//! panics with a message naming the broken rule; it is public (not
//! `#[cfg(test)]`) so that backends in other crates run the same checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::{Kind, StoreError, WriteStore};

fn name(i: u32) -> String {
    format!("{:064x}", (i as u128) * 0x9e37_79b9_7f4a_7c15)
}

/// Runs every check against `store`, which must be empty.
pub fn run_all(store: &dyn WriteStore) {
    store.create().expect("create");
    store.create().expect("create is idempotent");
    round_trip(store);
    never_overwrites(store);
    ranged_reads(store);
    listing(store);
    delete(store);
    invalid_names(store);
    empty_and_large(store);
    staged(store);
    ranged_reads_into_a_reused_buffer(store);
}

fn round_trip(store: &dyn WriteStore) {
    for kind in Kind::ALL {
        let n = if kind == Kind::Config {
            "config".to_string()
        } else {
            name(1)
        };
        let data = format!("payload of {kind}").into_bytes();
        assert!(
            !store.exists(kind, &n).unwrap(),
            "{kind}: exists before put"
        );
        store.put(kind, &n, &data).unwrap();
        assert!(store.exists(kind, &n).unwrap(), "{kind}: missing after put");
        assert_eq!(
            store.get(kind, &n).unwrap(),
            data,
            "{kind}: get returns what was put"
        );
        assert_eq!(store.size(kind, &n).unwrap(), data.len() as u64);
        assert_eq!(
            store.as_read().get(kind, &n).unwrap(),
            data,
            "read view sees the same"
        );
    }
    let missing = store.get(Kind::Pack, &name(999)).unwrap_err();
    assert!(
        missing.is_not_found(),
        "get of a missing object is NotFound, got {missing}"
    );
    assert!(store
        .size(Kind::Pack, &name(999))
        .unwrap_err()
        .is_not_found());
}

fn never_overwrites(store: &dyn WriteStore) {
    let n = name(2);
    store.put(Kind::Snapshot, &n, b"first").unwrap();
    let err = store.put(Kind::Snapshot, &n, b"second").unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists { .. }),
        "second put must fail, got {err}"
    );
    assert_eq!(
        store.get(Kind::Snapshot, &n).unwrap(),
        b"first",
        "first content survives"
    );
}

fn ranged_reads(store: &dyn WriteStore) {
    let n = name(3);
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    store.put(Kind::Pack, &n, &data).unwrap();
    assert_eq!(store.get_range(Kind::Pack, &n, 0, 10).unwrap(), &data[..10]);
    assert_eq!(
        store.get_range(Kind::Pack, &n, 9_990, 10).unwrap(),
        &data[9_990..]
    );
    assert_eq!(
        store.get_range(Kind::Pack, &n, 1234, 0).unwrap(),
        Vec::<u8>::new()
    );
    let err = store.get_range(Kind::Pack, &n, 9_995, 10).unwrap_err();
    assert!(
        matches!(err, StoreError::ShortObject { .. }),
        "read past end, got {err}"
    );
    let err = store.get_range(Kind::Pack, &n, u64::MAX, 2).unwrap_err();
    assert!(
        matches!(err, StoreError::ShortObject { .. }),
        "overflowing range, got {err}"
    );
}

fn listing(store: &dyn WriteStore) {
    let mut names: Vec<String> = (10..60).map(name).collect();
    for n in &names {
        store.put(Kind::Index, n, n.as_bytes()).unwrap();
    }
    let mut listed: Vec<String> = store
        .list(Kind::Index)
        .unwrap()
        .into_iter()
        .filter(|o| o.name != name(1)) // written by round_trip
        .inspect(|o| assert_eq!(o.size, 64, "listing reports sizes"))
        .map(|o| o.name)
        .collect();
    listed.sort();
    names.sort();
    assert_eq!(
        listed, names,
        "list returns exactly the objects of the kind"
    );
    let packs: Vec<String> = store
        .list(Kind::Pack)
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert!(
        !packs.iter().any(|p| names.contains(p)),
        "kinds do not mix in listings"
    );
    let configs = store.list(Kind::Config).unwrap();
    assert_eq!(configs.len(), 1);
}

fn delete(store: &dyn WriteStore) {
    let n = name(4);
    store.put(Kind::Pack, &n, b"x").unwrap();
    store.delete(Kind::Pack, &n).unwrap();
    assert!(!store.exists(Kind::Pack, &n).unwrap());
    assert!(!store.list(Kind::Pack).unwrap().iter().any(|o| o.name == n));
    store
        .delete(Kind::Pack, &n)
        .expect("deleting a missing object is not an error");
    store
        .put(Kind::Pack, &n, b"y")
        .expect("a deleted name can be written again");
    assert_eq!(store.get(Kind::Pack, &n).unwrap(), b"y");
}

fn invalid_names(store: &dyn WriteStore) {
    for bad in ["", "../x", "a/b", ".tmp-1", "x y", "config/../keys"] {
        let err = store.put(Kind::Snapshot, bad, b"z").unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidName(_)),
            "{bad:?} accepted: {err}"
        );
    }
}

fn empty_and_large(store: &dyn WriteStore) {
    store.put(Kind::Pack, &name(5), b"").unwrap();
    assert_eq!(store.get(Kind::Pack, &name(5)).unwrap(), b"");
    let big: Vec<u8> = (0..(9 << 20))
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    store.put(Kind::Pack, &name(6), &big).unwrap();
    assert_eq!(store.get(Kind::Pack, &name(6)).unwrap(), big);
    assert_eq!(
        store.get_range(Kind::Pack, &name(6), 5 << 20, 16).unwrap(),
        &big[5 << 20..(5 << 20) + 16]
    );
}

fn staged(store: &dyn WriteStore) {
    let before = store.list(Kind::Pack).unwrap().len();
    // Written in pieces, invisible until finished.
    let mut obj = store.stage(Kind::Pack).unwrap();
    let mut expected = vec![];
    for i in 0..50u8 {
        let piece = vec![i; 1000 + usize::from(i) * 37];
        obj.write(&piece).unwrap();
        expected.extend_from_slice(&piece);
    }
    assert_eq!(
        obj.size(),
        expected.len() as u64,
        "staged size counts every piece"
    );
    assert_eq!(
        store.list(Kind::Pack).unwrap().len(),
        before,
        "a staged object is not listed before finish"
    );
    let n = name(7);
    obj.finish(&n).unwrap();
    assert_eq!(store.get(Kind::Pack, &n).unwrap(), expected);
    assert_eq!(store.list(Kind::Pack).unwrap().len(), before + 1);

    // Dropped unfinished: nothing is published.
    let mut obj = store.stage(Kind::Pack).unwrap();
    obj.write(b"abandoned").unwrap();
    drop(obj);
    assert_eq!(store.list(Kind::Pack).unwrap().len(), before + 1);

    // Finishing under an existing name fails and keeps the first object.
    let mut obj = store.stage(Kind::Pack).unwrap();
    obj.write(b"other").unwrap();
    let err = obj.finish(&n).unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists { .. }),
        "staged finish must not overwrite, got {err}"
    );
    assert_eq!(store.get(Kind::Pack, &n).unwrap(), expected);

    // An invalid name is refused at finish.
    let obj = store.stage(Kind::Index).unwrap();
    assert!(matches!(
        obj.finish("../x").unwrap_err(),
        StoreError::InvalidName(_)
    ));
}

fn ranged_reads_into_a_reused_buffer(store: &dyn WriteStore) {
    let n = name(8);
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    store.put(Kind::Pack, &n, &data).unwrap();
    let mut buf = vec![0xAA; 200_000]; // stale, longer content must go
    store
        .get_range_into(Kind::Pack, &n, 0, 100_000, &mut buf)
        .unwrap();
    assert_eq!(buf, data);
    store
        .get_range_into(Kind::Pack, &n, 99_990, 10, &mut buf)
        .unwrap();
    assert_eq!(buf, &data[99_990..], "the buffer holds exactly the range");
    let err = store
        .get_range_into(Kind::Pack, &n, 99_990, 11, &mut buf)
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ShortObject { .. }),
        "a range past the end is ShortObject, got {err}"
    );
}
