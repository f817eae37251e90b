//! Objectives: the tier matrix every plan starts from, and what a plan can
//! achieve before any disaster — the worst data loss its schedule (or its
//! continuous log) allows against each component's RPO.

use jiff::SignedDuration;
use serde::Serialize;

use crate::{Component, Plan};

/// A component's tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// RPO < 1 min, RTO < 5 min.
    Critical,
    /// RPO < 15 min, RTO < 1 h.
    High,
    /// RPO < 4 h, RTO < 4 h.
    Medium,
    /// RPO < 24 h, RTO < 24 h.
    Low,
}

impl Tier {
    /// Every tier, by name.
    pub const ALL: [(&'static str, Tier); 4] = [
        ("critical", Tier::Critical),
        ("high", Tier::High),
        ("medium", Tier::Medium),
        ("low", Tier::Low),
    ];

    /// The tier's default (RPO, RTO), from the usual DR tier matrix.
    pub fn defaults(self) -> (SignedDuration, SignedDuration) {
        let (rpo, rto) = match self {
            Tier::Critical => (60, 5 * 60),
            Tier::High => (15 * 60, 3600),
            Tier::Medium => (4 * 3600, 4 * 3600),
            Tier::Low => (24 * 3600, 24 * 3600),
        };
        (
            SignedDuration::from_secs(rpo),
            SignedDuration::from_secs(rto),
        )
    }
}

/// What a continuous log stream loses at most: it makes what it received
/// durable at least every second.
pub const STREAM_RPO: SignedDuration = SignedDuration::from_secs(1);

/// Sources whose transaction log lifeboat streams (`wal stream`,
/// `binlog stream`).
pub fn streams_log(source: &str) -> bool {
    ["postgres://", "postgresql://", "mariadb://", "mysql://"]
        .iter()
        .any(|s| source.starts_with(s))
}

/// How a component's achievable RPO comes about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RpoBasis {
    /// A continuous log stream.
    Stream,
    /// The longest gap between scheduled backups.
    Schedule,
    /// No schedule and no stream: only backups run by hand.
    Unscheduled,
}

/// One component held against its objectives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    /// The component.
    pub component: String,
    /// Its RPO objective, in seconds.
    pub rpo_seconds: i64,
    /// Its RTO objective, in seconds.
    pub rto_seconds: i64,
    /// The worst data loss the plan allows, in seconds (none: unbounded).
    pub achievable_rpo_seconds: Option<i64>,
    /// Where that comes from.
    pub basis: RpoBasis,
    /// Whether the achievable RPO is within the objective.
    pub rpo_met: bool,
    /// The RTO estimate, in seconds: the last restore test's time (none:
    /// no restore measured yet).
    pub rto_estimate_seconds: Option<f64>,
    /// Whether the estimate is within the RTO (none: not measured).
    pub rto_met: Option<bool>,
    /// What stands between the plan and its objectives, in words.
    pub findings: Vec<String>,
}

/// Words for a duration: `90s`, `15m`, `6h`, `2d 3h`.
pub fn words(d: SignedDuration) -> String {
    let s = d.as_secs();
    let (days, h, m, sec) = (s / 86400, s % 86400 / 3600, s % 3600 / 60, s % 60);
    let mut parts = vec![];
    for (n, unit) in [(days, "d"), (h, "h"), (m, "m"), (sec, "s")] {
        if n > 0 {
            parts.push(format!("{n}{unit}"));
        }
    }
    if parts.is_empty() {
        "0s".into()
    } else {
        parts.join(" ")
    }
}

/// Holds one component against its objectives, its schedule's gaps
/// measured over a year from `from`.
pub fn assess(c: &Component, from: jiff::Timestamp) -> Assessment {
    let mut findings = vec![];
    let (achievable, basis) = if c.continuous {
        (Some(STREAM_RPO), RpoBasis::Stream)
    } else if let Some(s) = &c.schedule {
        match s.longest_gap(from) {
            Some(g) => (Some(g), RpoBasis::Schedule),
            None => {
                findings.push(format!("its schedule \"{s}\" never runs"));
                (None, RpoBasis::Schedule)
            }
        }
    } else {
        (None, RpoBasis::Unscheduled)
    };
    let rpo_met = achievable.is_some_and(|a| a <= c.rpo);
    if !rpo_met {
        findings.push(match (&basis, achievable) {
            (RpoBasis::Schedule, Some(a)) => format!(
                "RPO {} cannot be met: its schedule \"{}\" leaves up to {} between backups{}",
                words(c.rpo),
                c.schedule
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                words(a),
                if streams_log(&c.source) {
                    "; stream its log (continuous = true) or back up more often"
                } else {
                    "; back up more often"
                }
            ),
            (RpoBasis::Stream, Some(a)) => format!(
                "RPO {} cannot be met: the log stream makes changes durable only every {}",
                words(c.rpo),
                words(a)
            ),
            _ => format!(
                "RPO {} cannot be met: nothing backs it up on its own (give a schedule{})",
                words(c.rpo),
                if streams_log(&c.source) {
                    " or continuous = true"
                } else {
                    ""
                }
            ),
        });
    }
    Assessment {
        component: c.name.clone(),
        rpo_seconds: c.rpo.as_secs(),
        rto_seconds: c.rto.as_secs(),
        achievable_rpo_seconds: achievable.map(|a| a.as_secs()),
        basis,
        rpo_met,
        rto_estimate_seconds: None,
        rto_met: None,
        findings,
    }
}

/// Holds an assessment's RTO against the last measured restore of its
/// component (`measured`, seconds; none: not measured yet).
pub fn hold_rto(a: &mut Assessment, measured: Option<f64>) {
    a.rto_estimate_seconds = measured;
    a.rto_met = measured.map(|m| m <= a.rto_seconds as f64);
    if a.rto_met == Some(false) {
        a.findings.push(format!(
            "RTO {} cannot be met: its last restore test took {}",
            words(SignedDuration::from_secs(a.rto_seconds)),
            words(SignedDuration::from_secs(
                measured.unwrap_or(0.0).ceil() as i64
            ))
        ));
    }
}

impl Assessment {
    /// Whether every objective known can be met.
    pub fn met(&self) -> bool {
        self.rpo_met && self.rto_met != Some(false)
    }
}

/// Every component of `plan` held against its objectives.
pub fn assess_plan(plan: &Plan, from: jiff::Timestamp) -> Vec<Assessment> {
    plan.components.iter().map(|c| assess(c, from)).collect()
}
