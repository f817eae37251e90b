//! Library-level integration tests: things only a crafted repository or a
//! precise interleaving can show.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lifeboat_repo::archiver::{backup, BackupOptions, BackupSource};
use lifeboat_repo::blob::BlobKind;
use lifeboat_repo::crypto::KdfParams;
use lifeboat_repo::packer::BlobSaver;
use lifeboat_repo::progress::NoProgress;
use lifeboat_repo::prune::{prune, PruneOptions};
use lifeboat_repo::restorer::{restore, RestoreOptions};
use lifeboat_repo::snapshot::{Snapshot, SNAPSHOT_VERSION};
use lifeboat_repo::tree::{FileName, Node, NodeKind, Tree};
use lifeboat_repo::{Id, IndexedRepository, InitOptions, Repository};

fn new_repo(dir: &Path) -> Repository {
    let store = Arc::from(lifeboat_store::open(dir.join("repo").to_str().unwrap()).unwrap());
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

fn node(name: &[u8], kind: NodeKind) -> Node {
    Node {
        name: FileName(name.to_vec()),
        kind,
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime_ns: 0,
        atime_ns: 0,
        ctime_ns: 0,
        inode: 0,
        device: 0,
        links: 1,
        size: 0,
        content: vec![],
        subtree: None,
        link_target: None,
        xattrs: vec![],
        rdev: 0,
    }
}

/// Saves blobs through the real pipeline and returns their ids.
fn save_blobs(repo: &mut IndexedRepository, blobs: Vec<(BlobKind, Vec<u8>)>) -> Vec<Id> {
    let (ids, packs) = {
        let r: &IndexedRepository = repo;
        let saver = BlobSaver::new(r, r.index());
        std::thread::scope(|s| {
            let p = saver.start(s);
            let ids: Vec<Id> = blobs
                .iter()
                .map(|(k, b)| saver.save(*k, b).unwrap())
                .collect();
            (ids, p.finish(&saver).unwrap())
        })
    };
    repo.add_written_packs(&packs);
    ids
}

fn file_node(repo: &mut IndexedRepository, name: &[u8], data: &[u8]) -> Node {
    let ids = save_blobs(repo, vec![(BlobKind::Data, data.to_vec())]);
    let mut n = node(name, NodeKind::File);
    n.size = data.len() as u64;
    n.content = ids;
    n.mode = 0o644;
    n
}

fn save_tree(repo: &mut IndexedRepository, nodes: Vec<Node>) -> Id {
    // Not Tree::new: a hostile tree need not be sorted or unique.
    let t = Tree { version: 1, nodes };
    save_blobs(repo, vec![(BlobKind::Tree, t.to_bytes())])[0]
}

fn snapshot_of(tree: Id) -> Snapshot {
    Snapshot {
        version: SNAPSHOT_VERSION,
        time: jiff::Timestamp::now(),
        tree,
        paths: vec!["/x".into()],
        hostname: "h".into(),
        username: String::new(),
        tags: vec![],
        parent: None,
        program_version: String::new(),
        summary: None,
        source: None,
        xattrs: false,
        original: None,
        lost: vec![],
    }
}

#[test]
fn a_hostile_repository_cannot_make_restore_write_outside_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let mut repo = new_repo(dir.path()).load_index().unwrap();

    let mut nodes = vec![];
    for evil in [
        &b"../escape"[..],
        b"..",
        b".",
        b"/etc/passwd-abs",
        b"a/../../b",
        b"",
        b"nul\0byte",
    ] {
        nodes.push(file_node(&mut repo, evil, b"pwned"));
    }
    let inner = file_node(&mut repo, b"through-link", b"pwned");
    let sub = save_tree(&mut repo, vec![inner]);
    // A symlink to the outside, then a directory of the same name below it.
    let mut link = node(b"link", NodeKind::Symlink);
    link.link_target = Some(FileName(outside.as_os_str().as_encoded_bytes().to_vec()));
    let mut d = node(b"link", NodeKind::Dir);
    d.subtree = Some(sub);
    nodes.push(link);
    nodes.push(d);
    nodes.push(file_node(&mut repo, b"fine", b"ok"));
    let root = save_tree(&mut repo, nodes);
    let snap = snapshot_of(root);

    let target = dir.path().join("target/inner");
    let summary = restore(
        &repo,
        &snap,
        &target,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(
        fs::read(target.join("fine")).unwrap(),
        b"ok",
        "safe entries are restored"
    );
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written through the symlink"
    );
    assert!(!dir.path().join("target/escape").exists());
    assert!(!dir.path().join("escape").exists());
    let named: Vec<String> = summary.problems.iter().map(|p| p.message.clone()).collect();
    assert!(
        named.iter().filter(|m| m.contains("unsafe name")).count() >= 6,
        "{named:?}"
    );
    assert!(
        summary.problems.iter().any(|p| p.path == Path::new("link")),
        "{:?}",
        summary.problems
    );
    // Directories are made before any symlink, so `link` is the real
    // directory and the symlink of the same name was refused.
    assert!(fs::symlink_metadata(target.join("link"))
        .unwrap()
        .file_type()
        .is_dir());
    let mut entries: Vec<_> = fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    entries.sort();
    assert_eq!(entries, ["fine", "link"]);
}

#[test]
fn prune_keeps_a_pack_that_a_backup_started_before_the_mark_comes_to_need() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(src.join("f"), &data).unwrap();
    let repo = new_repo(dir.path());

    // Snapshot 1 holds the data; it is forgotten.
    let mut r1 = repo.clone().load_index().unwrap();
    let first = backup(
        &mut r1,
        BackupSource::Paths(vec![src.clone()]),
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap();
    // A second backup loads its index now (before the mark) …
    let mut slow = repo.clone().load_index().unwrap();
    repo.delete_snapshot(&first.id).unwrap();
    // … prune marks the now unused pack …
    let report = prune(
        repo.clone().load_index().unwrap(),
        PruneOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert!(report.packs_marked >= 1, "{report:?}");
    // … the slow backup dedups against it and saves a snapshot that needs it.
    let second = backup(
        &mut slow,
        BackupSource::Paths(vec![src.clone()]),
        &BackupOptions {
            no_parent: true,
            read_all: false,
            ..Default::default()
        },
        &NoProgress,
    )
    .unwrap();
    assert_eq!(
        second.snapshot.summary.as_ref().unwrap().data_blobs,
        0,
        "it reused the marked data"
    );
    // A prune after the delay must lift the mark, not delete.
    let report = prune(
        repo.clone().load_index().unwrap(),
        PruneOptions {
            delete_delay: Duration::ZERO,
            ..Default::default()
        },
        &NoProgress,
    )
    .unwrap();
    assert!(report.packs_unmarked >= 1, "{report:?}");
    assert_eq!(report.packs_deleted, 0, "{report:?}");
    let r = repo.clone().load_index().unwrap();
    let t = dir.path().join("t");
    let s = restore(
        &r,
        &second.snapshot,
        &t,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    // Paths keep their absolute place below the target.
    let restored = t.join(src.strip_prefix("/").unwrap());
    assert_eq!(fs::read(restored.join("f")).unwrap(), data);
    let c = lifeboat_repo::check::check(
        repo,
        lifeboat_repo::check::CheckOptions {
            read_data: Some(lifeboat_repo::check::Subset::All),
        },
        &NoProgress,
    )
    .unwrap();
    assert!(c.is_ok(), "{:?}", c.errors);
}

#[test]
fn newer_format_versions_are_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let repo = new_repo(dir.path());
    // An index object from the future.
    repo.save_json(
        lifeboat_store::Kind::Index,
        &serde_json::json!({ "version": 99, "packs": [] }),
    )
    .unwrap();
    let err = repo.clone().load_index().unwrap_err().to_string();
    assert!(err.contains("version 99"), "{err}");
}

/// Progress that someone "watches": records the scanned total and the work.
#[derive(Default)]
struct Watched {
    total: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicU64,
}

impl lifeboat_repo::progress::Progress for Watched {
    fn add_total(&self, bytes: u64) {
        self.total
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }
    fn add(&self, bytes: u64) {
        self.done
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }
    fn is_shown(&self) -> bool {
        true
    }
}

#[test]
fn a_backup_holds_few_directories_in_memory_and_packs_trees_apart_from_data() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    for a in 0..20 {
        for b in 0..20 {
            let d = src.join(format!("d{a:02}/e{b:02}"));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("x"), format!("{a} {b} x")).unwrap();
            fs::write(d.join("y"), vec![(a * 20 + b) as u8; 5000]).unwrap();
        }
    }
    let mut repo = new_repo(dir.path()).load_index().unwrap();
    let outcome = backup(
        &mut repo,
        BackupSource::Paths(vec![src.clone()]),
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(outcome.snapshot.summary.as_ref().unwrap().dirs, 421);
    // The root, src, one d.. and one e.. on the walker's path, plus those
    // whose files are queued for or being read by the readers.
    let cores = std::thread::available_parallelism().unwrap().get();
    let bound = 4 + 5 * cores + 1;
    assert!(
        outcome.peak_open_dirs <= bound,
        "{} directories open at once (bound {bound}) of 422",
        outcome.peak_open_dirs
    );
    assert!(outcome.peak_open_dirs >= 4, "the walker's path is open");

    let mut kinds_by_pack = vec![];
    for blobs in repo.index().blobs_by_pack() {
        let kinds: std::collections::HashSet<_> = blobs.iter().map(|b| b.kind).collect();
        assert!(kinds.len() <= 1, "a pack mixes trees and data: {kinds:?}");
        kinds_by_pack.extend(kinds);
    }
    assert!(kinds_by_pack.contains(&BlobKind::Tree));
    assert!(kinds_by_pack.contains(&BlobKind::Data));

    // Every tree saved along the way is complete: the restore equals the source.
    let out = dir.path().join("out");
    restore(
        &repo,
        &outcome.snapshot,
        &out,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let restored = out.join(src.strip_prefix("/").unwrap());
    let (want, got) = (manifest(&src), manifest(&restored));
    assert_eq!(want.len(), 400 * 3 + 20, "every directory and file");
    assert_eq!(
        want, got,
        "all 420 directories and 800 files, bytes and metadata"
    );
}

#[test]
fn a_watched_backup_is_sized_ahead_so_progress_has_a_total() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    let mut expected = 0u64;
    for i in 0..40u64 {
        let d = if i % 3 == 0 { "sub/deeper" } else { "sub" };
        let len = 1000 + i * 7919;
        fs::write(
            src.join(d).join(format!("f{i}")),
            vec![i as u8; len as usize],
        )
        .unwrap();
        expected += len;
    }
    fs::write(src.join("skip.tmp"), vec![0; 123_456]).unwrap();
    std::os::unix::fs::symlink("sub", src.join("link")).unwrap();
    let mut repo = new_repo(dir.path()).load_index().unwrap();
    let watched = Watched::default();
    backup(
        &mut repo,
        BackupSource::Paths(vec![src.clone()]),
        &BackupOptions {
            excludes: lifeboat_repo::excludes::ExcludeOptions {
                patterns: vec!["*.tmp".into()],
                ..Default::default()
            },
            ..Default::default()
        },
        &watched,
    )
    .unwrap();
    let (total, done) = (watched.total.into_inner(), watched.done.into_inner());
    assert_eq!(total, expected, "the scan sizes every included file");
    assert_eq!(done, expected, "the work adds up to the same total");
}

#[test]
fn blobs_encoded_by_the_caller_and_by_the_compressors_read_back_alike() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = new_repo(dir.path()).load_index().unwrap();
    // Incompressible (xorshift), so the blobs fill several packs.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let blobs: Vec<Vec<u8>> = (0..60u32)
        .map(|i| {
            (0..(5000 + i * 40_000))
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect()
        })
        .collect();
    let (ids, packs) = {
        let r: &IndexedRepository = &repo;
        let saver = BlobSaver::new(r, r.index());
        std::thread::scope(|s| {
            let p = saver.start(s);
            let mut encoder = saver.encoder();
            let ids: Vec<Id> = blobs
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let here = (i % 2 == 0).then_some(&mut encoder);
                    saver.save_with(BlobKind::Data, b, here).unwrap()
                })
                .collect();
            (ids, p.finish(&saver).unwrap())
        })
    };
    repo.add_written_packs(&packs);
    assert!(packs.len() >= 2, "more than one pack was written");
    for (id, b) in ids.iter().zip(&blobs) {
        assert_eq!(&repo.read_blob(id).unwrap(), b);
    }
}

/// Every entry under `root`: path, kind, mode, size, content, symlink
/// target, mtime, and for hard links the first path sharing the inode.
fn manifest(root: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, std::fs::Metadata)>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let is_dir = m.is_dir();
            out.push((rel, m));
            if is_dir {
                walk(root, &p, out);
            }
        }
    }
    let mut entries = vec![];
    walk(root, root, &mut entries);
    let mut first_of_inode = std::collections::HashMap::new();
    entries
        .iter()
        .map(|(rel, m)| {
            let p = root.join(rel);
            let what = if m.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                "dir".to_string()
            } else {
                let first = first_of_inode.entry(m.ino()).or_insert_with(|| rel.clone());
                format!(
                    "{} bytes {:?} linked to {first}",
                    m.len(),
                    fs::read(&p).unwrap()
                )
            };
            let mtime = if m.file_type().is_symlink() {
                0
            } else {
                m.mtime_nsec() + m.mtime() * 1_000_000_000
            };
            format!("{rel} {:o} {mtime} {what}", m.mode())
        })
        .collect()
}

#[test]
fn a_restore_in_many_batches_equals_one_in_a_single_batch() {
    use lifeboat_repo::restorer::restore_in_batches;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("orig/src");
    for d in ["a", "a/deep/er", "b/x", "b/y", "empty", "z"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    for (i, f) in ["a/1", "a/deep/2", "a/deep/er/3", "b/x/4", "b/y/5", "z/6"]
        .iter()
        .enumerate()
    {
        fs::write(src.join(f), vec![b'a' + i as u8; 100 * (i + 1)]).unwrap();
    }
    // A hard-link group whose members are far apart in the plan.
    fs::hard_link(src.join("a/1"), src.join("z/link-to-1")).unwrap();
    fs::hard_link(src.join("a/1"), src.join("b/y/also-1")).unwrap();
    std::os::unix::fs::symlink("../a", src.join("b/to-a")).unwrap();
    std::os::unix::fs::symlink("nowhere", src.join("z/dangling")).unwrap();
    fs::set_permissions(src.join("b/x"), fs::Permissions::from_mode(0o750)).unwrap();
    let mut repo = new_repo(dir.path()).load_index().unwrap();
    let snap = backup(
        &mut repo,
        BackupSource::Paths(vec![src.clone()]),
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap()
    .snapshot;
    // Restored from `orig` down, so paths below read `src/…`.
    let orig = dir.path().join("orig");
    let mut snap = snap;
    snap.tree = lifeboat_repo::browse::find_node(&repo, &snap, "s", orig.to_str().unwrap())
        .unwrap()
        .subtree
        .unwrap();

    let run = |name: &str, batch: usize, opts: &RestoreOptions| {
        let out = dir.path().join(name);
        let s = restore_in_batches(&repo, &snap, &out, opts, &NoProgress, batch).unwrap();
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        (manifest(&out), s.files, s.dirs, s.symlinks, s.bytes)
    };
    let all = RestoreOptions::default();
    let whole = run("whole", usize::MAX, &all);
    assert_eq!(
        whole.0,
        manifest(&dir.path().join("orig")),
        "equals the source"
    );
    assert!(whole
        .0
        .iter()
        .any(|l| l.starts_with("src/z/link-to-1 ") && l.ends_with("linked to src/a/1")));
    for batch in [1, 2, 3, 7] {
        assert_eq!(
            run(&format!("b{batch}"), batch, &all),
            whole,
            "batch of {batch}"
        );
    }
    let some = RestoreOptions {
        includes: vec!["src/b/**".into(), "src/z/6".into()],
        ..Default::default()
    };
    let selected = run("sel", usize::MAX, &some);
    assert!(
        selected.0.iter().all(|l| l.starts_with("src ")
            || l.starts_with("src/b")
            || l.starts_with("src/z ")
            || l.starts_with("src/z/6 ")),
        "{:?}",
        selected.0
    );
    for batch in [1, 2, 5] {
        assert_eq!(
            run(&format!("sel{batch}"), batch, &some),
            selected,
            "batch of {batch}"
        );
    }

    // A file in the way is refused before anything is written, also when
    // the restore takes several batches.
    let busy = dir.path().join("busy");
    fs::create_dir_all(busy.join("src/z")).unwrap();
    fs::write(busy.join("src/z/6"), "mine").unwrap();
    let err = restore_in_batches(&repo, &snap, &busy, &all, &NoProgress, 2).unwrap_err();
    assert!(err.to_string().contains("src/z/6"), "{err}");
    assert!(!busy.join("src/a").exists(), "nothing was written");
    assert_eq!(fs::read(busy.join("src/z/6")).unwrap(), b"mine");
    let over = RestoreOptions {
        overwrite: true,
        ..Default::default()
    };
    let s = restore_in_batches(&repo, &snap, &busy, &over, &NoProgress, 2).unwrap();
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(manifest(&busy), whole.0);
}

/// `restore --verify` reads what was written back: a file changed on disk
/// after the restore is named, an intact one is counted.
#[test]
fn verify_names_a_restored_file_that_differs_from_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("good"), vec![1u8; 300_000]).unwrap();
    fs::write(src.join("bad"), vec![2u8; 300_000]).unwrap();
    let mut repo = new_repo(dir.path()).load_index().unwrap();
    let snap = backup(
        &mut repo,
        BackupSource::Paths(vec![src.clone()]),
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap()
    .snapshot;
    let target = dir.path().join("t");
    let opts = RestoreOptions {
        verify: true,
        ..Default::default()
    };
    let s = restore(&repo, &snap, &target, &opts, &NoProgress).unwrap();
    assert_eq!(s.verified, 2, "{s:?}");
    let bad = target.join(src.strip_prefix("/").unwrap()).join("bad");
    let mut bytes = fs::read(&bad).unwrap();
    bytes[1000] ^= 1;
    fs::write(&bad, bytes).unwrap();
    let (verified, problems) =
        lifeboat_repo::restorer::verify(&repo, &snap, &target, &RestoreOptions::default()).unwrap();
    assert_eq!(verified, 1);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].path.ends_with("bad"), "{problems:?}");
    assert!(problems[0].message.contains("differs"), "{problems:?}");
}

/// A saver used before its pipeline is started refuses the blob instead
/// of blocking forever on a queue nobody drains.
#[test]
fn saving_before_start_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let repo = new_repo(dir.path()).load_index().unwrap();
    let saver = BlobSaver::new(&repo, repo.index());
    let mut blobs = 0;
    for i in 0..20u8 {
        // Enough distinct blobs to fill any queue.
        match saver.save(BlobKind::Data, &vec![i; 100_000]) {
            Ok(_) => blobs += 1,
            Err(e) => {
                assert!(e.to_string().contains("before"), "{e}");
                break;
            }
        }
    }
    assert_eq!(blobs, 0, "the first save is refused");
}

/// A source with two streams whose metadata is known only at the end.
struct TwoDumps {
    left: Vec<(&'static str, Vec<u8>)>,
    fail_finish: bool,
}

impl<'a> lifeboat_repo::archiver::StreamSet<'a> for TwoDumps {
    fn next_stream(&mut self) -> std::io::Result<Option<lifeboat_repo::archiver::NamedStream<'a>>> {
        if self.left.is_empty() {
            return Ok(None);
        }
        let (name, bytes) = self.left.remove(0);
        Ok(Some(lifeboat_repo::archiver::NamedStream {
            name: name.into(),
            reader: Box::new(std::io::Cursor::new(bytes)),
            chunking: Default::default(),
        }))
    }
    fn finish(&mut self) -> std::io::Result<Option<serde_json::Value>> {
        if self.fail_finish {
            return Err(std::io::Error::other(
                "the producer's consistent point was lost",
            ));
        }
        Ok(Some(serde_json::json!({ "kind": "test", "rows": 42 })))
    }
}

/// The seam sources use: several streams in one snapshot, in order, with
/// the metadata the set gives after the last one; a set whose end fails
/// writes no snapshot.
#[test]
fn a_stream_set_stores_every_stream_and_its_late_metadata_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = new_repo(dir.path());
    let mut r = repo.clone().load_index().unwrap();
    let globals = b"CREATE ROLE app;\n".to_vec();
    let big: Vec<u8> = (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let set = TwoDumps {
        left: vec![
            ("globals.sql", globals.clone()),
            ("app.pgdump", big.clone()),
        ],
        fail_finish: false,
    };
    let out = backup(
        &mut r,
        BackupSource::Streams(Box::new(set)),
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(out.snapshot.paths, ["/globals.sql", "/app.pgdump"]);
    assert_eq!(
        out.snapshot.source,
        Some(serde_json::json!({ "kind": "test", "rows": 42 }))
    );
    let r = repo.clone().load_index().unwrap();
    for (name, want) in [("globals.sql", &globals), ("app.pgdump", &big)] {
        let node =
            lifeboat_repo::browse::find_node(&r, &out.snapshot, "latest", &format!("/{name}"))
                .unwrap();
        let mut got = vec![];
        lifeboat_repo::browse::dump(&r, &node, &mut got).unwrap();
        assert!(got == *want, "{name} reads back byte for byte");
    }

    let mut r = repo.clone().load_index().unwrap();
    let set = TwoDumps {
        left: vec![("globals.sql", globals)],
        fail_finish: true,
    };
    let err = backup(
        &mut r,
        BackupSource::Streams(Box::new(set)),
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("consistent point was lost"),
        "{err}"
    );
    assert_eq!(repo.snapshots().unwrap().0.len(), 1, "no second snapshot");
}

/// Keys are tried cheapest first: a generated secret's key opens the
/// repository before any password key's Argon2 is run. Here the costly keys
/// have out-of-range parameters, so trying any of them first fails the
/// open (each is placed at random among the key names).
#[test]
fn the_cheapest_key_is_tried_first() {
    let dir = tempfile::tempdir().unwrap();
    let repo = new_repo(dir.path());
    let generated = repo
        .add_key(b"generated secret", KdfParams::GENERATED_SECRET)
        .unwrap();
    for n in 0..8 {
        let mut kf = lifeboat_repo::crypto::KeyFile::wrap(
            repo.key(),
            b"another",
            KdfParams::INSECURE_FAST,
            format!("costly {n}"),
        )
        .unwrap();
        kf.params.memory_kib = 5 * 1024 * 1024;
        let bytes = serde_json::to_vec(&kf).unwrap();
        repo.store()
            .put(
                lifeboat_store::Kind::Key,
                &Id::hash_of(&bytes).to_hex(),
                &bytes,
            )
            .unwrap();
    }
    let opened = Repository::open(repo.store().clone(), b"generated secret").unwrap();
    let (keys, _) = opened.keys().unwrap();
    let current: Vec<_> = keys.iter().filter(|k| k.current).map(|k| k.id).collect();
    assert_eq!(current, [generated]);
}
