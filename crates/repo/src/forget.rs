//! Forget: which snapshots a keep policy keeps, and why.
//!
//! Semantics follow restic's, which SREs already know: snapshots are grouped
//! by host and paths; inside a group, newest first, `last N` keeps the N
//! newest; `hourly/daily/weekly/monthly/yearly N` keep the newest snapshot of
//! each of the N most recent periods that have one (local time, ISO weeks);
//! `within D` keeps everything newer than the group's newest snapshot minus
//! D; `tag T` keeps every snapshot with tag T. A snapshot kept by any rule
//! is kept. An empty policy is refused: it would remove everything.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::id::Id;
use crate::repository::Repository;
use crate::snapshot::{GroupBy, GroupKey, Snapshot, SnapshotFilter};

/// A keep policy.
#[derive(Debug, Clone, Default)]
pub struct KeepPolicy {
    /// Keep the N newest.
    pub last: u32,
    /// Newest per hour, for N hours that have snapshots.
    pub hourly: u32,
    /// Newest per day.
    pub daily: u32,
    /// Newest per ISO week.
    pub weekly: u32,
    /// Newest per month.
    pub monthly: u32,
    /// Newest per year.
    pub yearly: u32,
    /// Keep everything within this span of the newest snapshot.
    pub within: Option<jiff::Span>,
    /// Keep snapshots with any of these tags.
    pub tags: Vec<String>,
}

impl KeepPolicy {
    /// Whether no rule is set.
    pub fn is_empty(&self) -> bool {
        self.last + self.hourly + self.daily + self.weekly + self.monthly + self.yearly == 0
            && self.within.is_none()
            && self.tags.is_empty()
    }
}

/// Parses a duration like `30d`, `2w`, `1y6m`, `12h` (y, m = months, w, d, h).
pub fn parse_within(s: &str) -> Result<jiff::Span> {
    let bad = || {
        RepoError::Usage(format!(
            "invalid duration {s:?}: use forms like 30d, 2w, 1y6m, 12h"
        ))
    };
    let mut span = jiff::Span::new();
    let mut num = String::new();
    let mut any = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().map_err(|_| bad())?;
        num.clear();
        span = match c {
            'y' => span.try_years(n),
            'm' => span.try_months(n),
            'w' => span.try_weeks(n),
            'd' => span.try_days(n),
            'h' => span.try_hours(n),
            _ => return Err(bad()),
        }
        .map_err(|_| bad())?;
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(bad());
    }
    Ok(span)
}

/// A kept snapshot and the rules that kept it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Kept {
    /// Snapshot id.
    pub id: Id,
    /// Why: `last`, `daily`, `within 30d`, `tag T` …
    pub reasons: Vec<String>,
}

/// The decision for one group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupDecision {
    /// What the group's snapshots share.
    pub group_key: GroupKey,
    /// Kept snapshots, newest first.
    pub keep: Vec<Kept>,
    /// Snapshots to remove, newest first.
    pub remove: Vec<Id>,
}

/// Applies `policy` to `snapshots` grouped by `group_by`, in time zone
/// `tz`. Pure: reads and deletes nothing ([`forget`] does).
pub fn apply(
    snapshots: &[(Id, Snapshot)],
    policy: &KeepPolicy,
    group_by: GroupBy,
    tz: &TimeZone,
) -> Result<Vec<GroupDecision>> {
    if policy.is_empty() {
        return Err(RepoError::Usage(
            "no keep rule given: refusing to forget every snapshot".into(),
        ));
    }
    let mut groups: BTreeMap<GroupKey, Vec<&(Id, Snapshot)>> = BTreeMap::new();
    for s in snapshots {
        groups.entry(group_by.key(&s.1)).or_default().push(s);
    }
    let mut out = vec![];
    for (group_key, mut snaps) in groups {
        snaps.sort_by(|a, b| b.1.time.cmp(&a.1.time).then(b.0.cmp(&a.0)));
        let newest = snaps[0].1.time;
        let cutoff = match policy.within {
            Some(span) => Some(
                newest
                    .to_zoned(tz.clone())
                    .checked_sub(span)
                    .map_err(|e| RepoError::Usage(e.to_string()))?
                    .timestamp(),
            ),
            None => None,
        };
        type Bucket = fn(&jiff::Zoned) -> i64;
        let rules: [(&str, u32, Bucket); 5] = [
            ("hourly", policy.hourly, |z| {
                i64::from(z.year()) * 1_000_000
                    + i64::from(z.day_of_year()) * 100
                    + i64::from(z.hour())
            }),
            ("daily", policy.daily, |z| {
                i64::from(z.year()) * 1000 + i64::from(z.day_of_year())
            }),
            ("weekly", policy.weekly, |z| {
                let w = z.date().iso_week_date();
                i64::from(w.year()) * 100 + i64::from(w.week())
            }),
            ("monthly", policy.monthly, |z| {
                i64::from(z.year()) * 100 + i64::from(z.month())
            }),
            ("yearly", policy.yearly, |z| i64::from(z.year())),
        ];
        let mut left: Vec<u32> = rules.iter().map(|r| r.1).collect();
        let mut last_bucket: Vec<Option<i64>> = vec![None; rules.len()];
        let mut decision = GroupDecision {
            group_key,
            keep: vec![],
            remove: vec![],
        };
        for (i, (id, s)) in snaps.iter().map(|p| (&p.0, &p.1)).enumerate() {
            let mut reasons = vec![];
            if (i as u32) < policy.last {
                reasons.push("last".to_string());
            }
            let z = s.time.to_zoned(tz.clone());
            for (r, (name, _, bucket)) in rules.iter().enumerate() {
                if left[r] == 0 {
                    continue;
                }
                let b = bucket(&z);
                if last_bucket[r] != Some(b) {
                    last_bucket[r] = Some(b);
                    left[r] -= 1;
                    reasons.push(name.to_string());
                }
            }
            if cutoff.is_some_and(|c| s.time >= c) {
                reasons.push("within".to_string());
            }
            for t in &policy.tags {
                if s.has_tag(t) {
                    reasons.push(format!("tag {t}"));
                }
            }
            if reasons.is_empty() {
                decision.remove.push(*id);
            } else {
                decision.keep.push(Kept { id: *id, reasons });
            }
        }
        out.push(decision);
    }
    Ok(out)
}

/// What [`forget`] is to do.
#[derive(Debug, Clone)]
pub struct ForgetOptions {
    /// The keep rules.
    pub policy: KeepPolicy,
    /// Only snapshots this admits are considered (the rest are kept).
    pub filter: SnapshotFilter,
    /// How snapshots are grouped before the rules apply to each group.
    pub group_by: GroupBy,
    /// Decide and report; delete nothing.
    pub dry_run: bool,
}

/// What [`forget`] decided and did.
#[derive(Debug, Clone, Serialize)]
pub struct ForgetReport {
    /// Nothing was deleted.
    pub dry_run: bool,
    /// Each group's decision (empty when snapshots were named).
    pub groups: Vec<GroupDecision>,
    /// The snapshots removed (or that would be, in a dry run).
    pub removed: Vec<Id>,
}

/// Applies the keep rules of `opts` to the repository's snapshots and
/// deletes those no rule keeps. Refused while a snapshot object is damaged:
/// its time and tags are unknown, so the rules cannot be applied honestly.
pub fn forget(repo: &Repository, opts: &ForgetOptions, tz: &TimeZone) -> Result<ForgetReport> {
    let (all, bad) = repo.snapshots()?;
    if let Some(e) = bad.into_iter().next() {
        return Err(RepoError::Refused(format!(
            "forget refuses to apply keep rules while a snapshot is unreadable ({e})"
        )));
    }
    let all: Vec<_> = all
        .into_iter()
        .filter(|(_, s)| opts.filter.matches(s))
        .collect();
    let groups = apply(&all, &opts.policy, opts.group_by, tz)?;
    let removed: Vec<Id> = groups
        .iter()
        .flat_map(|g| g.remove.iter().copied())
        .collect();
    remove(repo, &removed, opts.dry_run)?;
    Ok(ForgetReport {
        dry_run: opts.dry_run,
        groups,
        removed,
    })
}

/// Deletes the named snapshots (unless `dry_run`).
pub fn forget_snapshots(repo: &Repository, ids: &[Id], dry_run: bool) -> Result<ForgetReport> {
    remove(repo, ids, dry_run)?;
    Ok(ForgetReport {
        dry_run,
        groups: vec![],
        removed: ids.to_vec(),
    })
}

fn remove(repo: &Repository, ids: &[Id], dry_run: bool) -> Result<()> {
    if !dry_run {
        for id in ids {
            repo.delete_snapshot(id)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(n: u8, time: &str, host: &str, tags: &[&str]) -> (Id, Snapshot) {
        (
            Id([n; 32]),
            Snapshot {
                version: 1,
                time: time.parse().unwrap(),
                tree: Id::default(),
                paths: vec!["/data".into()],
                hostname: host.into(),
                username: String::new(),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                parent: None,
                program_version: String::new(),
                summary: None,
                source: None,
                xattrs: false,
                original: None,
                lost: vec![],
            },
        )
    }

    fn kept(d: &[GroupDecision]) -> Vec<u8> {
        let mut v: Vec<u8> = d
            .iter()
            .flat_map(|g| g.keep.iter().map(|k| k.id.0[0]))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn daily_keeps_newest_of_each_day() {
        let s = vec![
            snap(1, "2026-01-01T10:00:00Z", "h", &[]),
            snap(2, "2026-01-01T20:00:00Z", "h", &[]),
            snap(3, "2026-01-02T10:00:00Z", "h", &[]),
            snap(4, "2026-01-03T10:00:00Z", "h", &[]),
            snap(5, "2026-01-03T11:00:00Z", "h", &[]),
        ];
        let p = KeepPolicy {
            daily: 2,
            ..Default::default()
        };
        assert_eq!(
            kept(&apply(&s, &p, GroupBy::HOST_AND_PATHS, &TimeZone::UTC).unwrap()),
            vec![3, 5]
        );
        let p = KeepPolicy {
            daily: 10,
            ..Default::default()
        };
        assert_eq!(
            kept(&apply(&s, &p, GroupBy::HOST_AND_PATHS, &TimeZone::UTC).unwrap()),
            vec![2, 3, 5]
        );
    }

    #[test]
    fn rules_combine_and_groups_are_separate() {
        let s = vec![
            snap(1, "2025-06-01T00:00:00Z", "h", &["release"]),
            snap(2, "2026-01-01T00:00:00Z", "h", &[]),
            snap(3, "2026-01-05T00:00:00Z", "h", &[]),
            snap(4, "2026-01-09T00:00:00Z", "h", &[]),
            snap(5, "2020-01-01T00:00:00Z", "other", &[]),
        ];
        let p = KeepPolicy {
            last: 1,
            within: Some(parse_within("5d").unwrap()),
            tags: vec!["release".into()],
            ..Default::default()
        };
        let d = apply(&s, &p, GroupBy::HOST_AND_PATHS, &TimeZone::UTC).unwrap();
        // h: 4 (last, within), 3 (within: 01-05 >= 01-04), 1 (tag); other: 5 (last).
        assert_eq!(kept(&d), vec![1, 3, 4, 5]);
        let h = d
            .iter()
            .find(|g| g.group_key.host.as_deref() == Some("h"))
            .unwrap();
        assert_eq!(h.remove, vec![Id([2; 32])]);
        assert_eq!(h.keep[0].reasons, vec!["last", "within"]);
    }

    #[test]
    fn weekly_monthly_yearly_buckets() {
        let s = vec![
            snap(1, "2024-12-30T00:00:00Z", "h", &[]), // ISO week 2025-W01
            snap(2, "2025-01-02T00:00:00Z", "h", &[]), // same ISO week
            snap(3, "2025-02-10T00:00:00Z", "h", &[]),
            snap(4, "2025-02-20T00:00:00Z", "h", &[]),
        ];
        let p = KeepPolicy {
            weekly: 10,
            ..Default::default()
        };
        assert_eq!(
            kept(&apply(&s, &p, GroupBy::HOST_AND_PATHS, &TimeZone::UTC).unwrap()),
            vec![2, 3, 4]
        );
        let p = KeepPolicy {
            monthly: 10,
            ..Default::default()
        };
        assert_eq!(
            kept(&apply(&s, &p, GroupBy::HOST_AND_PATHS, &TimeZone::UTC).unwrap()),
            vec![1, 2, 4]
        );
        let p = KeepPolicy {
            yearly: 10,
            ..Default::default()
        };
        assert_eq!(
            kept(&apply(&s, &p, GroupBy::HOST_AND_PATHS, &TimeZone::UTC).unwrap()),
            vec![1, 4]
        );
    }

    #[test]
    fn empty_policy_is_refused() {
        assert!(apply(
            &[],
            &KeepPolicy::default(),
            GroupBy::HOST_AND_PATHS,
            &TimeZone::UTC
        )
        .is_err());
    }

    #[test]
    fn within_parsing() {
        assert!(parse_within("1y6m").is_ok());
        for bad in ["", "5", "d", "3x", "1d2"] {
            assert!(parse_within(bad).is_err(), "{bad}");
        }
    }
}
