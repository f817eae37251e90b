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
