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

/// The binary on the plan `plan` (as LIFEBOAT_CONFIG), the repository
/// only from the plan.
fn with_plan(env: &Env, plan: &std::path::Path, args: &[&str]) -> std::process::Output {
    env.cmd()
        .env_remove("LIFEBOAT_REPOSITORY")
        .env("LIFEBOAT_CONFIG", plan)
        .args(args)
        .output()
        .unwrap()
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
            text(&out).contains("every objective can be met"),
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
    let lifeboat = |args: &[&str]| with_plan(&env, &plan, args);
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

#[test]
fn verify_restores_for_real_and_catches_each_kind_of_bad_backup() {
    let env = Env::new();
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    for i in 0..20 {
        std::fs::write(
            data.join(format!("f{i}")),
            super::common::random_bytes(20_000, i),
        )
        .unwrap();
    }
    let db = env.path("app.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2), (3);")
        .unwrap();
    drop(c);
    let pass = env.path("pass");
    std::fs::write(&pass, super::common::PASSWORD).unwrap();
    let scratch = env.path("scratch");
    let plan = env.path("lifeboat.toml");
    let write_plan = |check: &str| {
        std::fs::write(
            &plan,
            format!(
                r#"[regions.primary]
repository = "{repo}"
password_file = "{pass}"

[components.app-db]
tier = "medium"
source = "sqlite://{db}"
schedule = "@hourly"
verify = {{ target = "{scratch}", checks = [{{ kind = "counts" }}, {{ kind = "integrity" }}, {{ kind = "sql", query = "SELECT count(*), max(x) FROM t", expect = "3\t3" }}] }}

[components.files]
tier = "low"
source = "files://{data}"
schedule = "@daily"
verify = {{ target = "{scratch}", checks = [{{ kind = "command", run = "{check}" }}] }}
"#,
                repo = env.repo.display(),
                pass = pass.display(),
                db = db.display(),
                data = data.display(),
                scratch = scratch.display(),
            ),
        )
        .unwrap();
    };
    write_plan(&format!("test -f $LIFEBOAT_RESTORED{}/f7", data.display()));
    let lifeboat = |args: &[&str]| with_plan(&env, &plan, args);
    // Nothing backed up yet: failed, and said why.
    let out = lifeboat(&["verify"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stderr(&out).contains("no backup of app-db"),
        "{}",
        text(&out)
    );

    assert_eq!(code(&lifeboat(&["run"])), 0);
    let report = env.path("report.json");
    let out = lifeboat(&["verify", "--report", report.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("Total components: 2  Passed: 2  Warnings: 0  Failed: 0"),
        "{}",
        text(&out)
    );
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(
        doc["components"][0]["restore_seconds"].as_f64().is_some(),
        "{doc}"
    );
    assert!(
        doc["components"][0]
            .to_string()
            .contains("3 rows, as recorded"),
        "{doc}"
    );
    assert!(
        doc["components"][0]
            .to_string()
            .contains("structure and a 5% sample of packs read back, no errors"),
        "the repository is checked: {doc}"
    );
    assert!(
        doc["components"][0]
            .to_string()
            .contains(r#"returned \"3\\t3\""#),
        "the SQL check ran on the restored database: {doc}"
    );
    // An SQL check whose answer differs fails the component.
    let base = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(
        &plan,
        base.replace("expect = \"3\\t3\"", "expect = \"4\\t3\""),
    )
    .unwrap();
    let out = lifeboat(&["verify", "app-db"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stderr(&out).contains("failed: app-db: sql:")
            && stderr(&out).contains("expected \"4\\t3\""),
        "{}",
        text(&out)
    );
    std::fs::write(&plan, base).unwrap();
    // The scratch copies are gone; plan check now has an RTO estimate.
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
    let out = lifeboat(&["--json", "plan", "check"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["components"][1]["rto_estimate_seconds"]
            .as_f64()
            .is_some(),
        "{doc}"
    );

    // A check that fails on the restored copy fails the component.
    write_plan("test -f $LIFEBOAT_RESTORED/no/such/file");
    let out = lifeboat(&["verify", "files"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stderr(&out).contains("failed: files: command:"),
        "{}",
        text(&out)
    );
    write_plan("true");

    // Shrunk: most files gone, then backed up: a warning, not a pass.
    for i in 0..18 {
        std::fs::remove_file(data.join(format!("f{i}"))).unwrap();
    }
    assert_eq!(code(&lifeboat(&["run", "files"])), 0);
    let out = lifeboat(&["--json", "verify", "files"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["warnings"], 1, "{doc}");
    assert!(doc.to_string().contains("data may be missing"), "{doc}");

    // A damaged pack: the restore test fails.
    for p in env.objects("data") {
        let mut b = std::fs::read(&p).unwrap();
        let at = b.len() / 2;
        b[at] ^= 0xff;
        std::fs::write(&p, b).unwrap();
    }
    let out = lifeboat(&["verify"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(stderr(&out).contains("restore test"), "{}", text(&out));
    assert!(text(&out).contains("Failed: 2"), "{}", text(&out));
    assert!(
        stderr(&out).contains("failed: files: repository: region primary:"),
        "{}",
        text(&out)
    );

    // Too old for its RPO: an RPO of one second is missed within seconds.
    let text_now = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(
        &plan,
        text_now.replace("tier = \"low\"", "tier = \"low\"\nrpo = \"1s\""),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = lifeboat(&["verify", "files"]);
        if stderr(&out).contains("old; the RPO is 1s") {
            assert_eq!(code(&out), 1);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", text(&out));
    }

    // The report: posture and history from the ledger, in every format.
    let out = lifeboat(&["report", "--format", "json", "--last", "3"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files = &doc["components"][1];
    assert_eq!(files["component"], "files");
    let results: Vec<&str> = files["verifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["result"].as_str().unwrap())
        .collect();
    assert_eq!(
        results, ["failed"; 3],
        "the newest three, newest first: {doc}"
    );
    let out = lifeboat(&["report", "--format", "json", "--last", "100"]);
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results: Vec<&str> = all["components"][1]["verifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["result"].as_str().unwrap())
        .collect();
    let first_warning = results.iter().position(|r| *r == "warning").unwrap();
    assert!(
        results[first_warning..].contains(&"passed"),
        "the warning came after the pass: {results:?}"
    );
    assert_eq!(files["backups"].as_array().unwrap().len(), 2, "{doc}");
    assert_eq!(doc["failed_verifications"], 2, "{doc}");
    let out = lifeboat(&["report"]);
    let md = String::from_utf8_lossy(&out.stdout).to_string();
    for line in [
        "# lifeboat DR report",
        "## files: verifications",
        "| app-db | medium | 4h |",
        "| failed |",
    ] {
        assert!(md.contains(line), "{line} in:\n{md}");
    }
    let page = env.path("report.html");
    let out = lifeboat(&["report", "--format", "html", "-o", page.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
    assert_eq!(html.matches("<tr>").count(), html.matches("</tr>").count());
    assert!(html.contains("<td class=\"bad\">failed"), "{html}");
}

#[test]
fn forget_plan_applies_each_components_retention_in_its_region() {
    let env = Env::new();
    let (a, b) = (env.path("a"), env.path("b"));
    for d in [&a, &b] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("x"), b"x").unwrap();
    }
    let pass = env.path("pass");
    std::fs::write(&pass, super::common::PASSWORD).unwrap();
    let plan = env.path("lifeboat.toml");
    std::fs::write(
        &plan,
        format!(
            "[regions.primary]\nrepository = \"{}\"\npassword_file = \"{}\"\n\n[components.a]\ntier = \"low\"\nsource = \"files://{}\"\nretention = {{ last = 2 }}\n\n[components.b]\ntier = \"low\"\nsource = \"files://{}\"\n",
            env.repo.display(),
            pass.display(),
            a.display(),
            b.display()
        ),
    )
    .unwrap();
    let lifeboat = |args: &[&str]| with_plan(&env, &plan, args);
    for i in 0..4 {
        std::fs::write(a.join("x"), format!("version {i}")).unwrap();
        assert_eq!(code(&lifeboat(&["run", "--all"])), 0);
    }
    let count = |tag: &str| {
        env.json(&["snapshots", "--tag", tag], 0)
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!((count("component=a"), count("component=b")), (4, 4));
    let out = lifeboat(&["forget", "--plan", "--dry-run"]);
    assert!(
        text(&out).contains("a: would keep 2, remove 2"),
        "{}",
        text(&out)
    );
    assert_eq!((count("component=a"), count("component=b")), (4, 4));
    let out = lifeboat(&["forget", "--plan", "--prune"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("b: no retention in the plan; every snapshot kept"),
        "{}",
        text(&out)
    );
    assert_eq!((count("component=a"), count("component=b")), (2, 4));
    env.ok(&["check"]);
}
