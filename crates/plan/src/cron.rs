//! Schedules: five-field cron expressions (`minute hour day-of-month month
//! day-of-week`, with `*`, lists, ranges and `/steps`, and the `@hourly`,
//! `@daily`, `@weekly`, `@monthly`, `@yearly` shorthands), in UTC.
//!
//! Written by hand: the arithmetic the plan needs (the next run, the
//! longest gap between runs) is a walk over five small sets, and the cron
//! crates bring a second date library (chrono) for it.

use std::fmt;

/// A parsed schedule.
#[derive(Clone, PartialEq, Eq)]
pub struct Schedule {
    text: String,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// Both day fields restricted: a day matches either (cron's rule).
    either_day: bool,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.text)
    }
}

impl serde::Serialize for Schedule {
    /// As it was written.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn field(text: &str, lo: u32, hi: u32, what: &str) -> Result<u64, String> {
    let mut set = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{what}: step {s:?} is not a positive number"))?,
            ),
            None => (part, 1),
        };
        let num = |s: &str| {
            s.parse::<u32>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| format!("{what}: {s:?} is not a number from {lo} to {hi}"))
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (num(a)?, num(b)?);
            if a > b {
                return Err(format!("{what}: range {range:?} runs backwards"));
            }
            (a, b)
        } else {
            let a = num(range)?;
            (a, if part.contains('/') { hi } else { a })
        };
        let mut v = a;
        while v <= b {
            set |= 1 << v;
            v += step;
        }
    }
    Ok(set)
}

impl Schedule {
    /// Parses a cron expression or shorthand.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let expanded = match text.trim() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            other => other,
        };
        let f: Vec<&str> = expanded.split_whitespace().collect();
        let [mi, h, dom, mon, dow] = f[..] else {
            return Err(format!(
                "{text:?} is not a schedule: give five cron fields (minute hour day month weekday, like \"0 * * * *\") or @hourly, @daily, @weekly"
            ));
        };
        let mut weekdays = field(dow, 0, 7, "day of week")?;
        // 7 is Sunday too.
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f;
        }
        Ok(Schedule {
            text: text.trim().to_string(),
            minutes: field(mi, 0, 59, "minute")?,
            hours: field(h, 0, 23, "hour")? as u32,
            days: field(dom, 1, 31, "day of month")? as u32,
            months: field(mon, 1, 12, "month")? as u16,
            weekdays: weekdays as u8,
            either_day: dom != "*" && dow != "*",
        })
    }

    /// Whether the schedule runs on `d` at all.
    fn runs_on(&self, d: jiff::civil::Date) -> bool {
        let day = self.days & (1 << d.day()) != 0;
        let weekday = self.weekdays & (1 << d.weekday().to_sunday_zero_offset()) != 0;
        let day_ok = if self.either_day {
            day || weekday
        } else {
            day && weekday
        };
        self.months & (1 << d.month()) != 0 && day_ok
    }

    /// The minutes of a day it runs at (the same on every day it runs).
    fn minutes_of_day(&self) -> Vec<i64> {
        (0..24)
            .filter(|h| self.hours & (1 << h) != 0)
            .flat_map(|h| {
                (0..60)
                    .filter(|m| self.minutes & (1u64 << m) != 0)
                    .map(move |m| i64::from(h) * 60 + i64::from(m))
            })
            .collect()
    }

    fn day_of(minute: i64) -> Option<jiff::civil::Date> {
        jiff::Timestamp::from_second(minute * 60)
            .ok()
            .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date())
    }

    fn minute_of(d: jiff::civil::Date, m: i64) -> Option<i64> {
        let t = d.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
        Some(t.as_second().div_euclid(60) + m)
    }

    /// Runs from minute `start` on, in order, day by day over `days` days
    /// (a day it does not run costs one check, not 1440).
    fn runs(&self, start: i64, days: i64) -> impl Iterator<Item = i64> + '_ {
        let of_day = self.minutes_of_day();
        let first = Schedule::day_of(start);
        (0..days)
            .filter_map(move |i| first?.checked_add(jiff::Span::new().days(i)).ok())
            .filter(move |d| self.runs_on(*d))
            .flat_map(move |d| {
                of_day
                    .clone()
                    .into_iter()
                    .filter_map(move |m| Schedule::minute_of(d, m))
            })
            .filter(move |m| *m >= start)
    }

    /// The next run at or after `from`, within a year (none: the schedule
    /// never fires, like `0 0 31 2 *`).
    pub fn next_after(&self, from: jiff::Timestamp) -> Option<jiff::Timestamp> {
        let start =
            from.as_second().div_euclid(60) + i64::from(from.as_second().rem_euclid(60) != 0);
        self.runs(start, 367)
            .next()
            .and_then(|m| jiff::Timestamp::from_second(m * 60).ok())
    }

    /// The latest run at or before `at`, within a year back (none: it did
    /// not run in that year).
    pub fn last_before(&self, at: jiff::Timestamp) -> Option<jiff::Timestamp> {
        let end = at.as_second().div_euclid(60);
        let of_day = self.minutes_of_day();
        let today = Schedule::day_of(end)?;
        (0..367)
            .filter_map(|i| today.checked_sub(jiff::Span::new().days(i)).ok())
            .filter(|d| self.runs_on(*d))
            .find_map(|d| {
                of_day
                    .iter()
                    .rev()
                    .filter_map(|m| Schedule::minute_of(d, *m))
                    .find(|m| *m <= end)
            })
            .and_then(|m| jiff::Timestamp::from_second(m * 60).ok())
    }

    /// Whether work on this schedule is due at `now`, its last run having
    /// started at `last` (seconds since the epoch; none: never run): never
    /// run, or not since the schedule's latest time.
    pub fn due(&self, last: Option<f64>, now: jiff::Timestamp) -> bool {
        match (last, self.last_before(now)) {
            (None, _) => true,
            (Some(l), Some(slot)) => l < slot.as_second() as f64,
            (Some(_), None) => false,
        }
    }

    /// The longest time between two runs over a year from `from`
    /// (wrapping to the first run of the next period); `None` if it never
    /// runs. Computed per day: the gaps inside a day it runs, and from its
    /// last run to the first of the next day it runs.
    pub fn longest_gap(&self, from: jiff::Timestamp) -> Option<jiff::SignedDuration> {
        let of_day = self.minutes_of_day();
        let (&first, &last) = (of_day.first()?, of_day.last()?);
        let inside = of_day.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        let start = Schedule::day_of(from.as_second().div_euclid(60))?;
        let days: Vec<i64> = (0..2 * 366)
            .filter(|i| {
                start
                    .checked_add(jiff::Span::new().days(*i))
                    .is_ok_and(|d| self.runs_on(d))
            })
            .collect();
        if days.is_empty() {
            return None;
        }
        // Over a year from the first day it runs, and on to the next.
        let mut worst = inside;
        for w in days.windows(2) {
            worst = worst.max((w[1] - w[0]) * 1440 - last + first);
            if w[0] - days[0] > 366 {
                break;
            }
        }
        if days.len() == 1 {
            worst = worst.max(2 * 366 * 1440);
        }
        Some(jiff::SignedDuration::from_mins(worst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn gaps_and_next_runs() {
        let h = |d: jiff::SignedDuration| d.as_secs() / 3600;
        let start = at("2026-01-01T00:00:00Z");
        assert_eq!(
            h(Schedule::parse("@hourly")
                .unwrap()
                .longest_gap(start)
                .unwrap()),
            1
        );
        assert_eq!(
            h(Schedule::parse("0 */6 * * *")
                .unwrap()
                .longest_gap(start)
                .unwrap()),
            6
        );
        assert_eq!(
            h(Schedule::parse("30 2 * * *")
                .unwrap()
                .longest_gap(start)
                .unwrap()),
            24
        );
        // Weekdays only: Friday 02:00 to Monday 02:00.
        assert_eq!(
            h(Schedule::parse("0 2 * * 1-5")
                .unwrap()
                .longest_gap(start)
                .unwrap()),
            72
        );
        // Monthly: the longest gap is a 31-day month.
        assert_eq!(
            h(Schedule::parse("@monthly")
                .unwrap()
                .longest_gap(start)
                .unwrap()),
            31 * 24
        );
        let s = Schedule::parse("*/15 * * * *").unwrap();
        assert_eq!(s.longest_gap(start).unwrap().as_secs(), 15 * 60);
        assert_eq!(
            s.next_after(at("2026-03-04T10:16:30Z")).unwrap(),
            at("2026-03-04T10:30:00Z")
        );
        // Day of month OR day of week when both are given.
        let s = Schedule::parse("0 0 1 * 1").unwrap();
        assert_eq!(
            s.next_after(at("2026-01-02T00:00:00Z")).unwrap(),
            at("2026-01-05T00:00:00Z")
        );
        assert!(Schedule::parse("0 0 31 2 *")
            .unwrap()
            .next_after(start)
            .is_none());
        assert_eq!(
            Schedule::parse("0 0 * * 7").unwrap().next_after(start),
            Schedule::parse("0 0 * * 0").unwrap().next_after(start)
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (bad, says) in [
            ("0 * * *", "five cron fields"),
            ("61 * * * *", "minute"),
            ("0 25 * * *", "hour"),
            ("0 0 0 * *", "day of month"),
            ("0 0 * 13 *", "month"),
            ("0 0 * * 8", "day of week"),
            ("*/0 * * * *", "step"),
            ("5-1 * * * *", "backwards"),
            ("@sometimes", "five cron fields"),
        ] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    /// The reference: minute by minute.
    fn brute_next(s: &Schedule, from: i64, limit: i64) -> Option<i64> {
        (from..from + limit).find(|m| {
            let t = jiff::Timestamp::from_second(m * 60)
                .unwrap()
                .to_zoned(jiff::tz::TimeZone::UTC)
                .datetime();
            s.runs_on(t.date())
                && s.minutes & (1u64 << t.minute()) != 0
                && s.hours & (1 << t.hour()) != 0
        })
    }

    proptest::proptest! {
        #[test]
        fn next_and_last_agree_with_a_minute_by_minute_walk(
            minute in proptest::sample::select(vec!["*", "0", "*/7", "5,35", "10-20/5"]),
            hour in proptest::sample::select(vec!["*", "3", "*/6", "1-4", "22,23"]),
            dom in proptest::sample::select(vec!["*", "1", "15-17", "31"]),
            month in proptest::sample::select(vec!["*", "2", "1-6"]),
            dow in proptest::sample::select(vec!["*", "1-5", "0", "6"]),
            at in 1_767_225_600i64..1_830_297_600,
        ) {
            let s = Schedule::parse(&format!("{minute} {hour} {dom} {month} {dow}")).unwrap();
            let from = jiff::Timestamp::from_second(at).unwrap();
            let start = at.div_euclid(60) + i64::from(at.rem_euclid(60) != 0);
            let want = brute_next(&s, start, 40 * 24 * 60);
            let got = s.next_after(from).map(|t| t.as_second() / 60);
            if let Some(w) = want {
                proptest::prop_assert_eq!(got, Some(w));
            }
            if let Some(last) = s.last_before(from) {
                let l = last.as_second() / 60;
                proptest::prop_assert!(l <= at.div_euclid(60));
                proptest::prop_assert_eq!(brute_next(&s, l, at.div_euclid(60) - l + 1), Some(l));
                proptest::prop_assert_eq!(brute_next(&s, l + 1, at.div_euclid(60) - l), None);
            }
        }

        #[test]
        fn every_minute_step_gives_its_gap(step in 1u32..60) {
            let s = Schedule::parse(&format!("*/{step} * * * *")).unwrap();
            let gap = s.longest_gap("2026-01-01T00:00:00Z".parse().unwrap()).unwrap().as_secs() as u32 / 60;
            // Or from the last run of an hour to the next hour's first.
            let last = 59 / step * step;
            proptest::prop_assert_eq!(gap, step.max(60 - last));
        }

        #[test]
        fn any_text_parses_or_errs_without_panic(s in "[ 0-9*/,@a-z-]{0,30}") {
            let _ = Schedule::parse(&s);
        }
    }
}
