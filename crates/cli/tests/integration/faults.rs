//! Faults: damaged objects, kill -9 at every stage, a full disk.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lifeboat_repo::Repository;

use super::common::*;

fn flip_byte(p: &Path, offset: u64) {
    let mut b = fs::read(p).unwrap();
    let i = (offset as usize).min(b.len() - 1);
    b[i] ^= 0x20;
    fs::write(p, b).unwrap();
}

/// A repository with two files in separate chunks and a known layout.
fn damaged_setup() -> (Env, PathBuf) {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/victim.bin"), random_bytes(3 << 20, 1)).unwrap();
    fs::write(src.join("small.txt"), b"small file\n").unwrap();
    env.backup(&[&src]);
    (env, src)
}

/// Where a blob is stored: (pack file, offset).
fn blob_location(env: &Env, pick_tree: bool) -> (PathBuf, u64) {
    let store = Arc::from(lifeboat_store::open(env.repo.to_str().unwrap()).unwrap());
    let repo = Repository::open(store, PASSWORD.as_bytes())
        .unwrap()
        .load_index()
        .unwrap();
    let (_, snap) = repo.find_snapshot("latest", &Default::default()).unwrap();
    let id = if pick_tree {
        snap.tree
    } else {
        let victim = env.path("src/d/victim.bin");
        lifeboat_repo::browse::find_node(&repo, &snap, "latest", victim.to_str().unwrap())
            .unwrap()
            .content[0]
    };
    let loc = repo.index().get(&id).unwrap();
    let pack = repo.index().pack(loc.pack).id.to_hex();
    (
        env.repo.join("data").join(&pack[..2]).join(pack),
        u64::from(loc.offset) + 40,
    )
}

#[test]
fn a_flipped_byte_in_a_data_blob_is_found_and_restore_names_the_file() {
    let (env, src) = damaged_setup();
    let (pack, off) = blob_location(&env, false);
    flip_byte(&pack, off);
    let c = env.json(&["check", "--read-data"], 1);
    let errs = c["errors"].to_string();
    assert!(
        errs.contains("damaged") || errs.contains("does not match"),
        "{c}"
    );
    let t = env.path("t");
    let out = env.run(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("src/d/victim.bin"),
        "the affected file is named: {all}"
    );
    assert!(
        !all.contains("small.txt:"),
        "only affected files are named: {all}"
    );
    assert_eq!(
        fs::read(under(&t, &src).join("small.txt")).unwrap(),
        fs::read(src.join("small.txt")).unwrap(),
        "everything else is restored"
    );
}

#[test]
fn a_flipped_byte_in_a_tree_is_found_without_reading_data() {
    let (env, _) = damaged_setup();
    let (pack, off) = blob_location(&env, true);
    flip_byte(&pack, off);
    let c = env.json(&["check"], 1);
    assert!(c["errors"].to_string().contains("unreadable"), "{c}");
}

#[test]
fn a_flipped_byte_in_an_index_or_snapshot_object_is_found() {
    for kind in ["index", "snapshots"] {
        let (env, _) = damaged_setup();
        let obj = env.objects(kind)[0].clone();
        flip_byte(&obj, 50);
        let c = env.json(&["check"], 1);
        let name = obj.file_name().unwrap().to_str().unwrap();
        assert!(
            c["errors"].to_string().contains(name),
            "{kind}: the damaged object is named: {c}"
        );
    }
}

/// Issue 8.19: a damaged index object blocks nothing that can be done
/// safely (the packs' own headers say what it said), prune refuses and
/// names the way out, and `repair index` makes the repository whole.
#[test]
fn a_damaged_index_object_blocks_nothing_and_repair_index_rebuilds_it() {
    let (env, src) = damaged_setup();
    let obj = env.objects("index")[0].clone();
    let name = obj.file_name().unwrap().to_str().unwrap().to_string();
    flip_byte(&obj, 50);
    // Reading and backing up go on, from the pack headers.
    let ls = String::from_utf8(env.ok(&["ls", "latest"]).stdout).unwrap();
    assert!(ls.contains("victim.bin"), "{ls}");
    let out = env.path("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_same(&manifest(&src), &manifest(&under(&out, &src)));
    env.backup(&[&src]);
    // Prune would weigh packs by an index it cannot read: refused, with advice.
    let p = env.run(&["prune"]);
    assert_eq!(code(&p), 1, "{}", text(&p));
    assert!(
        stderr(&p).contains(&name) && stderr(&p).contains("repair index"),
        "{}",
        text(&p)
    );
    let dry = env.json(&["repair", "index", "--dry-run"], 0);
    assert_eq!(dry["index_objects_damaged"][0], name.as_str(), "{dry}");
    assert!(obj.exists(), "a dry run changes nothing");
    let r = env.json(&["repair", "index"], 0);
    assert!(r["headers_read"].as_u64().unwrap() >= 1, "{r}");
    assert!(!obj.exists(), "the damaged object was replaced");
    env.json(&["check", "--read-data"], 0);
    env.ok(&["prune"]);
    let out2 = env.path("out2");
    env.ok(&["restore", "latest", "--target", out2.to_str().unwrap()]);
    assert_same(&manifest(&src), &manifest(&under(&out2, &src)));
}

/// A pack lost from the store while snapshots still need its data: prune
/// refuses and names it, instead of dropping its index entry (which would
/// hide the loss from `check`); nothing in the repository changes.
#[test]
fn prune_refuses_to_drop_a_lost_pack_that_snapshots_need() {
    let (env, _) = damaged_setup();
    let (pack, _) = blob_location(&env, false);
    fs::remove_file(&pack).unwrap();
    let name = pack.file_name().unwrap().to_str().unwrap().to_string();
    let before = (env.objects("index"), env.objects("data"));
    let p = env.run(&["prune", "--delete-delay", "0s"]);
    assert_eq!(code(&p), 1, "{}", text(&p));
    assert!(
        stderr(&p).contains(&name[..8]) && stderr(&p).contains("repair snapshots"),
        "{}",
        text(&p)
    );
    assert_eq!((env.objects("index"), env.objects("data")), before);
    let c = env.json(&["check"], 1);
    assert!(c["errors"].to_string().contains("missing"), "{c}");
}

/// Issue 8.19: snapshots that reference a lost pack are rewritten without
/// what was lost, marked as repaired, and the repository checks clean.
#[test]
fn repair_snapshots_drops_lost_files_and_records_them() {
    let (env, src) = damaged_setup();
    let original = env.snapshot_ids()[0].clone();
    let (pack, _) = blob_location(&env, false);
    fs::remove_file(&pack).unwrap();
    env.json(&["check"], 1);
    let victim = src.join("d/victim.bin");
    let dry = env.json(&["repair", "snapshots", "--dry-run"], 0);
    assert_eq!(dry["repaired"].as_array().unwrap().len(), 1, "{dry}");
    assert_eq!(env.snapshot_ids().len(), 1, "a dry run writes nothing");
    let r = env.json(&["repair", "snapshots", "--forget"], 0);
    let lost: Vec<String> = r["repaired"][0]["lost"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(lost.contains(&victim.display().to_string()), "{r}");
    let ids = env.snapshot_ids();
    assert_eq!(ids.len(), 1, "the original is forgotten: {ids:?}");
    assert_ne!(ids[0], original);
    let snaps = env.json(&["snapshots"], 0);
    assert_eq!(
        snaps[0]["snapshot"]["original"],
        original.as_str(),
        "{snaps}"
    );
    assert!(
        snaps[0]["snapshot"]["tags"]
            .to_string()
            .contains("repaired"),
        "{snaps}"
    );
    // The index still names the lost pack until prune drops it.
    let p = env.json(&["prune"], 0);
    assert_eq!(p["packs_missing"], 1, "{p}");
    env.json(&["check", "--read-data"], 0);
    let out = env.path("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    let got = manifest(&under(&out, &src));
    let mut want = manifest(&src);
    want.retain(|path, _| {
        let abs = src.join(path).display().to_string();
        !lost
            .iter()
            .any(|l| abs == *l || abs.starts_with(l.as_str()))
    });
    assert!(!out.join(victim.strip_prefix("/").unwrap()).exists());
    assert_same(&want, &got);
}

#[test]
fn a_truncated_pack_is_found() {
    let (env, _) = damaged_setup();
    let pack = env
        .objects("data")
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let len = fs::metadata(&pack).unwrap().len();
    fs::File::options()
        .write(true)
        .open(&pack)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let c = env.json(&["check"], 1);
    assert!(c["errors"].to_string().contains("truncated"), "{c}");
}

/// Data for crash tests: big enough for several 1 MiB packs.
fn crash_env() -> (Env, PathBuf) {
    let env = Env::empty();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..12u64 {
        fs::write(src.join(format!("sub/f{i}")), random_bytes(1 << 20, i)).unwrap();
    }
    fs::write(src.join("big"), random_bytes(8 << 20, 77)).unwrap();
    (env, src)
}

/// After a crash: check passes, a new backup reuses what was uploaded, and
/// its restore is identical.
fn recovers(env: &Env, src: &Path, expect_reuse: bool) {
    let c = env.json(&["check", "--read-data"], 0);
    assert!(c["errors"].as_array().unwrap().is_empty(), "{c}");
    let v = env.json(&["backup", src.to_str().unwrap()], 0);
    if expect_reuse {
        assert!(
            v["bytes_added"].as_u64().unwrap() < v["bytes_total"].as_u64().unwrap(),
            "uploaded packs are reused: {v}"
        );
    }
    env.ok(&["check", "--read-data"]);
    let t = env.path("after-crash");
    let _ = fs::remove_dir_all(&t);
    env.ok(&[
        "restore",
        v["snapshot_id"].as_str().unwrap(),
        "--target",
        t.to_str().unwrap(),
    ]);
    assert_same(&manifest(src), &manifest(&under(&t, src)));
}

#[test]
fn kill_9_at_each_stage_of_backup_leaves_a_usable_repository() {
    for point in [
        "after-pack-upload",
        "after-index-write",
        "backup-before-snapshot",
    ] {
        let (env, src) = crash_env();
        let out = env
            .cmd()
            .env("LIFEBOAT_CRASH_AT", point)
            .args(["backup", src.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{point}: killed: {}",
            text(&out)
        );
        assert!(
            env.snapshot_ids().is_empty(),
            "{point}: no snapshot without its data"
        );
        recovers(&env, &src, true);
    }
}

#[test]
fn kill_9_from_outside_during_backup_leaves_a_usable_repository() {
    let (env, src) = crash_env();
    // The stream is the source's files and then zeros without end, so the
    // backup is certainly running when the kill lands; once lifeboat is
    // gone, the producer's next write fails and it exits too.
    let producer = format!(
        "cat {}/big {}/sub/*; exec cat /dev/zero",
        src.display(),
        src.display()
    );
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("lifeboat"))
        .env("LIFEBOAT_REPOSITORY", &env.repo)
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .args([
            "backup",
            "-q",
            "--stdin-from-command",
            "--stdin-name",
            "s",
            "--",
            "sh",
            "-c",
        ])
        .arg(&producer)
        .spawn()
        .unwrap();
    // Kill as soon as some packs are in place (polled, not slept).
    let deadline = Instant::now() + Duration::from_secs(120);
    while env.objects("data").len() < 3 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "an endless backup ended"
        );
        assert!(Instant::now() < deadline, "no packs after 120 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "killed mid-backup");
    assert!(
        env.objects("snapshots").is_empty(),
        "no snapshot of a killed backup"
    );
    recovers(&env, &src, true);
}

#[test]
fn kill_9_at_each_stage_of_prune_leaves_a_usable_repository() {
    for point in [
        "prune-after-repack",
        "prune-after-index-write",
        "prune-during-index-delete",
        "prune-after-index-delete",
        "prune-during-pack-delete",
    ] {
        let (env, src) = crash_env();
        env.backup(&[&src]);
        for i in 0..10u64 {
            fs::remove_file(src.join(format!("sub/f{i}"))).unwrap();
        }
        fs::write(src.join("new"), random_bytes(2 << 20, 5)).unwrap();
        let keep = env.backup(&[&src]);
        env.ok(&["forget", "--keep-last", "1"]);
        let state = manifest(&src);
        let out = env
            .cmd()
            .env("LIFEBOAT_CRASH_AT", point)
            .args(["prune", "--delete-delay", "0", "--max-unused", "1"])
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), Some(9), "{point}: {}", text(&out));
        let c = env.json(&["check", "--read-data"], 0);
        assert!(c["errors"].as_array().unwrap().is_empty(), "{point}: {c}");
        let t = env.path("t");
        env.ok(&["restore", &keep, "--target", t.to_str().unwrap()]);
        assert_same(&state, &manifest(&under(&t, &src)));
        // A second prune finishes the job.
        env.ok(&["prune", "--delete-delay", "0"]);
        env.ok(&["check", "--read-data"]);
        recovers(&env, &src, false);
    }
}

#[test]
fn a_full_disk_fails_cleanly_and_the_repository_stays_consistent() {
    let small = std::env::var("LIFEBOAT_TEST_SMALL_FS").expect("LIFEBOAT_TEST_SMALL_FS is not set: run the suite with scripts/test, which mounts a small tmpfs");
    let base = tempfile::tempdir_in(&small).expect("the small file system is writable");
    let mut env = Env::empty();
    env.repo = base.path().join("repo");
    env.ok(&["init", "--pack-size", "1", "--compression", "0"]);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("too-big"), random_bytes(40 << 20, 3)).unwrap();
    let out = env.run(&["backup", src.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        err.contains(base.path().to_str().unwrap()),
        "names where: {err}"
    );
    assert!(env.snapshot_ids().is_empty());
    let c = env.json(&["check"], 0);
    assert!(c["errors"].as_array().unwrap().is_empty(), "{c}");

    // Room again: prune drops the orphaned packs, a smaller backup works.
    fs::remove_file(src.join("too-big")).unwrap();
    fs::write(src.join("fits"), random_bytes(2 << 20, 4)).unwrap();
    env.ok(&["prune", "--delete-delay", "0"]);
    let id = env.backup(&[&src]);
    env.ok(&["check", "--read-data"]);
    let t = env.path("t");
    env.ok(&["restore", &id, "--target", t.to_str().unwrap()]);
    assert_same(&manifest(&src), &manifest(&under(&t, &src)));
}

/// Issue 8.13: Ctrl-C says what it means, removes this run's temporaries
/// (and only this run's), exits 130; the next backup works.
#[test]
fn an_interrupted_backup_says_so_cleans_up_and_exits_130() {
    use std::io::Write as _;
    let env = Env::new();
    // Another process's temporary file stays.
    let foreign = env.repo.join("data/.tmp-1-00000000000000aa");
    fs::write(&foreign, b"someone else's").unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("lifeboat"))
        .env("LIFEBOAT_REPOSITORY", &env.repo)
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .args(["backup", "--stdin", "--stdin-name", "big"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Data for more than a pack, and the pipe stays open: the backup is mid-pack.
    let mut input = child.stdin.take().unwrap();
    input.write_all(&random_bytes(40 << 20, 5)).unwrap();
    input.flush().unwrap();
    let own = format!(".tmp-{}-", child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let own_tmp = || {
        env.objects("data")
            .into_iter()
            .chain(
                fs::read_dir(env.repo.join("data"))
                    .unwrap()
                    .map(|e| e.unwrap().path()),
            )
            .any(|p| p.file_name().unwrap().to_string_lossy().starts_with(&own))
    };
    while !own_tmp() {
        assert!(std::time::Instant::now() < deadline, "no pack was started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    drop(input);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("interrupted; nothing was saved"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!own_tmp(), "its temporaries are gone");
    assert!(
        foreign.exists(),
        "another process's temporary is left alone"
    );
    assert!(env.objects("snapshots").is_empty());
    fs::remove_file(&foreign).unwrap();
    let c = env.json(&["check", "--read-data"], 0);
    assert!(c["errors"].as_array().unwrap().is_empty(), "{c}");
}

/// Issue 8.18: packs of the parent snapshot are gone (deleted by hand, a
/// store that lost them). The next backup of the same unchanged source must
/// store the data again, not reference what is missing: its snapshot
/// restores byte for byte.
#[test]
fn a_backup_never_references_data_whose_pack_is_gone() {
    let (env, src) = damaged_setup();
    let old = env.snapshot_ids()[0].clone();
    let packs = env.objects("data");
    assert!(packs.len() >= 2, "trees and data in separate packs");
    for p in &packs {
        fs::remove_file(p).unwrap();
    }
    let id = env.backup(&[&src]);
    let out = env.path("out");
    env.ok(&["restore", &id, "--target", out.to_str().unwrap()]);
    assert_same(&manifest(&src), &manifest(&under(&out, &src)));
    // Check names the lost packs the index still lists. The old snapshot
    // may stay damaged (the directories above the backup path change as
    // other processes work in /tmp, so not every old tree is stored again):
    // once it is forgotten and prune drops the lost packs, the repository
    // is whole, the new snapshot with it.
    let c = env.json(&["check"], 1);
    assert!(c["errors"].to_string().contains("missing"), "{c}");
    env.ok(&["forget", &old]);
    env.ok(&["prune"]);
    env.json(&["check", "--read-data"], 0);
}
