//! `copy`: snapshots into a second region — whole, incremental, verified,
//! recorded in the ledger and in status; resumable after SIGKILL; refused
//! cleanly on a wrong password or damaged data; re-identified into a
//! repository that names blobs differently.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::common::*;

/// A plan of `regions` (each with its own password file) and one files
/// component `files` of `src` backed up into the first region and
/// replicated to `replicate_to`.
fn plan(env: &Env, src: &Path, regions: &[&str], replicate_to: &[&str]) -> PathBuf {
    let mut t = String::new();
    for r in regions {
        let pass = env.path(&format!("{r}.pass"));
        fs::write(&pass, format!("password of {r}\n")).unwrap();
        t += &format!(
            "[regions.{r}]\nrepository = \"{}\"\npassword_file = \"{}\"\n\n",
            env.path(r).display(),
            pass.display()
        );
    }
    let to: Vec<String> = replicate_to.iter().map(|r| format!("\"{r}\"")).collect();
    t += &format!(
        "[components.files]\ntier = \"low\"\nsource = \"files://{}\"\nregion = \"{}\"\nschedule = \"@daily\"\nreplicate_to = [{}]\n",
        src.display(),
        regions[0],
        to.join(", ")
    );
    let p = env.path("lifeboat.toml");
    fs::write(&p, t).unwrap();
    p
}

/// `lifeboat --json ARGS` with the plan; asserts the exit code.
fn in_plan(env: &Env, plan: &Path, args: &[&str], want: i32) -> Value {
    let out = env
        .cmd()
        .env_remove("LIFEBOAT_REPOSITORY")
        .env_remove("LIFEBOAT_PASSWORD")
        .env("LIFEBOAT_CONFIG", plan)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert_eq!(code(&out), want, "lifeboat {args:?}:\n{}", text(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{}", text(&out)))
}

/// `lifeboat --json -r REGION ARGS` with that region's password.
fn in_region(env: &Env, region: &str, args: &[&str], want: i32) -> Value {
    let out = env
        .cmd()
        .env("LIFEBOAT_REPOSITORY", env.path(region))
        .env("LIFEBOAT_PASSWORD", format!("password of {region}"))
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        code(&out),
        want,
        "lifeboat -r {region} {args:?}:\n{}",
        text(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Source data: a dozen 1 MiB files and an 8 MiB one (several 1 MiB packs).
fn data(env: &Env) -> PathBuf {
    let src = env.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..12u64 {
        fs::write(src.join(format!("sub/f{i}")), random_bytes(1 << 20, i)).unwrap();
    }
    fs::write(src.join("big"), random_bytes(8 << 20, 77)).unwrap();
    src
}

/// The newest snapshot of `region` restores to exactly `src`, and the
/// region's check reads every pack back.
fn holds(env: &Env, region: &str, src: &Path) {
    let c = in_region(env, region, &["check", "--read-data"], 0);
    assert!(c["errors"].as_array().unwrap().is_empty(), "{c}");
    let t = env.path(&format!("restored-{region}"));
    let _ = fs::remove_dir_all(&t);
    in_region(
        env,
        region,
        &["restore", "latest", "--target", t.to_str().unwrap()],
        0,
    );
    assert_same(&manifest(src), &manifest(&under(&t, src)));
}

fn pack_bytes(dir: &Path) -> u64 {
    fn walk(d: &Path, total: &mut u64) {
        for e in fs::read_dir(d).into_iter().flatten() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() {
                walk(&e.path(), total);
            } else if !name.starts_with('.') {
                *total += e.metadata().unwrap().len();
            }
        }
    }
    let mut total = 0;
    walk(&dir.join("data"), &mut total);
    total
}

#[test]
fn a_backup_run_copies_to_its_region_whole_then_only_what_changed() {
    let env = Env::empty();
    let src = data(&env);
    let plan = plan(&env, &src, &["primary", "dr"], &["dr"]);
    let init = in_plan(&env, &plan, &["init", "--plan", "--pack-size", "1"], 0);
    let regions = init["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 2, "{init}");
    assert!(regions.iter().all(|r| r["created"] == true), "{init}");
    assert_eq!(regions[1]["region"], "dr");
    assert_eq!(regions[1]["same_ids_as_first"], true, "{init}");

    // `run` backs up, then copies to every region in replicate_to.
    let run = in_plan(&env, &plan, &["run", "files"], 0);
    let copy = &run["runs"][0]["copies"][0];
    assert_eq!(copy["ok"], true, "{run}");
    assert_eq!(copy["to"], "dr");
    assert_eq!(copy["snapshots_copied"], 1, "{run}");
    assert_eq!(copy["reidentified"], false, "blob for blob: {run}");
    assert!(copy["bytes_copied"].as_u64().unwrap() > 20 << 20, "{run}");
    holds(&env, "dr", &src);
    let primary = in_region(&env, "primary", &["snapshots"], 0);
    let dr = in_region(&env, "dr", &["snapshots"], 0);
    assert_eq!(dr.as_array().unwrap().len(), 1);
    for field in ["time", "paths", "hostname", "tags"] {
        assert_eq!(primary[0][field], dr[0][field], "{field}");
    }

    // Again: nothing to send.
    let again = in_plan(&env, &plan, &["copy", "--to", "dr"], 0);
    let c = &again["copies"][0];
    assert_eq!(
        (
            c["snapshots_copied"].as_u64(),
            c["snapshots_present"].as_u64()
        ),
        (Some(0), Some(1)),
        "{again}"
    );
    assert_eq!(c["bytes_copied"], 0, "{again}");

    // A small change: only its chunk and the trees above it are read and
    // sent (the unchanged directories are not even walked).
    fs::write(src.join("sub/new"), random_bytes(100_000, 5)).unwrap();
    let run = in_plan(&env, &plan, &["run", "files"], 0);
    let c = &run["runs"][0]["copies"][0];
    assert_eq!(c["snapshots_copied"], 1, "{run}");
    assert!(c["bytes_copied"].as_u64().unwrap() < 200_000, "{run}");
    assert!(c["blobs_copied"].as_u64().unwrap() <= 8, "{run}");
    holds(&env, "dr", &src);

    // The ledger knows: dr holds the newest backup.
    let status = in_plan(&env, &plan, &["status"], 0);
    let r = &status["components"][0]["replication"][0];
    assert_eq!(r["region"], "dr", "{status}");
    assert_eq!(r["lag_seconds"], 0.0, "{status}");
    assert_eq!(r["last_copy"]["ok"], true, "{status}");
    assert!(
        r["data_loss_window_seconds"].as_f64().unwrap() < 600.0,
        "{status}"
    );
}

#[test]
fn a_copy_killed_with_sigkill_goes_on_sending_only_what_is_missing() {
    let env = Env::empty();
    let src = data(&env);
    // No replicate_to: `run` only backs up; the copies below are by hand.
    let plan = plan(&env, &src, &["primary", "dr", "reference"], &[]);
    in_plan(&env, &plan, &["init", "--plan", "--pack-size", "1"], 0);
    in_plan(&env, &plan, &["run", "files"], 0);

    let killed = env
        .cmd()
        .env_remove("LIFEBOAT_REPOSITORY")
        .env("LIFEBOAT_CONFIG", &plan)
        .env("LIFEBOAT_CRASH_AT", "after-pack-upload")
        .args(["copy", "--to", "dr", "files"])
        .output()
        .unwrap();
    assert_eq!(killed.status.signal(), Some(9), "{}", text(&killed));
    let sent_before_kill = pack_bytes(&env.path("dr"));
    assert!(sent_before_kill > 0, "a pack was stored before the kill");
    assert_eq!(
        in_region(&env, "dr", &["snapshots"], 0),
        serde_json::json!([]),
        "no snapshot without its data"
    );
    in_region(&env, "dr", &["check"], 0);

    let resumed = in_plan(&env, &plan, &["copy", "--to", "dr", "files"], 0);
    let full = in_plan(&env, &plan, &["copy", "--to", "reference", "files"], 0);
    let (resumed, full) = (&resumed["copies"][0], &full["copies"][0]);
    let (r, f) = (
        resumed["bytes_copied"].as_u64().unwrap(),
        full["bytes_copied"].as_u64().unwrap(),
    );
    assert!(
        r < f,
        "the resumed copy sends less than a whole one: {resumed} vs {full}"
    );
    // What the killed copy stored is not sent again (pack headers aside).
    assert!(
        r + sent_before_kill <= f + (64 << 10),
        "{r} + {sent_before_kill} vs {f}"
    );
    holds(&env, "dr", &src);
    assert_eq!(
        pack_bytes(&env.path("dr")) / (1 << 20),
        pack_bytes(&env.path("reference")) / (1 << 20)
    );
}

#[test]
fn a_wrong_password_or_damaged_data_fails_the_copy_and_writes_no_snapshot() {
    let env = Env::empty();
    let src = data(&env);
    let plan = plan(&env, &src, &["primary", "dr"], &["dr"]);
    in_plan(&env, &plan, &["init", "--plan", "--pack-size", "1"], 0);
    let good = fs::read(env.path("dr.pass")).unwrap();

    // The backup succeeds; its copy cannot open dr: run exits 1, saying so.
    fs::write(env.path("dr.pass"), "not the password\n").unwrap();
    let run = in_plan(&env, &plan, &["run", "files"], 1);
    let r = &run["runs"][0];
    assert!(
        r["snapshot_id"].is_string(),
        "the backup itself is kept: {run}"
    );
    let e = r["error"].as_str().unwrap();
    assert!(
        e.contains("copy to dr") && e.contains("wrong password"),
        "{e}"
    );
    assert!(!e.contains("not the password"), "no secret in errors: {e}");
    let status = in_plan(&env, &plan, &["status"], 0);
    let rep = &status["components"][0]["replication"][0];
    assert!(
        rep["last_copy"].is_null() && rep["lag_seconds"].is_null(),
        "{status}"
    );

    // A damaged pack in primary: the copy names it and stores no snapshot.
    fs::write(env.path("dr.pass"), &good).unwrap();
    let mut packs = vec![];
    for d in fs::read_dir(env.path("primary/data")).unwrap() {
        for p in fs::read_dir(d.unwrap().path()).unwrap() {
            packs.push(p.unwrap().path());
        }
    }
    packs.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).unwrap().len()));
    let victim = &packs[0];
    let mut bytes = fs::read(victim).unwrap();
    bytes[1000] ^= 0x55;
    fs::set_permissions(victim, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    fs::write(victim, &bytes).unwrap();
    let copy = in_plan(&env, &plan, &["copy", "--to", "dr"], 1);
    let e = copy["copies"][0]["error"].as_str().unwrap().to_string();
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    assert!(e.contains(&name) && e.contains("damaged"), "{e}");
    assert_eq!(
        in_region(&env, "dr", &["snapshots"], 0),
        serde_json::json!([])
    );
    in_region(&env, "dr", &["check"], 0);
}

#[test]
fn a_repository_that_names_blobs_differently_gets_re_identified_copies() {
    let env = Env::new();
    let src = data(&env);
    env.backup(&[&src]);
    let other = env.path("other");
    let out = env
        .cmd()
        .env("LIFEBOAT_REPOSITORY", &other)
        .env("LIFEBOAT_PASSWORD", "another password")
        .args(["init"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let copy = |want: i32| {
        let out = env
            .cmd()
            .env("LIFEBOAT_TO_PASSWORD", "another password")
            .args(["--json", "copy", "--to-repo", other.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(code(&out), want, "{}", text(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let first = copy(0);
    assert_eq!(first["reidentified"], true, "{first}");
    assert_eq!(first["snapshots_copied"], 1, "{first}");
    fs::write(src.join("sub/f3"), random_bytes(1 << 20, 1000)).unwrap();
    env.backup(&[&src]);
    let second = copy(0);
    assert_eq!(second["snapshots_copied"], 1, "{second}");
    assert_eq!(second["snapshots_present"], 1, "{second}");
    // Data an earlier copy sent is found by pairing its trees: only the
    // changed file's chunk (and trees) is read and sent again.
    assert!(
        second["bytes_copied"].as_u64().unwrap() < 2 << 20,
        "{second}"
    );
    let t = env.path("restored-other");
    let out = env
        .cmd()
        .env("LIFEBOAT_REPOSITORY", &other)
        .env("LIFEBOAT_PASSWORD", "another password")
        .args(["restore", "latest", "--target", t.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_same(&manifest(&src), &manifest(&under(&t, &src)));
    // Into itself is refused.
    let out = env
        .cmd()
        .env("LIFEBOAT_TO_PASSWORD", PASSWORD)
        .args(["copy", "--to-repo", env.repo.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains("the same repository"),
        "{}",
        text(&out)
    );
}
