//! `lifeboat plan check` as a user runs it: the example plans pass, a plan
//! that cannot meet an objective exits 1 naming it, a malformed plan exits
//! 2 with every problem at FILE:LINE:COLUMN, and --json carries the same.

use super::common::{code, stderr, text, Env};

fn check(env: &Env, plan: &std::path::Path, json: bool) -> std::process::Output {
    let mut c = env.cmd();
    if json {
        c.arg("--json");
    }
    c.args(["plan", "check", "-c"]).arg(plan).output().unwrap()
}

#[test]
fn plan_check_passes_the_examples_names_missed_objectives_and_every_mistake() {
    let env = Env::empty();
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/plans");
    for e in std::fs::read_dir(examples).unwrap() {
        let path = e.unwrap().path();
        let out = check(&env, &path, false);
        assert_eq!(code(&out), 0, "{}: {}", path.display(), text(&out));
        assert!(
            text(&out).contains("every RPO objective can be met"),
            "{}",
            text(&out)
        );
    }

    let plan = env.path("lifeboat.toml");
    std::fs::write(
        &plan,
        r#"[regions.primary]
repository = "/srv/lifeboat"
password_file = "/etc/lifeboat/pass"

[components.orders-db]
tier = "critical"
source = "postgres://backup@db1/orders"
schedule = "0 * * * *"
"#,
    )
    .unwrap();
    let out = check(&env, &plan, false);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stderr(&out).contains(
            "orders-db: RPO 1m cannot be met: its schedule \"0 * * * *\" leaves up to 1h"
        ),
        "{}",
        text(&out)
    );
    let doc: serde_json::Value = serde_json::from_slice(&check(&env, &plan, true).stdout).unwrap();
    assert_eq!(doc["objectives_met"], false, "{doc}");
    assert_eq!(
        doc["components"][0]["achievable_rpo_seconds"], 3600,
        "{doc}"
    );

    // The default file is ./lifeboat.toml; LIFEBOAT_CONFIG names another.
    let out = env
        .cmd()
        .current_dir(env.dir.path())
        .args(["plan", "check"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", text(&out));

    std::fs::write(
        &plan,
        "[regions.primary]\nrepository = \"/srv\"\npassword_file = \"/p\"\n\n[components.db]\ntier = \"gold\"\nsource = \"files:///srv\"\nshedule = \"@daily\"\n",
    )
    .unwrap();
    let out = env
        .cmd()
        .env("LIFEBOAT_CONFIG", &plan)
        .args(["plan", "check"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", text(&out));
    let err = stderr(&out);
    let shown = plan.display().to_string();
    assert!(
        err.contains(&format!("{shown}:6:8: error: tier \"gold\" is not one of")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{shown}:8:1: error: unknown key \"shedule\"")),
        "{err}"
    );
    assert!(err.contains("did you mean \"schedule\""), "{err}");

    let out = env.run(&["plan", "check", "-c", "/nonexistent/lifeboat.toml"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains("cannot read the plan /nonexistent/lifeboat.toml"),
        "{}",
        text(&out)
    );
}

#[test]
fn run_backs_up_what_is_due_records_it_in_the_ledger_and_status_shows_it() {
    let env = Env::new();
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a.txt"), b"hello").unwrap();
    let db = env.path("app.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2), (3);")
        .unwrap();
    drop(c);
    let pass = env.path("pass");
    std::fs::write(&pass, format!("{}\n", super::common::PASSWORD)).unwrap();
    let plan = env.path("lifeboat.toml");
    std::fs::write(
        &plan,
        format!(
            r#"[regions.primary]
repository = "{repo}"
password_file = "{pass}"

[regions.elsewhere]
repository = "{missing}"
password_env = "ELSEWHERE_PASSWORD"

[components.app-db]
tier = "medium"
source = "sqlite://{db}"
schedule = "@hourly"

[components.files]
tier = "low"
source = "files://{data}"
schedule = "@daily"

[components.lost]
tier = "low"
source = "files://{data}"
region = "elsewhere"
schedule = "@daily"
"#,
            repo = env.repo.display(),
            pass = pass.display(),
            missing = env.path("no-repo-here").display(),
            db = db.display(),
            data = data.display(),
        ),
    )
    .unwrap();
    let lifeboat = |args: &[&str]| {
        env.cmd()
            .env_remove("LIFEBOAT_REPOSITORY")
            .env("LIFEBOAT_CONFIG", &plan)
            .args(args)
            .output()
            .unwrap()
    };
    // Everything is due the first time; the region without its password fails alone.
    let out = lifeboat(&["--json", "run"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "{doc}");
    assert_eq!(
        (runs[0]["component"].as_str(), runs[0]["ok"].as_bool()),
        (Some("app-db"), Some(true))
    );
    assert_eq!(runs[1]["ok"], true, "{doc}");
    assert!(
        runs[2]["error"]
            .as_str()
            .unwrap()
            .contains("ELSEWHERE_PASSWORD"),
        "{doc}"
    );
    // The snapshots carry their component.
    let snaps = env.json(&["snapshots", "--tag", "component=app-db"], 0);
    assert_eq!(snaps.as_array().unwrap().len(), 1, "{snaps}");

    // Run again: only the failed one is due; the others ran since their slot.
    let out = lifeboat(&["--json", "run"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["component"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["lost"], "{doc}");
    // Named, it runs whether due or not; its password given, the region's
    // missing repository is the error.
    let out = env
        .cmd()
        .env("LIFEBOAT_CONFIG", &plan)
        .env("ELSEWHERE_PASSWORD", "x")
        .args(["run", "files", "lost"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stderr(&out).contains("no lifeboat repository"),
        "{}",
        text(&out)
    );
    let out = lifeboat(&["run", "nosuch"]);
    assert_eq!(code(&out), 2, "{}", text(&out));

    // Status: from the ledger, which outlives each command.
    let out = lifeboat(&["--json", "status"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = doc["components"].as_array().unwrap();
    assert_eq!(c[0]["within_rpo"], true, "{doc}");
    assert!(
        c[0]["data_loss_window_seconds"].as_f64().unwrap() < 600.0,
        "{doc}"
    );
    assert_eq!(c[1]["last_run"]["ok"], true, "{doc}");
    assert_eq!(c[2]["within_rpo"], false, "{doc}");
    assert_eq!(c[2]["last_success"], serde_json::Value::Null, "{doc}");
    let out = lifeboat(&["status"]);
    assert!(
        text(&out).contains("1 component outside its RPO"),
        "{}",
        text(&out)
    );
    assert!(
        env.path("lifeboat-ledger.db").exists(),
        "the ledger sits beside the plan"
    );
}
