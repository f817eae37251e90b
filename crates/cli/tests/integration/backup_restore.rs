//! Backup and restore round trips on real trees.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use super::common::*;

/// A tree with every kind of metadata restore must bring back.
fn rich_tree(root: &Path) {
    fs::create_dir_all(root.join("dir/sub/deeper")).unwrap();
    fs::create_dir_all(root.join("empty/also-empty")).unwrap();
    fs::write(root.join("dir/plain.txt"), b"plain text\n").unwrap();
    fs::write(root.join("dir/empty-file"), b"").unwrap();
    fs::write(
        root.join("dir/sub/deeper/multi-chunk.bin"),
        random_bytes(20 << 20, 1),
    )
    .unwrap();
    fs::write(
        root.join("dir/compressible.log"),
        b"INFO all good\n".repeat(200_000),
    )
    .unwrap();
    let script = root.join("dir/script.sh");
    fs::write(&script, b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o750)).unwrap();
    let secret = root.join("dir/secret");
    fs::write(&secret, b"s3cr3t").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let sticky = root.join("dir/sticky-dir");
    fs::create_dir(&sticky).unwrap();
    fs::set_permissions(&sticky, fs::Permissions::from_mode(0o1777)).unwrap();
    // Symlinks: relative, absolute, dangling.
    std::os::unix::fs::symlink("plain.txt", root.join("dir/link-rel")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("dir/link-abs")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", root.join("dir/link-dangling")).unwrap();
    // Hard links: three names, one inode.
    fs::write(root.join("dir/hard-a"), b"shared inode").unwrap();
    fs::hard_link(root.join("dir/hard-a"), root.join("dir/hard-b")).unwrap();
    fs::hard_link(root.join("dir/hard-a"), root.join("dir/sub/hard-c")).unwrap();
    // A sparse file: 64 MiB with two small islands of data.
    let sparse = root.join("dir/sparse.img");
    let mut f = fs::File::create(&sparse).unwrap();
    f.set_len(64 << 20).unwrap();
    f.write_all(b"header").unwrap();
    f.seek(SeekFrom::Start(40 << 20)).unwrap();
    f.write_all(&random_bytes(4096, 2)).unwrap();
    drop(f);
    // Small files whose end is a hole, or that are nothing but zeros: the
    // restore never writes their last blocks, yet their size must be whole.
    let mut tail = random_bytes(100 << 10, 3);
    tail.resize(300 << 10, 0);
    fs::write(root.join("dir/zero-tail.bin"), &tail).unwrap();
    fs::write(root.join("dir/all-zeros.bin"), vec![0u8; 200 << 10]).unwrap();
    // Read-only for everyone, yet restored with its content.
    let readonly = root.join("dir/read-only.dat");
    fs::write(&readonly, random_bytes(3 << 20, 4)).unwrap();
    fs::set_permissions(&readonly, fs::Permissions::from_mode(0o444)).unwrap();
    // A name that is not UTF-8.
    let weird = std::ffi::OsStr::from_bytes(b"caf\xe9-latin1.txt");
    fs::write(root.join("dir").join(weird), b"latin-1 name").unwrap();
    // Extended attributes on a file and a directory: text and binary.
    set_xattr(
        &root.join("dir/plain.txt"),
        "user.origin",
        b"https://example.com/",
    );
    set_xattr(
        &root.join("dir/plain.txt"),
        "user.binary",
        &[0, 159, 146, 150, 255],
    );
    set_xattr(&root.join("dir/sub"), "user.project", b"lifeboat");
    if is_root() {
        // What ping carries: cap_net_raw+ep (VFS_CAP_REVISION_2). Only root
        // may set (and restore) it, after the owner.
        let ping = root.join("dir/ping-like");
        fs::write(&ping, b"#!/bin/true\n").unwrap();
        let mut cap = 0x0200_0001u32.to_le_bytes().to_vec();
        cap.extend_from_slice(&(1u32 << 13).to_le_bytes());
        cap.extend_from_slice(&[0; 12]);
        set_xattr(&ping, "security.capability", &cap);
        set_xattr(&root.join("dir/hard-a"), "trusted.note", b"root only");
        let owned = root.join("dir/owned-by-someone");
        fs::write(&owned, b"not root's").unwrap();
        std::os::unix::fs::chown(&owned, Some(1234), Some(5678)).unwrap();
        let setuid = root.join("dir/setuid");
        fs::write(&setuid, b"x").unwrap();
        fs::set_permissions(&setuid, fs::Permissions::from_mode(0o4755)).unwrap();
    }
    // Old, precise mtimes (set last: writing into a directory changes its mtime).
    set_mtime(&root.join("dir/plain.txt"), 1_000_000_000_123_456_789);
    set_mtime(&root.join("dir/sub"), 1_100_000_000_987_654_321);
}

#[test]
fn round_trip_preserves_every_kind_of_metadata() {
    let env = Env::new();
    let src = env.path("src");
    rich_tree(&src);
    let fifo = src.join("dir/a-fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let device = src.join("dir/null-device");
    if is_root() {
        assert!(std::process::Command::new("mknod")
            .arg(&device)
            .args(["c", "1", "3"])
            .status()
            .unwrap()
            .success());
    }
    let before = manifest(&src);

    // Issue 8.7: special files are entries, not warnings (exit 0).
    let out = env.json(&["backup", src.to_str().unwrap()], 0);
    assert_eq!(out["warnings"].as_array().unwrap().len(), 0, "{out}");
    let snap = out["snapshot_id"].as_str().unwrap();

    let target = env.path("restored");
    let r = env.json(
        &["restore", &snap[..8], "--target", target.to_str().unwrap()],
        0,
    );
    assert_eq!(
        r["summary"]["specials"],
        if is_root() { 2 } else { 1 },
        "{r}"
    );
    assert_same(&before, &manifest(&under(&target, &src)));
    assert!(
        fs::symlink_metadata(under(&target, &src).join("dir/a-fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    if is_root() {
        let d = fs::symlink_metadata(under(&target, &src).join("dir/null-device")).unwrap();
        assert!(d.file_type().is_char_device());
        assert_eq!(d.rdev(), fs::symlink_metadata(&device).unwrap().rdev());
    }

    // The hard links are links again, and the sparse file keeps its holes.
    let a = fs::metadata(under(&target, &src).join("dir/hard-a")).unwrap();
    assert_eq!(a.nlink(), 3);
    assert_eq!(
        a.ino(),
        fs::metadata(under(&target, &src).join("dir/sub/hard-c"))
            .unwrap()
            .ino()
    );
    let sparse = fs::metadata(under(&target, &src).join("dir/sparse.img")).unwrap();
    assert_eq!(sparse.len(), 64 << 20);
    assert!(
        sparse.blocks() * 512 < 16 << 20,
        "sparse file restored with {} bytes allocated",
        sparse.blocks() * 512
    );
}

/// Sets an entry's atime, keeping its mtime (`File::set_times` works on
/// directories too, opened read-only).
fn set_atime(p: &Path, secs: u64) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    let f = fs::File::open(p).unwrap();
    f.set_times(fs::FileTimes::new().set_accessed(t)).unwrap();
}

fn root_tree(env: &Env, snap: &str) -> String {
    let list = env.json(&["snapshots"], 0);
    let s = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == snap)
        .unwrap();
    s["snapshot"]["tree"].as_str().unwrap().to_string()
}

#[test]
fn access_times_are_recorded_only_when_asked() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("dir/sub")).unwrap();
    fs::write(src.join("dir/sub/file"), b"content").unwrap();
    set_mtime(&src.join("dir/sub/file"), 1_000_000_000_000_000_000);
    // Old access times (this changes ctime: before the first backup).
    for p in ["dir/sub/file", "dir/sub", "dir"] {
        set_atime(&src.join(p), 1_200_000_000);
    }
    let first = env.json(&["backup", src.to_str().unwrap()], 0);
    let first = first["snapshot_id"].as_str().unwrap().to_string();
    // Reading a directory or a file changes its atime (relatime: an atime
    // older than a day is updated) and nothing else.
    fs::read(src.join("dir/sub/file")).unwrap();
    fs::read_dir(src.join("dir/sub")).unwrap().for_each(drop);
    fs::read_dir(src.join("dir")).unwrap().for_each(drop);
    for p in ["dir/sub/file", "dir/sub", "dir"] {
        let atime = fs::metadata(src.join(p)).unwrap().atime();
        assert!(atime > 1_200_000_000, "{p}: reading updated its atime");
    }
    let second = env.json(&["backup", src.to_str().unwrap()], 0);
    let second = second["snapshot_id"].as_str().unwrap().to_string();
    assert_eq!(
        root_tree(&env, &first),
        root_tree(&env, &second),
        "no tree is stored again because something was read"
    );
    let target = env.path("restored");
    env.ok(&["restore", &second, "--target", target.to_str().unwrap()]);
    let m = fs::metadata(under(&target, &src).join("dir/sub/file")).unwrap();
    assert_eq!(m.atime(), 1_000_000_000, "atime not recorded: mtime");

    let third = env.json(&["backup", "--with-atime", src.to_str().unwrap()], 0);
    let third = third["snapshot_id"].as_str().unwrap().to_string();
    assert_ne!(root_tree(&env, &first), root_tree(&env, &third));
    let target = env.path("restored-with-atime");
    env.ok(&["restore", &third, "--target", target.to_str().unwrap()]);
    for p in ["dir/sub/file", "dir/sub", "dir"] {
        let restored = fs::metadata(under(&target, &src).join(p)).unwrap();
        let source = fs::metadata(src.join(p)).unwrap();
        assert_eq!(
            (restored.atime(), restored.atime_nsec()),
            (source.atime(), source.atime_nsec()),
            "{p}"
        );
    }
}

#[test]
fn changed_extended_attributes_are_seen_by_the_next_backup() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("dir")).unwrap();
    fs::write(src.join("dir/file"), b"same content").unwrap();
    fs::write(src.join("dir/untouched"), b"other").unwrap();
    set_xattr(&src.join("dir/file"), "user.state", b"before");
    set_xattr(&src.join("dir"), "user.state", b"before");
    set_xattr(&src.join("dir/untouched"), "user.kept", b"kept");
    env.ok(&["backup", src.to_str().unwrap()]);
    // Only the attributes change (and with them the ctime): content and
    // mtime stay, and the untouched file's attributes come from the parent.
    set_xattr(&src.join("dir/file"), "user.state", b"after");
    set_xattr(&src.join("dir/file"), "user.added", b"new");
    set_xattr(&src.join("dir"), "user.state", b"after");
    env.ok(&["backup", src.to_str().unwrap()]);
    let target = env.path("restored");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    for p in ["dir", "dir/file", "dir/untouched"] {
        assert_eq!(
            xattrs(&under(&target, &src).join(p)),
            xattrs(&src.join(p)),
            "{p}"
        );
    }
    assert_eq!(
        xattrs(&under(&target, &src).join("dir/file")),
        vec![
            (b"user.added".to_vec(), b"new".to_vec()),
            (b"user.state".to_vec(), b"after".to_vec())
        ]
    );
}

#[test]
fn incremental_backups_each_restore_their_own_state() {
    let env = Env::new();
    let src = env.path("data");
    fs::create_dir_all(src.join("a")).unwrap();
    for i in 0..30 {
        fs::write(
            src.join(format!("a/f{i}")),
            random_bytes(10_000 + i * 3_000, i as u64),
        )
        .unwrap();
    }
    // Large next to the chunk sizes (512 KiB / 1 MiB / 8 MiB), whatever
    // the repository's random chunker seed makes of it.
    fs::write(src.join("big"), random_bytes(40 << 20, 99)).unwrap();
    let mut states = vec![];
    for round in 0..4u64 {
        match round {
            0 => {}
            1 => {
                fs::write(src.join("a/f3"), b"rewritten").unwrap();
                fs::remove_file(src.join("a/f4")).unwrap();
                fs::create_dir_all(src.join("b/c")).unwrap();
                fs::write(src.join("b/c/new"), random_bytes(300_000, 7)).unwrap();
            }
            2 => {
                // Same size, same mtime, different content: ctime still changes.
                let p = src.join("a/f5");
                let old = fs::metadata(&p).unwrap();
                fs::write(&p, random_bytes(old.len() as usize, 555)).unwrap();
                set_mtime(&p, old.mtime() * 1_000_000_000 + old.mtime_nsec());
                // Insert in the middle of the big file: most chunks dedup.
                let mut big = fs::read(src.join("big")).unwrap();
                big.splice(20 << 20..20 << 20, b"inserted".iter().copied());
                fs::write(src.join("big"), big).unwrap();
            }
            _ => {
                fs::remove_dir_all(src.join("b")).unwrap();
                fs::set_permissions(src.join("a/f1"), fs::Permissions::from_mode(0o600)).unwrap();
            }
        }
        let out = env.json(&["backup", src.to_str().unwrap()], 0);
        if round == 2 {
            assert_eq!(out["files_changed"], 2, "f5 and big were re-read: {out}");
            let added = out["bytes_added"].as_u64().unwrap();
            // The chunk with the insertion and at most the next before the
            // boundaries line up again: two chunks of at most 8 MiB each.
            assert!(
                added < 16 << 20,
                "an insertion re-stores only nearby chunks, added {added}"
            );
        }
        states.push((
            out["snapshot_id"].as_str().unwrap().to_string(),
            manifest(&src),
        ));
    }
    // A backup with no change reads nothing.
    let out = env.json(&["backup", src.to_str().unwrap()], 0);
    assert_eq!(out["bytes_read"], 0, "{out}");
    assert_eq!(out["files_new"], 0);
    assert_eq!(out["files_changed"], 0);
    assert!(out["files_unmodified"].as_u64().unwrap() >= 30);
    assert_eq!(out["data_blobs"], 0);

    for (i, (id, state)) in states.iter().enumerate() {
        let target = env.path(&format!("restore-{i}"));
        env.ok(&["restore", id, "--target", target.to_str().unwrap()]);
        assert_same(state, &manifest(&under(&target, &src)));
    }
}

#[test]
fn selective_restore_takes_only_included_paths() {
    let env = Env::new();
    let src = env.path("srv");
    fs::create_dir_all(src.join("app/uploads/2026")).unwrap();
    fs::create_dir_all(src.join("app/cache")).unwrap();
    fs::write(src.join("app/uploads/2026/a.jpg"), b"jpeg").unwrap();
    fs::write(src.join("app/uploads/b.jpg"), b"jpeg2").unwrap();
    fs::write(src.join("app/cache/x"), b"cache").unwrap();
    fs::write(src.join("app/config.toml"), b"[x]").unwrap();
    env.backup(&[&src]);
    let t = env.path("t");
    let uploads = src.join("app/uploads");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--include",
        uploads.to_str().unwrap(),
        "--include",
        "**/*.toml",
    ]);
    // Only the directories above what was selected, and nothing beside it.
    let mut above = vec![];
    let mut p = src.parent();
    while let Some(d) = p.filter(|d| d != &Path::new("/")) {
        above.push(d.strip_prefix("/").unwrap().display().to_string());
        p = d.parent();
    }
    let got: Vec<_> = manifest(&t)
        .into_keys()
        .map(|p| p.display().to_string())
        .filter(|p| !above.contains(p))
        .collect();
    let s = src.strip_prefix("/").unwrap().display().to_string();
    assert_eq!(
        got,
        [
            "",
            "/app",
            "/app/config.toml",
            "/app/uploads",
            "/app/uploads/2026",
            "/app/uploads/2026/a.jpg",
            "/app/uploads/b.jpg"
        ]
        .map(|x| format!("{s}{x}"))
    );
    assert_eq!(
        fs::read(under(&t, &src).join("app/uploads/2026/a.jpg")).unwrap(),
        b"jpeg"
    );

    let out = env.run(&[
        "restore",
        "latest",
        "--target",
        env.path("t2").to_str().unwrap(),
        "--include",
        "nothing/here",
    ]);
    assert_eq!(code(&out), 2, "{}", text(&out));
}

#[test]
fn stdin_is_always_read_in_full_and_dumped_back() {
    let env = Env::new();
    let first = random_bytes(5 << 20, 11);
    let mut second = first.clone();
    second[100] ^= 1; // same name, same size, other content
    for data in [&first, &second] {
        let out = env
            .cmd()
            .args(["--json", "backup", "--stdin", "--stdin-name", "orders.sql"])
            .write_stdin(data.clone())
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            v["bytes_read"],
            data.len() as u64,
            "a stream is never skipped: {v}"
        );
    }
    let ids = env.snapshot_ids();
    assert_eq!(ids.len(), 2);
    for (id, want) in ids.iter().zip([&first, &second]) {
        let out = env.ok(&["dump", id, "orders.sql"]);
        assert!(
            out.stdout == **want,
            "dump of {id} returns what was backed up"
        );
    }
    let out = env.run(&["dump", "latest", "missing.sql"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("missing.sql"), "{}", text(&out));
}

#[test]
fn excludes_by_glob_and_file() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("keep/cache")).unwrap();
    fs::create_dir_all(src.join("node_modules/x")).unwrap();
    for f in [
        "keep/a.txt",
        "keep/b.tmp",
        "keep/cache/c",
        "node_modules/x/y",
        "top.tmp",
        "top.txt",
    ] {
        fs::write(src.join(f), f).unwrap();
    }
    let ex = env.path("excludes");
    fs::write(
        &ex,
        format!("# comment\n\nnode_modules\n{}/keep/cache\n", src.display()),
    )
    .unwrap();
    env.ok(&[
        "backup",
        src.to_str().unwrap(),
        "--exclude",
        "*.tmp",
        "--exclude-file",
        ex.to_str().unwrap(),
    ]);
    let out = env.json(&["ls", "latest", src.to_str().unwrap()], 0);
    let paths: Vec<&str> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let s = src.display();
    assert_eq!(
        paths,
        ["", "/keep", "/keep/a.txt", "/top.txt"].map(|x| format!("{s}{x}"))
    );
}

/// Issue 8.1: any set of paths can be backed up together, and the paths
/// `snapshots` shows are the ones `ls`, `dump`, `diff` and `restore` take.
#[test]
fn paths_keep_their_absolute_place_and_every_command_speaks_them() {
    let env = Env::new();
    let a = env.path("var/lib/app");
    let b = env.path("etc/app");
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    fs::write(a.join("x"), b"data of var").unwrap();
    fs::write(b.join("x"), b"config of etc").unwrap();
    // A path inside another given path is covered by the outer one.
    let v = env.json(
        &[
            "backup",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            a.join("x").to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(v["files_new"], 2, "{v}");
    let snaps = env.json(&["snapshots"], 0);
    let mut want = vec![b.display().to_string(), a.display().to_string()];
    want.sort();
    assert_eq!(snaps[0]["snapshot"]["paths"], serde_json::json!(want));

    let ax = a.join("x");
    let ls = env.json(&["ls", "latest", ax.to_str().unwrap()], 0);
    assert_eq!(ls[0]["path"], ax.to_str().unwrap());
    assert_eq!(
        env.ok(&["dump", "latest", ax.to_str().unwrap()]).stdout,
        b"data of var"
    );
    assert_eq!(
        env.ok(&["dump", "latest", b.join("x").to_str().unwrap()])
            .stdout,
        b"config of etc"
    );
    // The directories above a path are in the snapshot with their metadata.
    fs::set_permissions(env.path("var"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::write(a.join("y"), b"new").unwrap();
    env.ok(&["backup", a.to_str().unwrap(), b.to_str().unwrap()]);
    let d = env.json(&["diff", &env.snapshot_ids()[0], "latest"], 0);
    let changed: Vec<&str> = d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(changed.contains(&a.join("y").to_str().unwrap()), "{d}");

    // Whole: everything lands at its absolute place below the target.
    let t = env.path("t");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_eq!(fs::read(under(&t, &a).join("y")).unwrap(), b"new");
    assert_eq!(fs::read(under(&t, &b).join("x")).unwrap(), b"config of etc");
    let var = fs::metadata(under(&t, &env.path("var"))).unwrap();
    assert_eq!(var.permissions().mode() & 0o777, 0o750);
    // By pattern, with the path as `snapshots` shows it.
    let t2 = env.path("t2");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t2.to_str().unwrap(),
        "--include",
        b.to_str().unwrap(),
    ]);
    assert!(under(&t2, &b).join("x").exists());
    assert!(!under(&t2, &a).exists());
    // `SNAPSHOT:PATH` puts a directory's content straight into the target.
    let t3 = env.path("t3");
    let spec = format!("latest:{}", a.display());
    env.ok(&["restore", &spec, "--target", t3.to_str().unwrap()]);
    assert_eq!(fs::read(t3.join("x")).unwrap(), b"data of var");
    assert_eq!(fs::read_dir(&t3).unwrap().count(), 2);
}

/// Issue 8.4: an empty stream and a failed or killed producer write no
/// snapshot; a producer that succeeds is backed up whole.
#[test]
fn empty_streams_and_failed_producers_write_no_snapshot() {
    let env = Env::new();
    let stdin_backup = |extra: &[&str], data: &str| {
        let mut a = vec!["backup", "--stdin", "--stdin-name", "db.sql"];
        a.extend_from_slice(extra);
        env.cmd()
            .args(&a)
            .write_stdin(data.to_string())
            .output()
            .unwrap()
    };
    let out = stdin_backup(&[], "");
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(stderr(&out).contains("empty"), "{}", text(&out));
    assert!(env.objects("snapshots").is_empty());
    assert_eq!(code(&stdin_backup(&["--allow-empty"], "")), 0);
    assert_eq!(env.objects("snapshots").len(), 1);

    for (script, what) in [
        ("printf partial; echo oops >&2; exit 3", "exit status: 3"),
        ("printf partial; kill -9 $$", "signal: 9"),
    ] {
        let out = env.run(&[
            "backup",
            "--stdin-from-command",
            "--stdin-name",
            "x.dump",
            "--",
            "sh",
            "-c",
            script,
        ]);
        assert_eq!(code(&out), 1, "{script}: {}", text(&out));
        assert!(
            stderr(&out).contains("sh failed") && stderr(&out).contains(what),
            "{}",
            text(&out)
        );
        assert_eq!(env.objects("snapshots").len(), 1, "{script}: no snapshot");
    }
    let v = env.json(
        &[
            "backup",
            "--stdin-from-command",
            "--stdin-name",
            "x.dump",
            "--",
            "sh",
            "-c",
            "printf 'whole dump'",
        ],
        0,
    );
    assert_eq!(v["bytes_read"], 10);
    assert_eq!(env.ok(&["dump", "latest", "/x.dump"]).stdout, b"whole dump");
    let out = env.run(&["backup", "--stdin-from-command", "--", "/no/such/program"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
}

/// Issue 8.8: `*` stays within one component, bare names match at any
/// depth, a trailing `/` means directories, for excludes and includes alike.
#[test]
fn patterns_are_gitignore_style_for_excludes_and_includes() {
    let env = Env::new();
    let src = env.path("data");
    fs::create_dir_all(src.join("deep/er/cache")).unwrap();
    fs::create_dir_all(src.join("doc/sub")).unwrap();
    for f in [
        "a.jpg",
        "deep/er/b.jpg",
        "deep/cache",
        "deep/er/cache/x",
        "doc/a.gz",
        "doc/sub/b.gz",
    ] {
        fs::write(src.join(f), f).unwrap();
    }
    let top_jpg = format!("{}/*.jpg", src.display());
    env.ok(&[
        "backup",
        src.to_str().unwrap(),
        "--exclude",
        &top_jpg,
        "--exclude",
        "cache/",
    ]);
    let ls = env.json(&["ls", "latest", src.to_str().unwrap()], 0);
    let s = src.display().to_string();
    let got: Vec<String> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["path"]
                .as_str()
                .unwrap()
                .trim_start_matches(&s)
                .to_string()
        })
        .collect();
    assert_eq!(
        got,
        [
            "",
            "/deep",
            "/deep/cache",
            "/deep/er",
            "/deep/er/b.jpg",
            "/doc",
            "/doc/a.gz",
            "/doc/sub",
            "/doc/sub/b.gz"
        ],
        "only the top-level jpg and the cache directory (not the cache file) are excluded"
    );
    let t = env.path("t");
    let inc = format!("{}/doc/*.gz", src.strip_prefix("/").unwrap().display());
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--include",
        &inc,
        "--include",
        "b.jpg",
    ]);
    let r = under(&t, &src);
    assert!(r.join("doc/a.gz").exists());
    assert!(!r.join("doc/sub").exists(), "* does not cross /");
    assert!(
        r.join("deep/er/b.jpg").exists(),
        "a bare name matches at any depth"
    );
    assert!(!r.join("deep/cache").exists());
}

/// Issue 8, first hour: what a restic user leaves out of a backup, and a
/// dry run that says how much would be stored and writes nothing.
#[test]
fn backup_leaves_out_caches_marked_dirs_large_files_and_other_file_systems() {
    let env = Env::new();
    let src = env.path("src");
    for d in ["cache", "marked", "keep", "mnt"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    fs::write(
        src.join("cache/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n",
    )
    .unwrap();
    fs::write(src.join("cache/blob"), b"cached").unwrap();
    fs::write(src.join("marked/.nobackup"), b"").unwrap();
    fs::write(src.join("marked/secret"), b"s").unwrap();
    fs::write(src.join("keep/small"), b"small").unwrap();
    fs::write(src.join("keep/huge"), vec![7u8; 3 << 20]).unwrap();
    fs::write(src.join("keep/IMG.JPG"), b"jpeg").unwrap();
    let extra = env.path("extra.txt");
    fs::write(&extra, b"from the list").unwrap();
    let list = env.path("list");
    fs::write(&list, format!("# the list\n{}\n\n", extra.display())).unwrap();
    // Another file system below the backup path (CI runs as root).
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "lifeboat-test"])
        .arg(src.join("mnt"))
        .status()
        .unwrap();
    assert!(mounted.success(), "mount a tmpfs (the suite runs as root)");
    fs::write(src.join("mnt/elsewhere"), b"other fs").unwrap();
    let backup = |extra_args: &[&str]| {
        let mut a = vec!["backup", src.to_str().unwrap()];
        a.extend_from_slice(extra_args);
        env.json(&a, 0)
    };
    let all = [
        "--exclude-caches",
        "--exclude-if-present",
        ".nobackup",
        "--exclude-larger-than",
        "1M",
        "--iexclude",
        "*.jpg",
        "--one-file-system",
        "--files-from",
        list.to_str().unwrap(),
    ];
    // A dry run first: it counts, and the repository does not change.
    let objects_before: Vec<_> = ["data", "index", "snapshots"]
        .iter()
        .flat_map(|k| env.objects(k))
        .collect();
    let mut dry_args = all.to_vec();
    dry_args.push("--dry-run");
    let dry = backup(&dry_args);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["files_new"], 2, "small and extra.txt: {dry}");
    assert!(dry["bytes_added"].as_u64().unwrap() > 0, "{dry}");
    let objects_after: Vec<_> = ["data", "index", "snapshots"]
        .iter()
        .flat_map(|k| env.objects(k))
        .collect();
    assert_eq!(objects_before, objects_after, "a dry run writes nothing");
    let v = backup(&all);
    let ls = env.json(&["ls", v["short_id"].as_str().unwrap()], 0);
    let paths: Vec<String> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    let has = |p: &std::path::Path| paths.contains(&p.display().to_string());
    std::process::Command::new("umount")
        .arg(src.join("mnt"))
        .status()
        .unwrap();
    assert!(has(&src.join("keep/small")), "{paths:?}");
    assert!(has(&extra), "--files-from: {paths:?}");
    for gone in ["cache", "marked", "keep/huge", "keep/IMG.JPG", "mnt"] {
        assert!(!has(&src.join(gone)), "{gone} left out: {paths:?}");
    }
    // Without the options everything is there.
    let plain = env.json(&["backup", src.to_str().unwrap()], 0);
    assert!(plain["files_new"].as_u64().unwrap() >= 4, "{plain}");
}

/// Issue 8, first hour: restore --exclude, --dry-run and --verify.
#[test]
fn restore_excludes_dry_runs_and_verifies() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("logs")).unwrap();
    fs::create_dir_all(src.join("data")).unwrap();
    fs::write(src.join("logs/a.log"), b"log").unwrap();
    fs::write(src.join("data/db"), random_bytes(2 << 20, 5)).unwrap();
    fs::write(src.join("data/db.tmp"), b"tmp").unwrap();
    env.backup(&[&src]);
    let out = env.path("out");
    let t = out.to_str().unwrap();
    let dry = env.json(
        &[
            "restore",
            "latest",
            "--target",
            t,
            "--dry-run",
            "-e",
            "logs",
            "-e",
            "*.tmp",
        ],
        0,
    );
    let s = &dry["summary"];
    assert_eq!(s["dry_run"], true);
    assert_eq!(s["files"], 1, "{dry}");
    assert_eq!(s["bytes"], 2 << 20, "{dry}");
    assert!(!out.exists(), "a dry run creates nothing");
    let real = env.json(
        &[
            "restore", "latest", "--target", t, "-e", "logs", "-e", "*.tmp", "--verify",
        ],
        0,
    );
    assert_eq!(real["summary"]["files"], s["files"]);
    assert_eq!(real["summary"]["verified"], 1, "{real}");
    let got = manifest(&under(&out, &src));
    assert!(got.contains_key(std::path::Path::new("data/db")));
    assert!(!got.contains_key(std::path::Path::new("logs")), "{got:?}");
    assert!(!got.contains_key(std::path::Path::new("data/db.tmp")));
    // Into the same target: a dry run names what is in the way.
    let again = env.json(&["restore", "latest", "--target", t, "--dry-run"], 0);
    assert_eq!(again["summary"]["conflicts"], 1, "data/db: {again}");
}

/// Issue 8, first hour: `dump` of a directory is a tar that GNU tar
/// extracts into the layout a restore gives, metadata included.
#[test]
fn dump_of_a_directory_is_a_tar_that_extracts_to_the_source() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    fs::write(src.join("sub/a"), random_bytes(3 << 20, 9)).unwrap();
    fs::write(src.join("sub/deeper/b"), b"b").unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    fs::hard_link(src.join("sub/deeper/b"), src.join("b-link")).unwrap();
    std::os::unix::fs::symlink("sub/a", src.join("to-a")).unwrap();
    let long = "n".repeat(120);
    fs::write(src.join("sub").join(&long), b"long name").unwrap();
    fs::set_permissions(src.join("sub/a"), fs::Permissions::from_mode(0o640)).unwrap();
    set_mtime(&src.join("sub/a"), 1_600_000_000_000_000_000);
    env.backup(&[&src]);
    for (what, root) in [
        ("the directory", src.to_str().unwrap()),
        ("the snapshot", "/"),
    ] {
        let tar = env.ok(&["dump", "latest", root]).stdout;
        let out = env.path(&format!("x-{}", what.len()));
        fs::create_dir_all(&out).unwrap();
        let mut child = std::process::Command::new("tar")
            .args(["-x", "-p", "-f", "-", "-C"])
            .arg(&out)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&tar).unwrap();
        assert!(
            child.wait().unwrap().success(),
            "{what}: GNU tar accepts it"
        );
        let got = manifest(&under(&out, &src));
        let want = manifest(&src);
        // tar keeps whole seconds of mtime and no directory times of its
        // own making; compare what tar can carry.
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{what}"
        );
        for (p, w) in &want {
            let g = &got[p];
            assert_eq!(
                (g.kind, g.mode, &g.content, g.size),
                (w.kind, w.mode, &w.content, w.size),
                "{what}: {p:?}"
            );
            assert_eq!(
                g.link_group.is_some(),
                w.link_group.is_some(),
                "{what}: hard link {p:?}"
            );
            if w.kind == 'f' {
                assert_eq!(
                    g.mtime_ns / 1_000_000_000,
                    w.mtime_ns / 1_000_000_000,
                    "{p:?}"
                );
            }
        }
    }
}
