//! `lifeboat demo`: the main job on embedded defaults, end to end, on
//! generated data. A thin script over library calls.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use lifeboat_repo::archiver::{self, BackupOptions, BackupSource};
use lifeboat_repo::check::{self, CheckOptions, Subset};
use lifeboat_repo::restorer::{self, RestoreOptions};
use lifeboat_repo::{InitOptions, Repository};
use serde::Serialize;

use crate::args::DemoArgs;
use crate::cmd::{kdf_params, Ctx};
use crate::{exit, ui};

const MARKER: &str = ".lifeboat-demo";

/// A tiny deterministic generator (xorshift64*): the demo data must be the
/// same on every machine, and no crate is needed for that.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn random_bytes(&mut self, out: &mut Vec<u8>, n: usize) {
        while out.len() + 8 <= n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        while out.len() < n {
            out.push(self.next() as u8);
        }
    }
    fn text(&mut self, out: &mut Vec<u8>, n: usize) {
        const WORDS: [&str; 32] = [
            "backup",
            "restore",
            "region",
            "failover",
            "replica",
            "snapshot",
            "primary",
            "standby",
            "latency",
            "ledger",
            "objective",
            "recovery",
            "point",
            "time",
            "drill",
            "runbook",
            "incident",
            "status",
            "healthy",
            "degraded",
            "promote",
            "archive",
            "wal",
            "orders",
            "uploads",
            "customer",
            "invoice",
            "2026-11-21",
            "INFO",
            "WARN",
            "id=",
            "ms",
        ];
        while out.len() < n {
            let w = WORDS[self.below(WORDS.len() as u64) as usize];
            out.extend_from_slice(w.as_bytes());
            if self.below(12) == 0 {
                out.extend_from_slice(format!(" {}\n", self.below(100_000)).as_bytes());
            } else {
                out.push(b' ');
            }
        }
        out.truncate(n);
    }
}

fn write_file(path: &Path, g: &mut Gen, size: usize, text: bool) -> Result<()> {
    let mut buf = Vec::with_capacity(size);
    if text {
        g.text(&mut buf, size);
    } else {
        g.random_bytes(&mut buf, size);
    }
    fs::write(path, &buf).with_context(|| format!("writing {}", path.display()))
}

/// Generates about `total` bytes: 60 % text-like, 40 % incompressible.
fn generate(root: &Path, total: u64, g: &mut Gen) -> Result<()> {
    let mut written = 0u64;
    let mut i = 0;
    while written < total {
        let dir = root
            .join(format!("dept-{:02}", i % 12))
            .join(format!("batch-{:03}", i / 12 % 40));
        fs::create_dir_all(&dir)?;
        let text = g.below(10) < 6;
        // Mostly small files, some large ones.
        let size = if g.below(20) == 0 {
            4_000_000 + g.below(12_000_000)
        } else {
            1_000 + g.below(400_000)
        } as usize;
        let size = size.min((total - written) as usize + 1);
        write_file(
            &dir.join(format!("file-{i:05}.{}", if text { "log" } else { "bin" })),
            g,
            size,
            text,
        )?;
        written += size as u64;
        i += 1;
    }
    fs::create_dir_all(root.join("empty-dir"))?;
    std::os::unix::fs::symlink("dept-00", root.join("link-to-dept-00"))?;
    Ok(())
}

/// Changes part of the tree: appends, rewrites, deletions, new files.
fn change(root: &Path, g: &mut Gen) -> Result<()> {
    let mut files = vec![];
    collect_files(root, &mut files)?;
    files.sort();
    for (n, f) in files.iter().enumerate() {
        match n % 20 {
            0 => {
                let mut buf = Vec::new();
                g.text(&mut buf, 20_000);
                fs::OpenOptions::new()
                    .append(true)
                    .open(f)?
                    .write_all(&buf)?;
            }
            7 => fs::remove_file(f)?,
            13 => write_file(f, g, 50_000, false)?,
            _ => {}
        }
    }
    let dir = root.join("new-today");
    fs::create_dir_all(&dir)?;
    for i in 0..20 {
        write_file(&dir.join(format!("upload-{i}.bin")), g, 200_000, i % 2 == 0)?;
    }
    Ok(())
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            collect_files(&e.path(), out)?;
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    Ok(())
}

/// path → (kind, size, mode, content hash or link target)
type Manifest = BTreeMap<PathBuf, (char, u64, u32, String)>;

fn manifest(root: &Path) -> Result<Manifest> {
    fn walk(root: &Path, dir: &Path, m: &mut Manifest) -> Result<()> {
        for e in fs::read_dir(dir)? {
            let e = e?;
            let p = e.path();
            let rel = p.strip_prefix(root)?.to_path_buf();
            let meta = fs::symlink_metadata(&p)?;
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                m.insert(rel, ('d', 0, mode, String::new()));
                walk(root, &p, m)?;
            } else if meta.file_type().is_symlink() {
                m.insert(rel, ('l', 0, 0, fs::read_link(&p)?.display().to_string()));
            } else {
                let mut h = blake3::Hasher::new();
                h.update_reader(fs::File::open(&p)?)?;
                m.insert(
                    rel,
                    ('f', meta.len(), mode, h.finalize().to_hex().to_string()),
                );
            }
        }
        Ok(())
    }
    let mut m = Manifest::new();
    walk(root, root, &mut m)?;
    Ok(m)
}

fn dir_size(p: &Path) -> u64 {
    let mut files = vec![];
    let _ = collect_files(p, &mut files);
    files
        .iter()
        .filter_map(|f| fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

#[derive(Serialize)]
struct Step {
    step: String,
    seconds: f64,
    bytes: u64,
    mib_per_second: f64,
}

#[derive(Serialize)]
struct DemoReport {
    dir: PathBuf,
    steps: Vec<Step>,
    logical_bytes: u64,
    repository_bytes: u64,
    dedup_ratio: f64,
    compression_ratio: f64,
    restores_identical: bool,
    files_compared: usize,
    check_errors: Vec<String>,
    /// The DR plan part: the plan written, and what run, verify and status said.
    plan: PlanPart,
}

/// The demo's DR plan, run: `lifeboat run`, `verify`, `status` on it.
#[derive(Serialize)]
struct PlanPart {
    plan: PathBuf,
    writer_commits_during_backup: u64,
    run: serde_json::Value,
    verify: serde_json::Value,
    status: serde_json::Value,
    ok: bool,
}

/// The demo plan: a SQLite database its writer keeps writing and the
/// generated files, backed up into the demo repository and copied to a
/// second local region.
fn write_plan(dir: &Path, password: &str) -> Result<PathBuf> {
    let plan = dir.join("lifeboat.toml");
    let password = password.replace("@DIR@", &dir.display().to_string());
    fs::write(
        &plan,
        format!(
            r#"# Written by `lifeboat demo`: the DR table of a small service as code.
# Try: lifeboat -c {dir}/lifeboat.toml plan check   (or status, run, verify)

[regions.primary]
repository = "{dir}/repo"
{password}

[regions.dr]                     # a second region: every backup is copied here
repository = "{dir}/dr"
{password}

[components.app-db]
tier = "medium"                  # RPO 4h, RTO 4h
source = "sqlite://{dir}/app.db"
schedule = "@hourly"
replicate_to = ["dr"]
priority = "data"
verify = {{ target = "{dir}/scratch", checks = [{{ kind = "counts" }}, {{ kind = "integrity" }}] }}

[components.files]
tier = "low"                     # RPO 24h, RTO 24h
source = "files://{dir}/data"
schedule = "@daily"
replicate_to = ["dr"]
verify = {{ target = "{dir}/scratch", checks = [{{ kind = "command", run = "test -d $LIFEBOAT_RESTORED{dir}/data" }}] }}
"#,
            dir = dir.display(),
            password = password,
        ),
    )?;
    Ok(plan)
}

/// `lifeboat -c PLAN --json ARGS…`: its JSON document and whether it exited 0.
fn plan_command(plan: &Path, args: &[&str]) -> Result<(serde_json::Value, bool)> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg("--json")
        .arg("-c")
        .arg(plan)
        .args(args)
        .env_remove("LIFEBOAT_REPOSITORY")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()?;
    Ok((
        serde_json::from_slice(&out.stdout).unwrap_or_default(),
        out.status.success(),
    ))
}

/// A SQLite database, and a writer that commits into it until stopped: the
/// demo's backup of it runs while it is being written. The writer's thread
/// gives the commits it made.
type Writer = (
    Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<u64>,
);

fn sqlite_with_writer(path: &Path) -> Result<Writer> {
    let db = rusqlite::Connection::open(path)?;
    db.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total_cents INTEGER);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO orders (customer, total_cents) SELECT 'customer-' || (i % 997), i * 37 % 100000 FROM n;",
    )?;
    drop(db);
    let path = path.to_path_buf();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let writer = std::thread::spawn(move || {
        let Ok(db) = rusqlite::Connection::open(&path) else {
            return 0;
        };
        let _ = db.busy_timeout(std::time::Duration::from_secs(5));
        let mut n = 0;
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            if db
                .execute(
                    "INSERT INTO orders (customer, total_cents) VALUES ('walk-in', ?1)",
                    [n as i64],
                )
                .is_ok()
            {
                n += 1;
            }
        }
        n
    });
    Ok((stop, writer))
}

fn step(name: &str, start: Instant, bytes: u64) -> Step {
    let s = start.elapsed().as_secs_f64();
    Step {
        step: name.into(),
        seconds: s,
        bytes,
        mib_per_second: bytes as f64 / 1_048_576.0 / s.max(1e-6),
    }
}

pub fn run(ctx: &Ctx, a: DemoArgs) -> Result<u8> {
    let dir = a.dir.clone();
    if dir.exists() {
        if !dir.join(MARKER).exists() {
            bail!(crate::UsageError(format!(
                "{} exists and was not made by `lifeboat demo`; choose another --dir",
                dir.display()
            )));
        }
        fs::remove_dir_all(&dir)
            .with_context(|| format!("removing the previous demo in {}", dir.display()))?;
    }
    fs::create_dir_all(&dir)?;
    // Absolute: the plan it writes names its paths, and is read from anywhere.
    let dir = fs::canonicalize(&dir)?;
    fs::write(dir.join(MARKER), b"made by lifeboat demo; safe to delete\n")?;
    let data = dir.join("data");
    let say = |s: &str| {
        if !ctx.out.json && !ctx.out.quiet {
            eprintln!("{s}");
        }
    };

    // The demo's own password, kept in a 0600 file (never printed).
    let pw = match std::env::var("LIFEBOAT_PASSWORD") {
        Ok(p) => p.into_bytes(),
        Err(_) => {
            let p = hex::encode(rand::random::<[u8; 16]>()).into_bytes();
            let f = dir.join("password");
            fs::write(&f, &p)?;
            fs::set_permissions(&f, fs::Permissions::from_mode(0o600))?;
            p
        }
    };
    let mut g = Gen(0x1fe_b0a7);
    say(&format!(
        "generating {} MiB of sample data in {} …",
        a.size,
        data.display()
    ));
    generate(&data, a.size << 20, &mut g)?;
    let before = manifest(&data)?;

    let store = Arc::from(lifeboat_store::open(
        &dir.join("repo").display().to_string(),
    )?);
    let opts = InitOptions {
        kdf: kdf_params(),
        ..InitOptions::default()
    };
    let repo = Repository::init(store, &pw, opts)?;
    let mut steps = vec![];

    let mut ir = repo.clone().load_index()?;
    let mut timed_backup = |label: &str, step_name: &str| -> Result<_> {
        say(&format!("{label} …"));
        let t = Instant::now();
        let bar = ctx.out.bar(label);
        let outcome = archiver::backup(
            &mut ir,
            BackupSource::Paths(vec![data.clone()]),
            &BackupOptions::default(),
            &bar,
        )?;
        drop(bar);
        let summary = outcome.snapshot.summary.clone().unwrap_or_default();
        steps.push(step(step_name, t, summary.bytes_total));
        Ok((outcome, summary))
    };
    let (b1, s1) = timed_backup("backup 1", "initial backup")?;
    change(&data, &mut g)?;
    let after = manifest(&data)?;
    let (b2, s2) = timed_backup(
        "backup 2 (after changing part of the data)",
        "incremental backup",
    )?;

    let mut identical = true;
    let mut compared = 0;
    for (n, (outcome, expected)) in [(&b1, &before), (&b2, &after)].into_iter().enumerate() {
        let target = dir.join(format!("restore-{}", n + 1));
        say(&format!("restore snapshot {} …", outcome.id.short()));
        let t = Instant::now();
        let bar = ctx.out.bar("restore");
        let r = restorer::restore(
            &ir,
            &outcome.snapshot,
            &target,
            &RestoreOptions::default(),
            &bar,
        )?;
        drop(bar);
        steps.push(step(&format!("restore snapshot {}", n + 1), t, r.bytes));
        // Paths keep their absolute place below the target.
        let recorded = outcome
            .snapshot
            .paths
            .first()
            .map(String::as_str)
            .unwrap_or("/");
        let got = manifest(&target.join(recorded.trim_start_matches('/')))?;
        compared += expected.len();
        if &got != expected || !r.problems.is_empty() {
            identical = false;
            for (p, v) in expected {
                if got.get(p) != Some(v) {
                    say(&format!("MISMATCH in restore {}: {}", n + 1, p.display()));
                }
            }
        }
    }

    say("check --read-data …");
    let t = Instant::now();
    let bar = ctx.out.bar("check");
    let report = check::check(
        repo,
        CheckOptions {
            read_data: Some(Subset::All),
        },
        &bar,
    )?;
    drop(bar);
    steps.push(step("check --read-data", t, report.bytes_read));

    say("the DR plan: lifeboat.toml with a SQLite database (written to throughout) and the files above …");
    let plan_file = write_plan(
        &dir,
        if std::env::var("LIFEBOAT_PASSWORD").is_ok() {
            "password_env = \"LIFEBOAT_PASSWORD\""
        } else {
            "password_file = \"@DIR@/password\""
        },
    )?;
    say("lifeboat init --plan (the second region, dr) …");
    let (_, init_ok) = plan_command(&plan_file, &["init", "--plan"])?;
    let (stop, writer) = sqlite_with_writer(&dir.join("app.db"))?;
    say("lifeboat run --all (backups, each copied to dr) …");
    let ran = plan_command(&plan_file, &["run", "--all"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let commits = writer.join().unwrap_or(0);
    let (run_doc, run_ok) = ran?;
    say("lifeboat verify (restore tests) …");
    let (verify_doc, verify_ok) = plan_command(&plan_file, &["verify"])?;
    let (status_doc, status_ok) = plan_command(&plan_file, &["status"])?;
    let plan = PlanPart {
        plan: plan_file,
        writer_commits_during_backup: commits,
        run: run_doc,
        verify: verify_doc,
        status: status_doc,
        ok: init_ok && run_ok && verify_ok && status_ok,
    };

    let logical = s1.bytes_total + s2.bytes_total;
    let stored = dir_size(&dir.join("repo"));
    let added = s1.bytes_added + s2.bytes_added;
    let doc = DemoReport {
        dir: dir.clone(),
        steps,
        logical_bytes: logical,
        repository_bytes: stored,
        dedup_ratio: logical as f64 / added.max(1) as f64,
        compression_ratio: added as f64 / (s1.bytes_stored + s2.bytes_stored).max(1) as f64,
        restores_identical: identical,
        files_compared: compared,
        check_errors: report.errors.clone(),
        plan,
    };
    ctx.out.print(&doc, || {
        let mut t = format!("\nlifeboat demo in {}\n\n{:<24} {:>8} {:>12} {:>12}\n", dir.display(), "step", "seconds", "data", "MiB/s");
        for s in &doc.steps {
            t += &format!("{:<24} {:>8.2} {:>12} {:>12.0}\n", s.step, s.seconds, ui::bytes(s.bytes), s.mib_per_second);
        }
        t += &format!(
            "\ntwo snapshots of {} in total are stored in {}: deduplication {:.2}x, compression {:.2}x\n",
            ui::bytes(doc.logical_bytes),
            ui::bytes(doc.repository_bytes),
            doc.dedup_ratio,
            doc.compression_ratio
        );
        t += &format!(
            "restores byte-identical to the originals: {} ({} entries compared)\ncheck --read-data: {}\n",
            if identical { "yes" } else { "NO" },
            compared,
            if doc.check_errors.is_empty() { "no errors".to_string() } else { format!("{} errors", doc.check_errors.len()) }
        );
        let p = &doc.plan;
        t += &format!(
            "\nthe DR plan {}: {} backed up (app-db while a writer committed {} orders into it) and copied to the second region dr ({} ok); restore tests: Passed {}, Warnings {}, Failed {}; status: {}\n",
            p.plan.display(),
            ui::count(p.run["runs"].as_array().map_or(0, |r| r.len()) as u64, "component"),
            p.writer_commits_during_backup,
            p.run["runs"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| r["copies"].as_array().into_iter().flatten())
                .filter(|c| c["ok"] == true)
                .count(),
            p.verify["passed"],
            p.verify["warnings"],
            p.verify["failed"],
            if p.ok { "every component's newest backup is within its RPO" } else { "NOT all well (see above)" }
        );
        t += &format!("\nthe repository is in {}/repo; try: lifeboat --repo {}/repo snapshots\n", dir.display(), dir.display());
        t += &format!(
            "the plan is {}: lifeboat -c {} status (or plan check, run, verify); to protect your own systems, copy a plan from examples/plans/ into ./lifeboat.toml, name your repositories and sources, and run `lifeboat run` from a timer\n",
            p.plan.display(),
            p.plan.display()
        );
        if std::env::var("LIFEBOAT_PASSWORD").is_err() {
            t += &format!("(its password is in {}/password: export LIFEBOAT_PASSWORD_FILE={}/password)\n", dir.display(), dir.display());
        }
        t
    })?;
    Ok(if identical && doc.check_errors.is_empty() && doc.plan.ok {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}
