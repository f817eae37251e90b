//! What a restic or Borg user looks for in the first hour: find, stats,
//! tag, cat, version, completions and man pages.

use std::fs;

use super::common::*;

fn two_snapshots(env: &Env) -> std::path::PathBuf {
    let src = env.path("src");
    fs::create_dir_all(src.join("db")).unwrap();
    fs::write(src.join("db/app.sql"), random_bytes(200_000, 1)).unwrap();
    fs::write(src.join("notes.txt"), b"notes").unwrap();
    env.ok(&["backup", src.to_str().unwrap(), "--tag", "nightly"]);
    fs::write(src.join("db/extra.sql"), random_bytes(100_000, 2)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    src
}

#[test]
fn find_names_every_snapshot_holding_a_match() {
    let env = Env::new();
    let src = two_snapshots(&env);
    let ids = env.snapshot_ids();
    let found = env.json(&["find", "*.sql"], 0);
    let hits: Vec<(String, String)> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["snapshot"].as_str().unwrap()[..8].to_string(),
                f["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let app = src.join("db/app.sql").display().to_string();
    let extra = src.join("db/extra.sql").display().to_string();
    assert_eq!(hits.len(), 3, "{found}");
    assert!(hits.contains(&(ids[0][..8].to_string(), app.clone())));
    assert!(hits.contains(&(ids[1][..8].to_string(), app)));
    assert!(hits.contains(&(ids[1][..8].to_string(), extra.clone())));
    // Narrowed by tag: only the first snapshot.
    let tagged = env.json(&["find", "*.sql", "--tag", "nightly"], 0);
    assert_eq!(tagged.as_array().unwrap().len(), 1, "{tagged}");
    // `*` stays within a component: nothing directly under src is a .sql.
    let anchored = format!("{}/*.sql", src.display());
    assert_eq!(
        env.json(&["find", &anchored], 0).as_array().unwrap().len(),
        0
    );
    assert_eq!(
        code(&env.run(&["find", "/"])),
        2,
        "a pattern matching nothing is refused"
    );
}

#[test]
fn stats_counts_shared_data_once() {
    let env = Env::new();
    two_snapshots(&env);
    let ids = env.snapshot_ids();
    let one = env.json(&["stats", &ids[0]], 0)["snapshots"].clone();
    let both = env.json(&["stats"], 0)["snapshots"].clone();
    assert_eq!(one["restore_bytes"], 200_005, "{one}");
    assert_eq!(both["restore_bytes"], 200_005 + 300_005, "{both}");
    assert_eq!(both["files"], 5);
    // The shared file's data counts once: 300 000 distinct content bytes.
    assert_eq!(both["data_bytes"], 300_005, "{both}");
    let ratio = both["dedup_ratio"].as_f64().unwrap();
    assert!((ratio - 500_010.0 / 300_005.0).abs() < 1e-9, "{both}");
}

#[test]
fn tag_adds_removes_and_sets_and_keeps_the_data() {
    let env = Env::new();
    let src = two_snapshots(&env);
    let before = env.snapshot_ids();
    let r = env.json(&["tag", "--add", "keep,audit", "--tag", "nightly"], 0);
    assert_eq!(
        r.as_array().unwrap().len(),
        1,
        "only the tagged snapshot: {r}"
    );
    let snaps = env.json(&["snapshots"], 0);
    let tags = |i: usize| snaps[i]["snapshot"]["tags"].clone();
    assert_eq!(
        tags(0),
        serde_json::json!(["nightly", "keep", "audit"]),
        "{snaps}"
    );
    assert_eq!(snaps[0]["snapshot"]["original"], before[0].as_str());
    assert_eq!(env.snapshot_ids().len(), 2, "the old one is gone");
    env.ok(&["tag", "latest", "--set", "only"]);
    env.ok(&["tag", "--remove", "audit"]);
    let after = env.json(&["snapshots"], 0);
    assert_eq!(
        after[0]["snapshot"]["tags"],
        serde_json::json!(["nightly", "keep"]),
        "{after}"
    );
    assert_eq!(after[1]["snapshot"]["tags"], serde_json::json!(["only"]));
    assert_eq!(
        code(&env.run(&["tag", "latest"])),
        2,
        "nothing to do is usage"
    );
    // The rewritten snapshots still restore, and check is clean.
    let out = env.path("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_same(&manifest(&src), &manifest(&under(&out, &src)));
    env.json(&["check", "--read-data"], 0);
}

#[test]
fn cat_prints_objects_decrypted() {
    let env = Env::new();
    let src = two_snapshots(&env);
    let config = env.json(&["cat", "config"], 0);
    assert_eq!(config["version"], 1, "{config}");
    let snap = env.json(&["cat", "snapshot", "latest"], 0);
    let tree = snap["snapshot"]["tree"].as_str().unwrap().to_string();
    let t = env.json(&["cat", "tree", &tree[..10]], 0);
    assert!(t["nodes"].is_array(), "{t}");
    let index = env.objects("index")[0].clone();
    let name = index.file_name().unwrap().to_str().unwrap();
    let i = env.json(&["cat", "index", &name[..12]], 0);
    assert!(!i["packs"].as_array().unwrap().is_empty(), "{i}");
    let pack_id = i["packs"][0]["id"].as_str().unwrap().to_string();
    let header = env.json(&["cat", "pack", &pack_id], 0);
    assert!(!header.as_array().unwrap().is_empty(), "{header}");
    // A data blob comes out as the file's bytes.
    let ls = env.json(
        &["ls", "latest", src.join("notes.txt").to_str().unwrap()],
        0,
    );
    assert_eq!(ls[0]["size"], 5, "{ls}");
    let f = lifeboat_find_blob(&env, &src.join("notes.txt"));
    assert_eq!(env.ok(&["cat", "blob", &f]).stdout, b"notes");
    assert_eq!(code(&env.run(&["cat", "snapshot"])), 2, "an id is needed");
    assert_eq!(code(&env.run(&["cat", "index", "zz"])), 2, "no match");
}

/// The first content blob of a file, by walking `cat tree`.
fn lifeboat_find_blob(env: &Env, path: &std::path::Path) -> String {
    let snap = env.json(&["cat", "snapshot", "latest"], 0);
    let mut tree = snap["snapshot"]["tree"].as_str().unwrap().to_string();
    let parts: Vec<_> = path
        .iter()
        .skip(1)
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    for (i, part) in parts.iter().enumerate() {
        let t = env.json(&["cat", "tree", &tree], 0);
        let node = t["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"].as_str() == Some(part.as_str()))
            .unwrap_or_else(|| panic!("{part} in {t}"))
            .clone();
        if i + 1 == parts.len() {
            return node["content"][0].as_str().unwrap().to_string();
        }
        tree = node["subtree"].as_str().unwrap().to_string();
    }
    unreachable!()
}

#[test]
fn version_completions_and_man_pages_come_from_the_definitions() {
    let env = Env::empty();
    let v = env.json(&["version"], 0);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let text = String::from_utf8(env.ok(&["version"]).stdout).unwrap();
    assert!(
        text.starts_with(&format!("lifeboat {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    for shell in ["bash", "zsh", "fish"] {
        let out = env.ok(&["completions", shell]);
        let script = String::from_utf8(out.stdout).unwrap();
        for cmd in ["backup", "restore", "repair", "find"] {
            assert!(script.contains(cmd), "{shell} completes {cmd}");
        }
    }
    let dir = env.path("man");
    env.ok(&["man", dir.to_str().unwrap()]);
    let page = fs::read_to_string(dir.join("lifeboat-repair-index.1")).unwrap();
    assert!(
        page.contains(".TH") && page.contains("read\\-all\\-packs"),
        "{page}"
    );
    assert!(dir.join("lifeboat.1").is_file());
    assert!(dir.join("lifeboat-backup.1").is_file());
}
