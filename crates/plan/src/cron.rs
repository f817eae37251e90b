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

    fn matches(&self, t: &jiff::civil::DateTime) -> bool {
        let day = self.days & (1 << t.day()) != 0;
        let weekday = self.weekdays & (1 << t.weekday().to_sunday_zero_offset()) != 0;
        let day_ok = if self.either_day {
            day || weekday
        } else {
            day && weekday
        };
        self.minutes & (1 << t.minute()) != 0
            && self.hours & (1 << t.hour()) != 0
            && self.months & (1 << t.month()) != 0
            && day_ok
    }

    /// Every run in `[from, from + horizon)`, minute by minute (UTC).
    fn runs(&self, from: jiff::Timestamp, minutes: i64) -> impl Iterator<Item = i64> + '_ {
        let start = from.as_second().div_euclid(60);
        (start..start + minutes).filter(move |m| {
            jiff::Timestamp::from_second(m * 60)
                .map(|t| self.matches(&t.to_zoned(jiff::tz::TimeZone::UTC).datetime()))
                .unwrap_or(false)
        })
    }

    /// The next run at or after `from`, within a year (none: the schedule
    /// never fires, like `0 0 31 2 *`).
    pub fn next_after(&self, from: jiff::Timestamp) -> Option<jiff::Timestamp> {
        self.runs(from, 366 * 24 * 60)
            .next()
            .and_then(|m| jiff::Timestamp::from_second(m * 60).ok())
    }

    /// The latest run at or before `at`, within a year back (none: it did
    /// not run in that year).
    pub fn last_before(&self, at: jiff::Timestamp) -> Option<jiff::Timestamp> {
        let end = at.as_second().div_euclid(60);
        (end - 366 * 24 * 60..=end)
            .rev()
            .find(|m| {
                jiff::Timestamp::from_second(m * 60)
                    .map(|t| self.matches(&t.to_zoned(jiff::tz::TimeZone::UTC).datetime()))
                    .unwrap_or(false)
            })
            .and_then(|m| jiff::Timestamp::from_second(m * 60).ok())
    }

    /// The longest time between two runs over a year from `from`
    /// (wrapping to the first run of the next period); `None` if it never
    /// runs.
    pub fn longest_gap(&self, from: jiff::Timestamp) -> Option<jiff::SignedDuration> {
        let year = 366 * 24 * 60;
        let mut runs = self.runs(from, 2 * year);
        let first = runs.next()?;
        let mut prev = first;
        let mut worst = 0;
        for m in runs {
            worst = worst.max(m - prev);
            prev = m;
            if m - first > year {
                break;
            }
        }
        // One run in two years: the gap is at least the window.
        if prev == first {
            worst = 2 * year;
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

    proptest::proptest! {
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
