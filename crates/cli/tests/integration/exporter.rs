//! Any exporter command as a source (`--source-command`, `command:`): its
//! stdout is the stream, its stderr is kept, a failing or killed command
//! writes no snapshot, and the recorded restore command gets the stream
//! back on its stdin.

use super::common::{code, stderr, text, Env};

fn snapshot_count(env: &Env) -> usize {
    env.json(&["snapshots"], 0).as_array().unwrap().len()
}

/// A round trip through a real exporter (a shell pipeline writing 3 MB of
/// numbered lines and a note on stderr) and a restore command writing a
/// file: the file is byte-identical, the snapshot records both commands
/// and the note, and `command:CMD` is the same source.
#[test]
fn an_exporter_command_round_trips_through_its_restore_command() {
    let env = Env::new();
    let out_file = env.path("restored.txt");
    let export = "seq 1 400000; echo exported 400000 lines >&2";
    let restore = format!("cat > {}", out_file.display());
    let doc = env.json(
        &[
            "backup",
            "--source-command",
            export,
            "--stdin-name",
            "numbers.txt",
            "--restore-command",
            &restore,
        ],
        0,
    );
    let id = doc["snapshot_id"].as_str().unwrap().to_string();
    let snaps = env.json(&["snapshots"], 0);
    let source = &snaps[0]["snapshot"]["source"];
    assert_eq!(source["kind"], "command", "{snaps}");
    assert_eq!(source["command"], export);
    assert_eq!(source["restore_command"], restore.as_str());
    assert_eq!(source["stream"], "numbers.txt");
    assert_eq!(source["stderr"], "exported 400000 lines");

    // The recorded restore command runs when no target is given.
    let out = env.run(&["--json", "restore", &id]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let want: String = (1..=400000).map(|n| format!("{n}\n")).collect();
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), want);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["bytes"], want.len() as u64, "{doc}");

    // Or into a directory, as the file the stream was named.
    let dir = env.path("dir");
    env.ok(&["restore", &id, "--target", dir.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(dir.join("numbers.txt")).unwrap(),
        want
    );

    // A restore command given at restore wins; its failure is an error
    // naming it, with its own words.
    let out = env.run(&["restore", &id, "--restore-command", "wc -l >&2; exit 4"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stderr(&out).contains("400000"),
        "its output: {}",
        text(&out)
    );
    assert!(stderr(&out).contains("wc failed"), "{}", text(&out));
    let out = env.run(&["restore", &id, "--restore-command", "head -c 10 >/dev/null"]);
    assert_eq!(code(&out), 1, "stopped reading early: {}", text(&out));

    // command:CMD is the same source; the stream defaults to `stdout`.
    let doc = env.json(&["backup", "--source", "command:printf hello"], 0);
    let id = doc["snapshot_id"].as_str().unwrap().to_string();
    let out = env.run(&["dump", &id, "/stdout"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(out.stdout, b"hello");
    // No restore command recorded: restore says what to give.
    let out = env.run(&["restore", &id]);
    assert_eq!(code(&out), 2, "{}", text(&out));
}

/// A command that fails, is killed, prints nothing, or cannot run writes
/// no snapshot, and the error names it with its last words.
#[test]
fn a_failing_killed_or_silent_exporter_writes_no_snapshot() {
    let env = Env::new();
    let before = snapshot_count(&env);
    for (cmd, says) in [
        (
            "seq 1 100000; echo cannot reach the API >&2; exit 3",
            "cannot reach the API",
        ),
        ("seq 1 100000; kill -9 $$", "signal"),
        ("true", "empty"),
        ("/nonexistent/exporter --all", "exporter"),
    ] {
        let out = env.run(&["backup", "--source-command", cmd]);
        assert_eq!(code(&out), 1, "{cmd}: {}", text(&out));
        assert!(stderr(&out).contains(says), "{cmd}: {}", text(&out));
        assert_eq!(snapshot_count(&env), before, "{cmd}: no snapshot");
    }
    // An empty stream is saved when asked for.
    env.ok(&["backup", "--source-command", "true", "--allow-empty"]);
    assert_eq!(snapshot_count(&env), before + 1);
    // --restore-command without a command source is a usage error.
    let out = env.run(&["backup", "--stdin", "--restore-command", "cat"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
}
