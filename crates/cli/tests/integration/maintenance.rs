//! forget and prune.

use std::fs;

use super::common::*;

fn repo_bytes(env: &Env) -> u64 {
    env.objects("data")
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

#[test]
fn forget_keeps_exactly_the_right_snapshots_and_prune_leaves_the_rest_restorable() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let mut states = vec![];
    for i in 0..6u64 {
        // Each round replaces most data, so forgetting frees real space.
        fs::write(src.join("data.bin"), random_bytes(3 << 20, 100 + i)).unwrap();
        fs::write(src.join("round"), format!("{i}")).unwrap();
        let tag = if i == 1 { "release" } else { "nightly" };
        let out = env.json(&["backup", src.to_str().unwrap(), "--tag", tag], 0);
        states.push((
            out["snapshot_id"].as_str().unwrap().to_string(),
            manifest(&src),
        ));
    }
    let dry = env.json(
        &[
            "forget",
            "--keep-last",
            "2",
            "--keep-tag",
            "release",
            "--dry-run",
        ],
        0,
    );
    assert_eq!(
        env.snapshot_ids().len(),
        6,
        "dry run removes nothing: {dry}"
    );

    let out = env.json(&["forget", "--keep-last", "2", "--keep-tag", "release"], 0);
    let kept: Vec<String> = out["forget"]["groups"][0]["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_string())
        .collect();
    let mut want = vec![
        states[5].0.clone(),
        states[4].0.clone(),
        states[1].0.clone(),
    ];
    assert_eq!(kept, want);
    let mut remaining = env.snapshot_ids();
    remaining.sort();
    want.sort();
    assert_eq!(remaining, want);

    // Default prune only marks; the space comes back after the delay.
    let before = repo_bytes(&env);
    let p = env.json(&["prune"], 0);
    assert!(p["packs_marked"].as_u64().unwrap() >= 1, "{p}");
    assert_eq!(p["packs_deleted"], 0, "{p}");
    assert_eq!(
        repo_bytes(&env),
        before,
        "marked packs stay until the delay has passed"
    );
    env.ok(&["check", "--read-data"]);
    let p = env.json(&["prune", "--delete-delay", "0"], 0);
    assert!(p["packs_deleted"].as_u64().unwrap() >= 1, "{p}");
    let after = repo_bytes(&env);
    assert!(
        after < before * 2 / 3,
        "prune gave space back: {before} -> {after}"
    );

    let check = env.json(&["check", "--read-data"], 0);
    assert!(check["errors"].as_array().unwrap().is_empty(), "{check}");
    for i in [1usize, 4, 5] {
        let t = env.path(&format!("r{i}"));
        env.ok(&["restore", &states[i].0, "--target", t.to_str().unwrap()]);
        assert_same(&states[i].1, &manifest(&under(&t, &src)));
    }
}

#[test]
fn prune_repacks_partly_used_packs() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    // Many small files land in one pack; then most of them go away.
    for i in 0..200u64 {
        fs::write(src.join(format!("f{i:03}")), random_bytes(20_000, i)).unwrap();
    }
    env.backup(&[&src]);
    for i in 0..180u64 {
        fs::remove_file(src.join(format!("f{i:03}"))).unwrap();
    }
    let id2 = env.backup(&[&src]);
    let state = manifest(&src);
    env.ok(&["forget", "--keep-last", "1"]);
    let p = env.json(&["prune", "--delete-delay", "0"], 0);
    assert!(p["packs_repacked"].as_u64().unwrap() >= 1, "{p}");
    assert!(p["blobs_repacked"].as_u64().unwrap() >= 20, "{p}");
    assert!(
        repo_bytes(&env) < 1_500_000,
        "only the 20 used files remain, {} bytes",
        repo_bytes(&env)
    );
    env.ok(&["check", "--read-data"]);
    let t = env.path("t");
    env.ok(&["restore", &id2, "--target", t.to_str().unwrap()]);
    assert_same(&state, &manifest(&under(&t, &src)));
}

#[test]
fn forget_by_id_and_check_subsets() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), random_bytes(1 << 20, 1)).unwrap();
    let a = env.backup(&[&src]);
    fs::write(src.join("b"), random_bytes(1 << 20, 2)).unwrap();
    let b = env.backup(&[&src]);
    env.ok(&["forget", &a[..12]]);
    assert_eq!(env.snapshot_ids(), vec![b]);
    for subset in ["50%", "1/2", "2/2"] {
        let c = env.json(&["check", "--read-data-subset", subset], 0);
        assert!(c["errors"].as_array().unwrap().is_empty());
    }
    let c = env.json(&["check", "--read-data-subset", "100%"], 0);
    assert_eq!(c["packs_read"], c["packs"]);
}

/// Issue 8.12 and 8.15: what prune marked stays visible (in prune and in
/// check) until it is deleted; `--max-unused` takes `5%`.
#[test]
fn pending_deletions_are_visible_in_prune_and_check() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big"), random_bytes(3 << 20, 1)).unwrap();
    env.backup(&[&src]);
    fs::write(src.join("big"), random_bytes(3 << 20, 2)).unwrap();
    env.backup(&[&src]);
    let f = env.json(
        &[
            "forget",
            "--keep-last",
            "1",
            "--prune",
            "--max-unused",
            "5%",
        ],
        0,
    );
    assert!(f["prune"]["packs_pending"].as_u64().unwrap() >= 1, "{f}");
    // A dry run lists each pack's fate.
    let d = env.json(&["prune", "--dry-run"], 0);
    let plan = d["plan"].as_array().unwrap();
    assert!(
        plan.iter()
            .any(|p| p["fate"] == "mark" && p["since"].as_i64().unwrap() > 0),
        "{d}"
    );
    // A later prune still says what is pending and when it goes.
    let p = env.json(&["prune"], 0);
    assert_eq!(p["packs_marked"], 0, "nothing newly marked: {p}");
    assert_eq!(p["packs_pending"], f["prune"]["packs_pending"], "{p}");
    assert!(p["bytes_pending"].as_u64().unwrap() >= 3 << 20, "{p}");
    assert!(p["pending_until"].as_i64().unwrap() > 0, "{p}");
    let text = String::from_utf8(env.ok(&["prune"]).stdout).unwrap();
    assert!(
        text.contains("marked for deletion: a prune after"),
        "{text}"
    );
    let c = env.json(&["check"], 0);
    assert!(
        c["warnings"].to_string().contains("marked for deletion"),
        "{c}"
    );
    assert_eq!(code(&env.run(&["prune", "--max-unused", "120%"])), 2);
}

/// Issue 8, first hour: forget groups as asked, and a dry run says which
/// rule keeps each snapshot.
#[test]
fn forget_groups_by_the_fields_asked_and_explains_each_keep() {
    let env = Env::new();
    let (a, b) = (env.path("a"), env.path("b"));
    for d in [&a, &b] {
        fs::create_dir_all(d).unwrap();
        fs::write(d.join("f"), b"x").unwrap();
    }
    env.ok(&["backup", a.to_str().unwrap(), "--tag", "db"]);
    env.ok(&["backup", b.to_str().unwrap(), "--tag", "db"]);
    env.ok(&["backup", a.to_str().unwrap(), "--tag", "web"]);
    // Default: host and paths; one per path kept.
    let d = env.json(&["forget", "--keep-last", "1", "--dry-run"], 0);
    let groups = d["forget"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{d}");
    assert_eq!(d["forget"]["removed"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(groups[0]["keep"][0]["reasons"][0], "last", "{d}");
    // By tags: db holds two snapshots (one kept), web one.
    let t = env.json(
        &[
            "forget",
            "--keep-last",
            "1",
            "--group-by",
            "tags",
            "--dry-run",
        ],
        0,
    );
    let keys: Vec<String> = t["forget"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group_key"]["tags"].to_string())
        .collect();
    assert_eq!(keys, vec![r#"["db"]"#, r#"["web"]"#], "{t}");
    // One group of everything: only the newest stays.
    let all = env.json(&["forget", "--keep-last", "1", "--group-by", ""], 0);
    assert_eq!(
        all["forget"]["removed"].as_array().unwrap().len(),
        2,
        "{all}"
    );
    assert_eq!(env.snapshot_ids().len(), 1);
    assert_eq!(
        code(&env.run(&["forget", "--keep-last", "1", "--group-by", "color"])),
        2
    );
    assert_eq!(code(&env.run(&["forget"])), 2, "no rule is refused");
}
