//! The plan file: every example parses and meets its objectives; each
//! class of mistake is named at its line and column; the achievable-RPO
//! arithmetic on plans that meet and miss their objectives.
#![allow(clippy::unwrap_used, missing_docs)]

use lifeboat_plan::objectives::{assess_plan, RpoBasis};
use lifeboat_plan::{parse, Problem};

fn start() -> jiff::Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

const BASE: &str = r#"
[regions.primary]
repository = "/srv/lifeboat"
password_file = "/etc/lifeboat/pass"

[regions.dr]
repository = "/mnt/dr"
password_env = "DR_PASSWORD"
"#;

fn problems(plan: &str) -> Vec<Problem> {
    parse(plan).unwrap_err()
}

/// The one problem of `plan`, which must say `says` at `line`:`column`.
fn one(plan: &str, line: usize, column: usize, says: &str) {
    let p = problems(plan);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].message.contains(says), "{}", p[0]);
    assert_eq!((p[0].line, p[0].column), (line, column), "{}", p[0]);
}

#[test]
fn every_example_plan_parses_and_meets_its_objectives() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/plans");
    let mut seen = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let plan = parse(&text).unwrap_or_else(|p| {
            panic!(
                "{}: {}",
                path.display(),
                p.iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        assert!(!plan.components.is_empty(), "{}", path.display());
        for a in assess_plan(&plan, start()) {
            assert!(a.rpo_met, "{}: {a:?}", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 3, "the marketplace, analytics and SQLite examples");
}

#[test]
fn tiers_give_objectives_and_explicit_ones_win() {
    let plan = parse(&format!(
        "{BASE}
[components.a]
tier = \"critical\"
source = \"postgres://db/\"
continuous = true

[components.b]
tier = \"high\"
rpo = \"30m\"
rto = \"2h\"
source = \"files:///srv\"
schedule = \"*/30 * * * *\"
replicate_to = [\"dr\"]
"
    ))
    .unwrap();
    let a = &plan.components[0];
    assert_eq!((a.rpo.as_secs(), a.rto.as_secs()), (60, 300));
    assert_eq!(a.region, "primary");
    let b = &plan.components[1];
    assert_eq!((b.rpo.as_secs(), b.rto.as_secs()), (1800, 7200));
    assert_eq!(b.replicate_to, vec!["dr".to_string()]);
    let got = assess_plan(&plan, start());
    assert_eq!(got[0].basis, RpoBasis::Stream);
    assert_eq!(got[0].achievable_rpo_seconds, Some(1));
    assert_eq!(got[1].achievable_rpo_seconds, Some(1800));
    assert!(got.iter().all(|a| a.rpo_met));
}

#[test]
fn objectives_a_schedule_cannot_meet_are_named() {
    let plan = parse(&format!(
        "{BASE}
[components.orders]
tier = \"critical\"
source = \"postgres://db/\"
schedule = \"0 * * * *\"

[components.uploads]
tier = \"medium\"
source = \"files:///srv/uploads\"
schedule = \"0 2 * * 1-5\"

[components.manual]
tier = \"low\"
source = \"files:///srv/x\"
"
    ))
    .unwrap();
    let got = assess_plan(&plan, start());
    assert!(!got[0].rpo_met);
    assert_eq!(got[0].achievable_rpo_seconds, Some(3600));
    assert!(
        got[0].findings[0].contains("leaves up to 1h") && got[0].findings[0].contains("continuous"),
        "{:?}",
        got[0]
    );
    // Friday night to Monday night.
    assert_eq!(got[1].achievable_rpo_seconds, Some(72 * 3600));
    assert!(got[1].findings[0].contains("3d"), "{:?}", got[1]);
    assert_eq!(got[2].basis, RpoBasis::Unscheduled);
    assert!(!got[2].rpo_met && got[2].findings[0].contains("nothing backs it up"));
}

#[test]
fn each_class_of_mistake_is_named_at_its_line_and_column() {
    let c = |body: &str| format!("{BASE}\n[components.x]\n{body}\n");
    // BASE ends on line 8; [components.x] is line 10, the body starts on 11.
    one(
        &c("tier = \"high\"\nsource = \"files:///a\"\nshedule = \"@daily\""),
        13,
        1,
        "did you mean \"schedule\"",
    );
    one(
        &c("tier = \"urgent\"\nsource = \"files:///a\""),
        11,
        8,
        "not one of critical, high, medium, low",
    );
    one(
        &c("tier = \"low\"\nsource = \"ftp://a\""),
        12,
        10,
        "use files:///PATH",
    );
    one(
        &c("tier = \"low\"\nsource = \"files:///a\"\nschedule = \"0 25 * * *\""),
        13,
        12,
        "hour",
    );
    one(
        &c("tier = \"low\"\nsource = \"files:///a\"\nrpo = \"soon\""),
        13,
        7,
        "not a duration",
    );
    one(
        &c("tier = \"low\"\nsource = \"files:///a\"\nreplicate_to = [\"mars\"]"),
        13,
        17,
        "not a declared region",
    );
    one(
        &c("tier = \"low\"\nsource = \"files:///a\"\ncontinuous = true"),
        13,
        14,
        "only postgres",
    );
    one(
        &c("tier = \"low\"\nsource = \"files:///a\"\nretention = { daily = -1 }"),
        13,
        23,
        "whole number",
    );
    one(&c("source = \"files:///a\""), 10, 1, "has no tier");
    one(&c("tier = \"low\"\nsource = \"files:///a\"\n[components.x.verify]\nchecks = [{ kind = \"sql\", query = \"SELECT 1\", expect = \"1\" }]"), 13, 1, "no target");
    one(&c("tier = \"low\"\nsource = \"files:///a\"\nverify = { target = \"/t\", checks = [{ kind = \"sql\", query = \"SELECT 1\" }] }"), 13, 37, "needs expect");
    one("[regions.primary]\nrepository = \"/r\"\n[components.x]\ntier = \"low\"\nsource = \"files:///a\"\n", 1, 1, "no password source");
    one(&format!("{BASE}\n[components.x]\ntier = \"low\"\nsource = \"files:///a\"\n[notify.pager]\nkind = \"webhook\"\n"), 13, 1, "needs url");
    one(&format!("{BASE}\n[components.x]\ntier = \"low\"\nsource = \"files:///a\"\n[notify.pager]\nkind = \"webhook\"\nurl = \"https://x/\"\n"), 15, 7, "only http://");
    one(&format!("{BASE}\n[components.x]\ntier = \"low\"\nsource = \"files:///a\"\n[notify.pager]\nkind = \"command\"\ncommand = \"true\"\nalerts = [\"backup_failed\", \"disk_full\"]\n"), 16, 28, "\"disk_full\" is not one of backup_failed, outside_rpo, replication_lag, verification_failed");
    one(&format!("{BASE}\n[components.x]\ntier = \"low\"\nsource = \"files:///a\"\n[notify.pager]\nkind = \"command\"\ncommand = \"true\"\nrepeat = \"often\"\n"), 16, 10, "is not a duration");
    // Not TOML at all.
    let p = problems("[regions.primary\nrepository = 1");
    assert!(
        p[0].message.contains("not valid TOML") && p[0].line == 1,
        "{p:?}"
    );
}

#[test]
fn every_problem_is_reported_at_once_in_file_order() {
    let p = problems(&format!(
        "{BASE}
[components.a]
tier = \"hgh\"
source = \"files:///a\"
retension = {{ daily = 7 }}

[components.b]
tier = \"low\"
source = \"files:///b\"
schedule = \"every day\"
region = \"moon\"
"
    ));
    assert_eq!(p.len(), 4, "{p:#?}");
    let lines: Vec<usize> = p.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![11, 13, 18, 19]);
    assert!(
        p[1].message.contains("did you mean \"retention\""),
        "{}",
        p[1]
    );
}

#[test]
fn a_measured_restore_over_the_rto_is_an_unmet_objective() {
    let plan = parse(&format!(
        "{BASE}
[components.db]
tier = \"critical\"
source = \"postgres://db/\"
continuous = true
"
    ))
    .unwrap();
    let mut a = assess_plan(&plan, start()).remove(0);
    assert!(a.met() && a.rto_met.is_none(), "not measured: not a miss");
    lifeboat_plan::objectives::hold_rto(&mut a, Some(299.0));
    assert!(a.met());
    lifeboat_plan::objectives::hold_rto(&mut a, Some(421.5));
    assert!(!a.met());
    assert!(
        a.findings
            .last()
            .unwrap()
            .contains("RTO 5m cannot be met: its last restore test took 7m 2s"),
        "{:?}",
        a.findings
    );
}
