//! Command-line conventions: JSON, exit codes, passwords, keys, safety.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::common::*;

#[test]
fn every_command_prints_one_json_document() {
    let env = Env::empty();
    let v = env.json(&["init"], 0);
    assert!(v["id"].is_string());
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let b = env.json(
        &[
            "backup",
            src.to_str().unwrap(),
            "--tag",
            "t1",
            "--host",
            "h1",
        ],
        0,
    );
    for k in [
        "snapshot_id",
        "files_new",
        "files_changed",
        "files_unmodified",
        "bytes_read",
        "bytes_added",
        "duration_seconds",
    ] {
        assert!(!b[k].is_null(), "backup summary has {k}: {b}");
    }
    fs::write(src.join("g"), b"y").unwrap();
    let b2 = env.json(&["backup", src.to_str().unwrap(), "--host", "h1"], 0);
    assert_eq!(b2["parent"], b["snapshot_id"]);
    let s = env.json(&["snapshots"], 0);
    assert_eq!(s.as_array().unwrap().len(), 2);
    assert_eq!(s[0]["snapshot"]["tags"][0], "t1");
    assert_eq!(s[0]["snapshot"]["hostname"], "h1");
    assert_eq!(
        env.json(&["snapshots", "--tag", "t1"], 0)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let ls = env.json(&["ls", "latest"], 0);
    let listed: Vec<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    for f in ["f", "g"] {
        assert!(listed.contains(&src.join(f).to_str().unwrap()), "{ls}");
    }
    let g = ls
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == src.join("g").to_str().unwrap())
        .unwrap();
    assert_eq!((&g["type"], &g["size"]), (&"file".into(), &1.into()), "{g}");
    let d = env.json(&["diff", b["short_id"].as_str().unwrap(), "latest"], 0);
    assert_eq!(
        d["changes"][0]["path"],
        src.join("g").to_str().unwrap(),
        "diff speaks absolute paths"
    );
    assert_eq!(d["changes"][0]["change"], "added");
    let r = env.json(
        &[
            "restore",
            "latest",
            "--target",
            env.path("t").to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(r["summary"]["files"], 2);
    let c = env.json(&["check", "--read-data"], 0);
    assert_eq!(c["errors"].as_array().unwrap().len(), 0);
    let keys = env.json(&["key", "list"], 0);
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    assert_eq!(keys[0]["current"], true, "{keys}");
    assert_eq!(keys[0]["id"].as_str().unwrap().len(), 64, "{keys}");
    let f = env.json(&["forget", "--keep-last", "1", "--dry-run"], 0);
    assert_eq!(
        f["forget"]["groups"][0]["remove"].as_array().unwrap().len(),
        1
    );
    let p = env.json(&["prune", "--dry-run"], 0);
    assert_eq!(p["dry_run"], true);
    // dump's output is the file itself: --json is refused, not mixed in.
    let e = env.json(&["dump", "latest", src.join("f").to_str().unwrap()], 2);
    assert!(e["error"].as_str().unwrap().contains("raw bytes"));
    // Errors are JSON too, with the exit code.
    let e = env.json(&["restore", "nonexistent", "--target", "x"], 2);
    assert!(e["error"].as_str().unwrap().contains("nonexistent"));
    assert_eq!(e["exit_code"], 2);
}

#[test]
fn usage_errors_exit_2_and_name_the_problem() {
    let env = Env::empty();
    let out = env.run(&["snapshots"]);
    assert_eq!(code(&out), 2, "no repository: {}", text(&out));
    assert!(
        stderr(&out).contains(env.repo.to_str().unwrap()),
        "names where: {}",
        text(&out)
    );
    let out = env.run(&["--no-such-flag"]);
    assert_eq!(code(&out), 2);
    let out = env
        .cmd()
        .env_remove("LIFEBOAT_REPOSITORY")
        .args(["snapshots"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("LIFEBOAT_REPOSITORY"));
    env.ok(&["init"]);
    let out = env.run(&["init"]);
    assert_eq!(code(&out), 2, "init twice: {}", text(&out));
    let out = env.run(&["backup", env.path("does-not-exist").to_str().unwrap()]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("does-not-exist"));
    let out = env.run(&["forget"]);
    assert_eq!(
        code(&out),
        2,
        "forget without rules refuses: {}",
        text(&out)
    );
    let out = env.run(&["check", "--read-data-subset", "150%"]);
    assert_eq!(code(&out), 2);
    let out = env
        .cmd()
        .env_remove("LIFEBOAT_PASSWORD")
        .args(["snapshots"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "no password and no terminal: {}", text(&out));
    assert!(stderr(&out).contains("LIFEBOAT_PASSWORD_FILE"));
}

#[test]
fn a_relative_repository_path_works_and_errors_name_each_cause_once() {
    let env = Env::empty();
    let out = env
        .cmd()
        .current_dir(env.dir.path())
        .env("LIFEBOAT_REPOSITORY", "relative-repo")
        .args(["init"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "init of a relative path: {}", text(&out));
    assert!(env.path("relative-repo/config").is_file());

    fs::write(env.path("a-file"), b"x").unwrap();
    let out = env
        .cmd()
        .env("LIFEBOAT_REPOSITORY", env.path("a-file/repo"))
        .args(["init"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", text(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("a-file/repo"), "names where: {err}");
    assert_eq!(err.matches("os error").count(), 1, "each cause once: {err}");
}

#[test]
fn quiet_actions_say_nothing_unless_something_is_wrong() {
    let env = Env::empty();
    let silent = |args: &[&str], want: i32| {
        let out = env.run(args);
        assert_eq!(code(&out), want, "{args:?}: {}", text(&out));
        assert!(out.stdout.is_empty(), "{args:?} printed: {}", text(&out));
        out
    };
    let out = silent(&["init", "-q"], 0);
    assert!(out.stderr.is_empty(), "{}", text(&out));
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("file"), b"data").unwrap();
    silent(&["backup", "-q", src.to_str().unwrap()], 0);
    // A problem is still reported, on stderr, even with -q.
    let out = env
        .cmd()
        .args(["backup", "-q", "--stdin"])
        .write_stdin("")
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("error: ") && err.contains("empty"), "{err}");
    let target = env.path("restored");
    let out = silent(
        &[
            "restore",
            "-q",
            "latest",
            "--target",
            target.to_str().unwrap(),
        ],
        0,
    );
    assert!(out.stderr.is_empty(), "{}", text(&out));
    assert_eq!(
        fs::read(under(&target, &src).join("file")).unwrap(),
        b"data"
    );
    silent(&["check", "-q", "--read-data"], 0);
    silent(&["forget", "-q", "--keep-last", "1"], 0);
    // Listings are the result itself: printed with -q too.
    let out = env.ok(&["snapshots", "-q"]);
    assert!(!out.stdout.is_empty());
    let out = env.ok(&["ls", "-q", "latest"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("file"));
}

#[test]
fn wrong_password_fails_cleanly_and_writes_nothing() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"data").unwrap();
    env.backup(&[&src]);
    let before = manifest(&env.repo);
    for args in [
        &["backup", src.to_str().unwrap()][..],
        &["snapshots"],
        &["prune"],
        &["key", "add"],
    ] {
        let out = env
            .cmd()
            .env("LIFEBOAT_PASSWORD", "Qz7-not-the-password")
            .env("LIFEBOAT_NEW_PASSWORD", "Vx3-new-secret")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(code(&out), 1, "{args:?}: {}", text(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "one clear line: {err}");
        assert!(
            err.contains("wrong password") && err.contains(env.repo.to_str().unwrap()),
            "{err}"
        );
        let all = text(&out);
        assert!(
            !all.contains("Qz7") && !all.contains("Vx3"),
            "no password is ever echoed: {all}"
        );
    }
    assert_same(&before, &manifest(&env.repo));
}

#[test]
fn password_file_and_keys() {
    let env = Env::new();
    let pwfile = env.path("pw");
    fs::write(&pwfile, format!("{PASSWORD}\n")).unwrap();
    let out = env
        .cmd()
        .env_remove("LIFEBOAT_PASSWORD")
        .env("LIFEBOAT_PASSWORD_FILE", &pwfile)
        .args(["snapshots"])
        .output()
        .unwrap();
    assert_eq!(
        code(&out),
        0,
        "password from a file, trailing newline ignored: {}",
        text(&out)
    );

    let out = env
        .cmd()
        .env("LIFEBOAT_NEW_PASSWORD", "second")
        .args(["--json", "key", "add"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let keys = env.json(&["key", "list"], 0);
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let first = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The key in use cannot be removed; with the second password it can.
    let out = env.run(&["key", "remove", &first[..8]]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    let out = env
        .cmd()
        .env("LIFEBOAT_PASSWORD", "second")
        .args(["key", "remove", &first[..8]])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(
        code(&env.run(&["snapshots"])),
        1,
        "the first password no longer opens it"
    );
    // passwd replaces the key in use.
    let out = env
        .cmd()
        .env("LIFEBOAT_PASSWORD", "second")
        .env("LIFEBOAT_NEW_PASSWORD", "third")
        .args(["key", "passwd"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(
        code(
            &env.cmd()
                .env("LIFEBOAT_PASSWORD", "second")
                .args(["snapshots"])
                .output()
                .unwrap()
        ),
        1
    );
    assert_eq!(
        code(
            &env.cmd()
                .env("LIFEBOAT_PASSWORD", "third")
                .args(["snapshots"])
                .output()
                .unwrap()
        ),
        0
    );
}

#[test]
fn snapshot_arguments_accept_latest_and_unique_prefixes() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let mut ids = vec![];
    for i in 0..20 {
        fs::write(src.join("f"), format!("{i}")).unwrap();
        ids.push(env.backup(&[&src]));
    }
    let f = src.join("f");
    let f = f.to_str().unwrap();
    let out = env.ok(&["dump", "latest", f]);
    assert_eq!(out.stdout, b"19");
    let out = env.ok(&["dump", &ids[3][..10], f]);
    assert_eq!(out.stdout, b"3");
    // Some one-character prefix is shared by two of twenty ids.
    let mut firsts: Vec<char> = ids.iter().map(|i| i.chars().next().unwrap()).collect();
    firsts.sort();
    if let Some(w) = firsts.windows(2).find(|w| w[0] == w[1]) {
        let out = env.run(&["dump", &w[0].to_string(), "/src/f"]);
        assert_eq!(code(&out), 2);
        assert!(
            stderr(&out).contains(" snapshots; give more characters"),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn restore_never_overwrites_unless_asked_and_never_follows_planted_symlinks() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/file"), b"from backup").unwrap();
    fs::write(src.join("top"), b"top from backup").unwrap();
    env.backup(&[&src]);

    let target = env.path("target");
    fs::create_dir_all(under(&target, &src)).unwrap();
    fs::write(under(&target, &src).join("top"), b"precious").unwrap();
    let out = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(stderr(&out).contains("--overwrite"));
    assert_eq!(
        fs::read(under(&target, &src).join("top")).unwrap(),
        b"precious"
    );
    assert!(
        !under(&target, &src).join("sub").exists(),
        "nothing was written"
    );

    // A symlink planted where a directory and a file will go.
    let outside = env.path("outside");
    fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, under(&target, &src).join("sub")).unwrap();
    let victim = env.path("victim");
    fs::write(&victim, b"do not touch").unwrap();
    fs::remove_file(under(&target, &src).join("top")).unwrap();
    std::os::unix::fs::symlink(&victim, under(&target, &src).join("top")).unwrap();
    let out = env.run(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--overwrite",
    ]);
    assert_eq!(
        code(&out),
        1,
        "the planted directory link is refused: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("src/sub: exists and is not a directory"),
        "{}",
        text(&out)
    );
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written through the link"
    );
    assert_eq!(
        fs::read(&victim).unwrap(),
        b"do not touch",
        "the link was replaced, not followed"
    );
    assert_eq!(
        fs::read(under(&target, &src).join("top")).unwrap(),
        b"top from backup"
    );
    assert!(!fs::symlink_metadata(under(&target, &src).join("top"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn unreadable_files_are_listed_and_exit_3() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("locked-dir")).unwrap();
    fs::write(src.join("ok"), b"fine").unwrap();
    fs::write(src.join("locked"), b"secret").unwrap();
    fs::write(src.join("locked-dir/inner"), b"x").unwrap();
    fs::set_permissions(src.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(src.join("locked-dir"), fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads everything, so run as an unprivileged user who owns the repo.
    let mut cmd = env.cmd();
    if is_root() {
        std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(&env.repo)
            .arg(&src)
            .status()
            .unwrap();
        fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let bin = assert_cmd::cargo::cargo_bin("lifeboat");
        cmd = assert_cmd::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(bin);
        cmd.env("LIFEBOAT_REPOSITORY", &env.repo)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .env("HOME", "/tmp");
    }
    let out = cmd
        .args(["--json", "backup", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warned: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["path"].as_str().unwrap())
        .collect();
    assert!(warned.iter().any(|p| p.ends_with("/locked")), "{v}");
    assert!(warned.iter().any(|p| p.ends_with("/locked-dir")), "{v}");
    // Issue 8.15: an unreadable file is a warning, not a new file.
    assert_eq!(v["files_new"], 1, "only `ok` was read: {v}");
    let ls = env.json(&["ls", v["short_id"].as_str().unwrap()], 0);
    let paths: Vec<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let ok = src.join("ok");
    assert!(paths.contains(&ok.to_str().unwrap()), "{paths:?}");
    let locked = src.join("locked");
    assert!(!paths.contains(&locked.to_str().unwrap()), "{paths:?}");
}

/// Issue 8.15: `--force` reads every file but still tells new, changed and
/// unmodified files apart.
#[test]
fn force_reads_everything_and_counts_it_truthfully() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..5 {
        fs::write(src.join(format!("f{i}")), format!("file {i}")).unwrap();
    }
    env.backup(&[&src]);
    fs::write(src.join("f0"), b"changed, longer").unwrap();
    fs::write(src.join("new"), b"new").unwrap();
    let v = env.json(&["backup", src.to_str().unwrap(), "--force"], 0);
    let s = &v;
    assert_eq!(
        (&s["files_new"], &s["files_changed"], &s["files_unmodified"]),
        (&1.into(), &1.into(), &4.into()),
        "{v}"
    );
    assert_eq!(s["bytes_read"], s["bytes_total"], "every byte read: {v}");
}

#[test]
fn demo_runs_the_whole_story() {
    let env = Env::empty();
    let dir = env.path("demo");
    let out = env
        .cmd()
        .env_remove("LIFEBOAT_PASSWORD")
        .args([
            "--json",
            "demo",
            "--size",
            "24",
            "--dir",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["restores_identical"], true, "{v}");
    assert!(v["files_compared"].as_u64().unwrap() > 50);
    assert_eq!(v["check_errors"].as_array().unwrap().len(), 0);
    assert!(
        v["dedup_ratio"].as_f64().unwrap() > 1.5,
        "two similar snapshots dedup: {v}"
    );
    assert_eq!(v["steps"].as_array().unwrap().len(), 5);
    // The DR plan part: backups run from the plan while a writer commits,
    // restore tests that really restore, and the posture.
    let plan = &v["plan"];
    assert_eq!(plan["ok"], true, "{plan}");
    assert_eq!(plan["run"]["runs"].as_array().unwrap().len(), 2, "{plan}");
    for r in plan["run"]["runs"].as_array().unwrap() {
        let c = &r["copies"][0];
        assert_eq!(
            (c["to"].as_str(), c["ok"].as_bool()),
            (Some("dr"), Some(true)),
            "{plan}"
        );
        assert_eq!(c["snapshots_copied"], 1, "{plan}");
    }
    assert_eq!(
        plan["status"]["components"][0]["replication"][0]["lag_seconds"], 0.0,
        "{plan}"
    );
    assert_eq!(
        (
            plan["verify"]["passed"].as_u64(),
            plan["verify"]["failed"].as_u64()
        ),
        (Some(2), Some(0)),
        "{plan}"
    );
    assert!(
        plan["writer_commits_during_backup"].as_u64().unwrap() > 0,
        "{plan}"
    );
    assert!(
        plan["verify"].to_string().contains("as recorded"),
        "the counts compared: {plan}"
    );
    let status = env
        .cmd()
        .env_remove("LIFEBOAT_PASSWORD")
        .args(["status", "-c"])
        .arg(dir.join("lifeboat.toml"))
        .output()
        .unwrap();
    assert_eq!(code(&status), 0, "{}", text(&status));
    let pw = dir.join("password");
    assert_eq!(
        fs::metadata(&pw).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&fs::read_to_string(&pw).unwrap()),
        "the password is not printed"
    );
    // Running it again replaces its own directory, also named relative to
    // the working directory (as the README's `demo` does: ./lifeboat-demo);
    // a foreign directory is refused.
    let again = env
        .cmd()
        .current_dir(env.dir.path())
        .args(["demo", "--size", "4", "--dir", "demo"])
        .output()
        .unwrap();
    assert_eq!(code(&again), 0, "{}", text(&again));
    assert!(
        text(&again).contains("Passed 2, Warnings 0, Failed 0"),
        "{}",
        text(&again)
    );
    let foreign = env.path("foreign");
    fs::create_dir_all(&foreign).unwrap();
    fs::write(foreign.join("mine"), b"x").unwrap();
    let out = env
        .cmd()
        .args(["demo", "--size", "4", "--dir", foreign.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(foreign.join("mine").exists());
}

/// Issue 8.2: `latest` can be narrowed by host, tag and path, and
/// `snapshots` filters, groups and keeps the newest N.
#[test]
fn latest_respects_host_tag_and_path_filters() {
    let env = Env::new();
    let app = env.path("app");
    fs::create_dir_all(&app).unwrap();
    fs::write(app.join("x"), b"files").unwrap();
    let appx = app.join("x");
    env.ok(&[
        "backup",
        app.to_str().unwrap(),
        "--tag",
        "nightly,files",
        "--host",
        "web1",
    ]);
    env.ok(&[
        "backup",
        app.to_str().unwrap(),
        "--tag",
        "nightly",
        "--host",
        "web2",
    ]);
    let out = env
        .cmd()
        .args([
            "backup",
            "--stdin",
            "--stdin-name",
            "db.sql",
            "--tag",
            "nightly",
            "--host",
            "web1",
        ])
        .write_stdin("dump")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    // Plain latest is the stream: the file is not in it.
    assert_eq!(code(&env.run(&["ls", "latest", appx.to_str().unwrap()])), 2);
    let p = app.to_str().unwrap();
    let ls = env.json(&["ls", "latest", appx.to_str().unwrap(), "--path", p], 0);
    assert_eq!(ls[0]["path"], appx.to_str().unwrap());
    assert_eq!(
        env.ok(&["dump", "latest", "/db.sql", "--host", "web1"])
            .stdout,
        b"dump"
    );
    let ids = env.snapshot_ids();
    let listed = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["snapshots"];
        a.extend_from_slice(args);
        env.json(&a, 0)
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(listed(&["--tag", "nightly,files"]), vec![ids[0].clone()]);
    assert_eq!(listed(&["--tag", "files", "--tag", "nightly"]), ids);
    assert_eq!(
        listed(&["--host", "web1", "--path", p]),
        vec![ids[0].clone()]
    );
    assert_eq!(listed(&["--latest", "1"]), vec![ids[2].clone()]);
    let grouped = env.json(&["snapshots", "--group-by", "host", "--latest", "1"], 0);
    assert_eq!(grouped.as_array().unwrap().len(), 2, "{grouped}");
    assert_eq!(grouped[0]["group_key"]["host"], "web1");
    assert_eq!(grouped[0]["snapshots"][0]["id"], ids[2].as_str());
    assert_eq!(grouped[1]["snapshots"][0]["id"], ids[1].as_str());
    assert_eq!(code(&env.run(&["snapshots", "--group-by", "colour"])), 2);
    let out = env.run(&["ls", "latest", "--tag", "weekly"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--tag weekly"), "{}", text(&out));
}

/// Issue 8.17 and 8.11: a damaged snapshot object makes `latest` an error
/// (it may be the newest), never an older snapshot; damage exits 1 in every
/// command.
#[test]
fn a_damaged_snapshot_makes_latest_an_error_not_an_older_snapshot() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"old").unwrap();
    let first = env.backup(&[&src]);
    fs::write(src.join("f"), b"new").unwrap();
    let second = env.backup(&[&src]);
    let obj = env
        .objects("snapshots")
        .into_iter()
        .find(|p| p.file_name().unwrap().to_str().unwrap() == second)
        .unwrap();
    let mut bytes = fs::read(&obj).unwrap();
    bytes[40] ^= 1;
    fs::write(&obj, bytes).unwrap();
    let t = env.path("t");
    let out = env.run(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stderr(&out).contains("latest") && stderr(&out).contains(&second[..8]),
        "{}",
        text(&out)
    );
    assert!(!t.exists(), "nothing restored");
    // An explicit id still works.
    env.ok(&["restore", &first, "--target", t.to_str().unwrap()]);
    for args in [
        &["snapshots"][..],
        &["check"],
        &["forget", "--keep-last", "1"],
    ] {
        assert_eq!(code(&env.run(args)), 1, "{args:?}");
    }
}

/// Issue 8.3, 8.5, 8.9: addresses that are not a local path, empty and
/// shadowed passwords, and usage errors under `--json`.
#[test]
fn bad_addresses_passwords_and_usage_are_refused_clearly() {
    let env = Env::empty();
    for loc in ["sftp:host:/repo", "s3:https://s3.example/bucket"] {
        let out = env
            .cmd()
            .env("LIFEBOAT_REPOSITORY", loc)
            .current_dir(env.dir.path())
            .args(["init"])
            .output()
            .unwrap();
        assert_eq!(code(&out), 2, "{loc}: {}", text(&out));
        assert!(stderr(&out).contains("not supported"), "{}", text(&out));
        assert_eq!(
            fs::read_dir(env.dir.path()).unwrap().count(),
            0,
            "{loc}: no folder made"
        );
    }
    // Empty passwords, from every source.
    let empty = env.path("empty-pw");
    fs::write(&empty, "\n").unwrap();
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (vec![("LIFEBOAT_PASSWORD", "")], vec!["init"]),
        (
            vec![],
            vec!["init", "--password-file", empty.to_str().unwrap()],
        ),
        (vec![], vec!["init", "--password-command", "printf ''"]),
    ];
    for (vars, args) in cases {
        let mut c = env.cmd();
        c.env_remove("LIFEBOAT_PASSWORD");
        for (k, v) in vars {
            c.env(k, v);
        }
        let out = c.args(&args).output().unwrap();
        assert_eq!(code(&out), 2, "{args:?}: {}", text(&out));
        assert!(stderr(&out).contains("empty"), "{}", text(&out));
        assert!(!env.repo.exists(), "{args:?}: nothing created");
    }
    // An explicit file beats the environment; only its line ending is trimmed.
    let pwfile = env.path("pw");
    fs::write(&pwfile, "from the file \n").unwrap();
    env.ok(&["init", "--password-file", pwfile.to_str().unwrap()]);
    let out = env
        .cmd()
        .env("LIFEBOAT_PASSWORD", "from the file")
        .args(["snapshots"])
        .output()
        .unwrap();
    assert_eq!(
        code(&out),
        1,
        "the trailing space is part of it: {}",
        text(&out)
    );
    env.cmd()
        .env("LIFEBOAT_PASSWORD", "from the file ")
        .args(["snapshots"])
        .assert()
        .code(0);
    let out = env
        .cmd()
        .env("LIFEBOAT_PASSWORD", "env loses")
        .args(["--password-file", pwfile.to_str().unwrap(), "snapshots"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = env
        .cmd()
        .env_remove("LIFEBOAT_PASSWORD")
        .env("LIFEBOAT_PASSWORD_COMMAND", "printf 'from the file '")
        .args(["snapshots"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = env
        .cmd()
        .args(["--password-command", "exit 7", "snapshots"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", text(&out));
    // Usage errors are one JSON document too.
    for args in [
        &["--json", "snapshots", "--no-such"][..],
        &["--json", "restore"],
        &["--json", "init", "--compression", "x"],
    ] {
        let out = env.run(args);
        assert_eq!(code(&out), 2, "{args:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", text(&out)));
        assert_eq!(v["exit_code"], 2);
        assert!(!v["error"].as_str().unwrap().is_empty());
    }
}

/// Issue 8.6: a repository is private, whatever the umask.
#[test]
fn a_repository_is_created_private() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    env.backup(&[&src]);
    env.ok(&[
        "forget",
        "--keep-last",
        "1",
        "--prune",
        "--delete-delay",
        "0",
    ]);
    let mut seen = 0;
    let mut stack = vec![env.repo.clone()];
    while let Some(p) = stack.pop() {
        let m = fs::metadata(&p).unwrap();
        let mode = m.permissions().mode() & 0o777;
        if m.is_dir() {
            assert_eq!(mode, 0o700, "{}", p.display());
            stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        seen += 1;
    }
    assert!(
        seen > 8,
        "config, key, pack, index, snapshot and their folders"
    );
}

/// Issue 8.20 and 8.10: a damaged key object is named as damaged, not as
/// a wrong password; a stray object in keys/ does not panic `key list`.
#[test]
fn a_damaged_key_is_not_a_wrong_password_and_a_stray_key_does_not_panic() {
    let env = Env::new();
    let key = env.objects("keys")[0].clone();
    let stray = env.repo.join("keys/abc");
    fs::write(&stray, b"garbage").unwrap();
    // The stray object is named as damaged (exit 1), the real key listed.
    let keys = env.json(&["key", "list"], 1);
    let ids: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    let real = key.file_name().unwrap().to_str().unwrap();
    assert_eq!(ids, [real], "{keys}");
    let out = env.run(&["key", "list"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stderr(&out).contains("key abc") && stderr(&out).contains("not a key object"),
        "{}",
        text(&out)
    );
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    let by = lines[0].find("CREATED").unwrap();
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.len() <= by || l[..by].ends_with("  ")),
        "aligned: {lines:?}"
    );
    fs::remove_file(&stray).unwrap();
    let mut bytes = fs::read(&key).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    fs::write(&key, bytes).unwrap();
    let out = env.run(&["snapshots"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let name = key.file_name().unwrap().to_str().unwrap();
    assert!(
        stderr(&out).contains("damaged") && stderr(&out).contains(name),
        "{}",
        text(&out)
    );
    assert!(!stderr(&out).contains("wrong password"), "{}", text(&out));
}

/// Issue 8.14: no colour codes in logs and warnings that go to a pipe.
#[test]
fn no_colour_codes_go_into_pipes() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    env.backup(&[&src]);
    let t = env.path("t");
    let out = env
        .cmd()
        .env("LIFEBOAT_LOG", "debug")
        .args(["restore", "latest", "--target", t.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(!out.stderr.is_empty(), "debug logs were written");
    assert!(!out.stderr.contains(&0x1b), "{}", text(&out));
}

/// Issue 8.10: no object a repository can hold makes a command panic.
/// Garbage, empty, truncated and misnamed objects are planted in every
/// folder, one kind at a time, and every read command runs over them: each
/// ends with an exit code of its own (0, 1 or 2) and never a panic.
#[test]
fn planted_garbage_empty_truncated_and_misnamed_objects_never_panic() {
    let folders = ["keys", "snapshots", "index", "data"];
    let plantings = ["garbage", "empty", "truncated", "misnamed"];
    for folder in folders {
        for planting in plantings {
            let env = Env::new();
            let src = env.path("src");
            fs::create_dir_all(src.join("d")).unwrap();
            fs::write(src.join("d/f"), random_bytes(100_000, 3)).unwrap();
            env.backup(&[&src]);
            let real = env.objects(folder)[0].clone();
            let bytes = fs::read(&real).unwrap();
            let fresh = "ab".repeat(32);
            let dir = if folder == "data" {
                env.repo.join("data/ab")
            } else {
                env.repo.join(folder)
            };
            fs::create_dir_all(&dir).unwrap();
            match planting {
                "garbage" => fs::write(dir.join("not-an-id"), b"\x00garbage\xff").unwrap(),
                "empty" => fs::write(dir.join(&fresh), b"").unwrap(),
                "truncated" => fs::write(dir.join(&fresh), &bytes[..bytes.len() / 2]).unwrap(),
                _ => fs::write(dir.join(&fresh), &bytes).unwrap(),
            }
            let t = env.path("t");
            let file = src.join("d/f");
            let commands: [&[&str]; 10] = [
                &["snapshots"],
                &["ls", "latest", "--long"],
                &["diff", "latest", "latest"],
                &["dump", "latest", file.to_str().unwrap()],
                &["restore", "latest", "--target", t.to_str().unwrap()],
                &["check"],
                &["check", "--read-data"],
                &["key", "list"],
                &["prune", "--dry-run"],
                &["forget", "--keep-last", "5", "--dry-run"],
            ];
            for args in commands {
                for json in [false, true] {
                    let mut a: Vec<&str> = args.to_vec();
                    if json {
                        a.insert(0, "--json");
                    }
                    let out = env.run(&a);
                    let c = out.status.code();
                    assert!(
                        matches!(c, Some(0..=2)),
                        "{folder}/{planting}: lifeboat {a:?} ended with {c:?}:\n{}",
                        text(&out)
                    );
                    assert!(
                        !stderr(&out).contains("panicked"),
                        "{folder}/{planting}: {a:?}:\n{}",
                        text(&out)
                    );
                    if json {
                        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_else(
                            |e| panic!("{folder}/{planting}: {a:?}: not one JSON document ({e})"),
                        );
                    }
                }
            }
        }
    }
}

/// Issue 8.15: the user's own mistakes are configuration (exit 2) and are
/// said in words, not as raw OS errors; one of a thing is not "1 things".
#[test]
fn mistakes_with_paths_are_usage_errors_in_words() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    env.backup(&[&src]);
    let file = env.path("a-file");
    fs::write(&file, b"x").unwrap();
    let missing = env.path("missing");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["backup", missing.to_str().unwrap()], "does not exist"),
        (
            vec![
                "backup",
                src.to_str().unwrap(),
                "--exclude-file",
                missing.to_str().unwrap(),
            ],
            "does not exist",
        ),
        (
            vec!["restore", "latest", "--target", file.to_str().unwrap()],
            "is not a directory",
        ),
        (
            vec!["-r", file.to_str().unwrap(), "snapshots"],
            "is not a directory",
        ),
        (
            vec!["-r", file.to_str().unwrap(), "init"],
            "is not a directory",
        ),
    ];
    for (args, words) in cases {
        let out = env.run(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", text(&out));
        let err = stderr(&out);
        assert!(err.contains(words), "{args:?}: {err}");
        assert!(!err.contains("os error"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    assert_eq!(fs::read(&file).unwrap(), b"x", "the file is untouched");
    let c = String::from_utf8(env.ok(&["check"]).stdout).unwrap();
    assert!(c.starts_with("checked 1 snapshot, "), "{c}");
}

/// `key add --generate FILE`: a random 256-bit secret written 0600 (never
/// over an existing file, never printed) whose key has minimal KDF cost
/// and opens the repository as a password file; `key passwd --generate`
/// replaces the key in use by one.
#[test]
fn a_generated_secret_is_written_privately_and_opens_the_repository() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let file = env.path("db.key");
    let f = file.to_str().unwrap();
    let out = env.run(&["--json", "key", "add", "--generate", f]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let secret = std::fs::read_to_string(&file).unwrap();
    let hex = secret.strip_suffix('\n').unwrap();
    assert_eq!(hex.len(), 64, "{secret:?}");
    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(!text(&out).contains(hex), "the secret is never printed");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let keys = env.json(&["key", "list"], 0);
    let added = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == doc["added"])
        .unwrap();
    assert_eq!(added["params"]["memory_kib"], 64, "{keys}");
    assert_eq!(added["params"]["iterations"], 1, "{keys}");

    let with_file = |file: &std::path::Path, args: &[&str]| {
        env.cmd()
            .env_remove("LIFEBOAT_PASSWORD")
            .env("LIFEBOAT_PASSWORD_FILE", file)
            .args(args)
            .output()
            .unwrap()
    };
    let out = with_file(&file, &["--json", "key", "list"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let current: Vec<_> = keys
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["current"] == true)
        .map(|k| k["id"].clone())
        .collect();
    assert_eq!(
        current,
        [doc["added"].clone()],
        "the generated key opened it"
    );

    // An existing file is refused and kept; no key is added.
    let out = env.run(&["key", "add", "--generate", f]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(stderr(&out).contains("exists"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), secret);
    assert_eq!(env.json(&["key", "list"], 0).as_array().unwrap().len(), 2);

    // passwd --generate: the key in use (the generated one) is replaced.
    let second = env.path("db2.key");
    let out = with_file(
        &file,
        &["key", "passwd", "--generate", second.to_str().unwrap()],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(code(&with_file(&second, &["snapshots"])), 0);
    assert_eq!(code(&with_file(&file, &["snapshots"])), 1, "the old secret");
}
