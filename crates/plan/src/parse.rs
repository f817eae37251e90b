//! Reading `lifeboat.toml`: the TOML parsed with the span of every key and
//! value, then walked once against the plan's schema, every problem kept
//! with its line and column — a syntax error, an unknown key (with the
//! nearest known one), a value of the wrong kind, a malformed duration or
//! schedule, a region or receiver named but not declared, an option that
//! does not fit the component's source.

use std::collections::BTreeMap;
use std::ops::Range;

use jiff::SignedDuration;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::objectives::streams_log;
use crate::{
    AlertKind, Check, Component, Ledger, Notifier, PasswordSource, Plan, Priority, Problem,
    Receiver, Region, Retention, Schedule, Tier, Verify,
};

type Value<'i> = Spanned<DeValue<'i>>;

struct Ctx<'t> {
    text: &'t str,
    problems: Vec<Problem>,
}

impl Ctx<'_> {
    fn at(&mut self, span: Range<usize>, message: String) {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.problems.push(Problem {
            line,
            column,
            message,
        });
    }

    fn line_of(&self, span: &Range<usize>) -> usize {
        self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    /// Unknown keys of `table` (in `place`), each with the nearest allowed one.
    fn only(&mut self, table: &DeTable<'_>, allowed: &[&str], place: &str) {
        for (k, _) in table.iter() {
            let key = k.get_ref().as_ref();
            if allowed.contains(&key) {
                continue;
            }
            let near = allowed
                .iter()
                .map(|a| (strsim::damerau_levenshtein(a, key), a))
                .min()
                .filter(|(d, a)| *d <= 2.max(a.len() / 3))
                .map(|(_, a)| format!(" (did you mean \"{a}\"?)"))
                .unwrap_or_else(|| format!(" (known: {})", allowed.join(", ")));
            self.at(k.span(), format!("unknown key \"{key}\" in {place}{near}"));
        }
    }

    fn string(&mut self, v: &Value<'_>, what: &str) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) if !s.trim().is_empty() => Some(s.to_string()),
            DeValue::String(_) => {
                self.at(v.span(), format!("{what} is empty"));
                None
            }
            _ => {
                self.at(v.span(), format!("{what} must be a string"));
                None
            }
        }
    }

    fn boolean(&mut self, v: &Value<'_>, what: &str) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.at(v.span(), format!("{what} must be true or false"));
                None
            }
        }
    }

    fn count(&mut self, v: &Value<'_>, what: &str) -> Option<u32> {
        let ok = matches!(v.get_ref(), DeValue::Integer(_));
        let n = ok
            .then(|| self.text[v.span()].replace('_', "").parse::<u32>().ok())
            .flatten();
        if n.is_none() {
            self.at(v.span(), format!("{what} must be a whole number from 0"));
        }
        n
    }

    fn duration(&mut self, v: &Value<'_>, what: &str) -> Option<SignedDuration> {
        let s = self.string(v, what)?;
        match s.parse::<SignedDuration>() {
            Ok(d) if d.is_positive() => Some(d),
            _ => {
                self.at(
                    v.span(),
                    format!(
                        "{what} {s:?} is not a duration (like \"30s\", \"15m\", \"4h\", \"1d\")"
                    ),
                );
                None
            }
        }
    }

    fn schedule(&mut self, v: &Value<'_>, what: &str) -> Option<Schedule> {
        let s = self.string(v, what)?;
        match Schedule::parse(&s) {
            Ok(s) => Some(s),
            Err(e) => {
                self.at(v.span(), format!("{what}: {e}"));
                None
            }
        }
    }

    fn table<'a, 'i>(&mut self, v: &'a Value<'i>, what: &str) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.at(v.span(), format!("{what} must be a table"));
                None
            }
        }
    }

    fn one_of<T: Copy>(&mut self, v: &Value<'_>, what: &str, choices: &[(&str, T)]) -> Option<T> {
        let s = self.string(v, what)?;
        let found = choices.iter().find(|(n, _)| *n == s).map(|(_, t)| *t);
        if found.is_none() {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            self.at(
                v.span(),
                format!("{what} {s:?} is not one of {}", names.join(", ")),
            );
        }
        found
    }
}

fn get<'a, 'i>(t: &'a DeTable<'i>, key: &str) -> Option<&'a Value<'i>> {
    t.iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v)
}

const SOURCES: &[&str] = &[
    "files://",
    "postgres://",
    "postgresql://",
    "mariadb://",
    "mysql://",
    "sqlite://",
    "redis://",
    "rediss://",
    "command:",
];

const PRIORITIES: [(&str, Priority); 5] = [
    ("infrastructure", Priority::Infrastructure),
    ("data", Priority::Data),
    ("critical-services", Priority::CriticalServices),
    ("supporting", Priority::Supporting),
    ("auxiliary", Priority::Auxiliary),
];

/// Parses and validates a plan; on any problem, every problem, in order.
pub fn parse(text: &str) -> Result<Plan, Vec<Problem>> {
    let mut ctx = Ctx {
        text,
        problems: vec![],
    };
    let (doc, errors) = DeTable::parse_recoverable(text);
    for e in &errors {
        let span = e.span().unwrap_or(0..0);
        ctx.at(span, format!("not valid TOML: {}", e.message().trim()));
    }
    // What a broken file would say past its syntax errors misleads.
    if !ctx.problems.is_empty() {
        return Err(ctx.problems);
    }
    let doc = doc.get_ref();
    ctx.only(
        doc,
        &["ledger", "regions", "components", "notify"],
        "the plan",
    );

    let ledger = match get(doc, "ledger").and_then(|v| ctx.table(v, "[ledger]")) {
        None => Ledger::Sqlite("lifeboat-ledger.db".into()),
        Some(t) => {
            ctx.only(t, &["path", "url"], "[ledger]");
            match (get(t, "path"), get(t, "url")) {
                (Some(_), Some(u)) => {
                    ctx.at(
                        u.span(),
                        "[ledger] takes path (SQLite) or url (PostgreSQL), not both".into(),
                    );
                    Ledger::Sqlite(String::new())
                }
                (_, Some(u)) => {
                    let url = ctx.string(u, "ledger url").unwrap_or_default();
                    if !url.is_empty()
                        && !url.starts_with("postgres://")
                        && !url.starts_with("postgresql://")
                    {
                        ctx.at(u.span(), format!("ledger url {url:?} must be postgres://… (a shared ledger); for a file give path"));
                    }
                    Ledger::Postgres(url)
                }
                (Some(p), None) => Ledger::Sqlite(ctx.string(p, "ledger path").unwrap_or_default()),
                (None, None) => Ledger::Sqlite("lifeboat-ledger.db".into()),
            }
        }
    };

    let mut regions = BTreeMap::new();
    let region_table = get(doc, "regions").and_then(|v| ctx.table(v, "[regions]"));
    match region_table {
        None => ctx.at(
            0..0,
            "the plan declares no region: add [regions.primary] with its repository".into(),
        ),
        Some(t) => {
            for (name, v) in t.iter() {
                let name = name.get_ref().to_string();
                let place = format!("[regions.{name}]");
                let Some(r) = ctx.table(v, &place) else {
                    continue;
                };
                ctx.only(
                    r,
                    &[
                        "repository",
                        "password_file",
                        "password_command",
                        "password_env",
                    ],
                    &place,
                );
                let repository = match get(r, "repository") {
                    Some(v) => ctx.string(v, "repository").unwrap_or_default(),
                    None => {
                        ctx.at(v.span(), format!("{place} has no repository"));
                        String::new()
                    }
                };
                let given: Vec<(&str, &Value<'_>)> =
                    ["password_file", "password_command", "password_env"]
                        .into_iter()
                        .filter_map(|k| get(r, k).map(|v| (k, v)))
                        .collect();
                let password = match given.as_slice() {
                    [(k, v)] => {
                        let s = ctx.string(v, k).unwrap_or_default();
                        match *k {
                            "password_file" => PasswordSource::File(s),
                            "password_command" => PasswordSource::Command(s),
                            _ => PasswordSource::Env(s),
                        }
                    }
                    [] => {
                        ctx.at(v.span(), format!("{place} has no password source: give password_file, password_command or password_env"));
                        PasswordSource::Env(String::new())
                    }
                    [_, (_, second), ..] => {
                        ctx.at(
                            second.span(),
                            format!("{place} gives more than one password source; keep one"),
                        );
                        PasswordSource::Env(String::new())
                    }
                };
                regions.insert(
                    name,
                    Region {
                        repository,
                        password,
                    },
                );
            }
        }
    }

    let mut notify = BTreeMap::new();
    if let Some(t) = get(doc, "notify").and_then(|v| ctx.table(v, "[notify]")) {
        for (name, v) in t.iter() {
            let name = name.get_ref().to_string();
            let place = format!("[notify.{name}]");
            let Some(r) = ctx.table(v, &place) else {
                continue;
            };
            ctx.only(
                r,
                &[
                    "kind",
                    "url",
                    "command",
                    "alerts",
                    "repeat",
                    "replication_lag",
                ],
                &place,
            );
            let kind = match get(r, "kind") {
                Some(k) => ctx.one_of(
                    k,
                    "kind",
                    &[("alertmanager", 0), ("webhook", 1), ("command", 2)],
                ),
                None => {
                    ctx.at(
                        v.span(),
                        format!("{place} has no kind (alertmanager, webhook or command)"),
                    );
                    None
                }
            };
            let need = |ctx: &mut Ctx<'_>, key: &str| match get(r, key) {
                Some(v) => ctx.string(v, key).unwrap_or_default(),
                None => {
                    ctx.at(v.span(), format!("{place} needs {key}"));
                    String::new()
                }
            };
            let receiver = match kind {
                Some(0) => Receiver::Alertmanager {
                    url: need(&mut ctx, "url"),
                },
                Some(1) => Receiver::Webhook {
                    url: need(&mut ctx, "url"),
                },
                Some(_) => Receiver::Command {
                    run: need(&mut ctx, "command"),
                },
                None => continue,
            };
            if let Receiver::Alertmanager { url } | Receiver::Webhook { url } = &receiver {
                if !url.is_empty() && !url.starts_with("http://") {
                    let at = get(r, "url").map_or(v.span(), |u| u.span());
                    ctx.at(
                        at,
                        format!("{place} url {url:?}: only http:// is supported yet (for https, use kind = \"command\" with curl)"),
                    );
                }
            }
            let mut alerts = vec![];
            match get(r, "alerts").map(|a| (a, a.get_ref())) {
                None => alerts = AlertKind::ALL.to_vec(),
                Some((_, DeValue::Array(items))) => {
                    let known: Vec<(&str, usize)> = AlertKind::ALL
                        .iter()
                        .enumerate()
                        .map(|(i, k)| (k.key(), i))
                        .collect();
                    for item in items.iter() {
                        if let Some(i) = ctx.one_of(item, "alerts", &known) {
                            alerts.push(AlertKind::ALL[i]);
                        }
                    }
                }
                Some((a, _)) => ctx.at(
                    a.span(),
                    "alerts must be a list, like [\"backup_failed\", \"outside_rpo\"]".to_string(),
                ),
            }
            let repeat = get(r, "repeat").and_then(|d| ctx.duration(d, "repeat"));
            let replication_lag =
                get(r, "replication_lag").and_then(|d| ctx.duration(d, "replication_lag"));
            notify.insert(
                name,
                Notifier {
                    to: receiver,
                    alerts,
                    repeat,
                    replication_lag,
                },
            );
        }
    }

    let mut components = vec![];
    match get(doc, "components").and_then(|v| ctx.table(v, "[components]")) {
        None => ctx.at(
            0..0,
            "the plan declares no component: add [components.NAME] with its tier and source".into(),
        ),
        Some(t) => {
            for (name, v) in t.iter() {
                if let Some(c) = component(&mut ctx, name, v, &regions) {
                    components.push(c);
                }
            }
        }
    }
    // The parser's tables are sorted by key; the plan keeps the file's order.
    components.sort_by_key(|c| c.line);
    ctx.problems.sort_by_key(|p| (p.line, p.column));
    if ctx.problems.is_empty() {
        Ok(Plan {
            ledger,
            regions,
            components,
            notify,
        })
    } else {
        Err(ctx.problems)
    }
}

const COMPONENT_KEYS: &[&str] = &[
    "tier",
    "rto",
    "rpo",
    "source",
    "schedule",
    "continuous",
    "physical",
    "region",
    "replicate_to",
    "retention",
    "priority",
    "owner",
    "verify",
];

fn component(
    ctx: &mut Ctx<'_>,
    name: &Spanned<std::borrow::Cow<'_, str>>,
    v: &Value<'_>,
    regions: &BTreeMap<String, Region>,
) -> Option<Component> {
    let id = name.get_ref().to_string();
    let place = format!("[components.{id}]");
    let t = ctx.table(v, &place)?;
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        ctx.at(
            name.span(),
            format!("component name {id:?}: use letters, digits, - and _"),
        );
    }
    ctx.only(t, COMPONENT_KEYS, &place);
    let tier = match get(t, "tier") {
        Some(v) => ctx.one_of(v, "tier", &Tier::ALL),
        None => {
            ctx.at(
                v.span(),
                format!("{place} has no tier (critical, high, medium or low)"),
            );
            None
        }
    };
    let (rpo_default, rto_default) = tier.unwrap_or(Tier::Low).defaults();
    let rpo = get(t, "rpo")
        .and_then(|v| ctx.duration(v, "rpo"))
        .unwrap_or(rpo_default);
    let rto = get(t, "rto")
        .and_then(|v| ctx.duration(v, "rto"))
        .unwrap_or(rto_default);
    let source = match get(t, "source") {
        Some(v) => {
            let s = ctx.string(v, "source").unwrap_or_default();
            if !s.is_empty() && !SOURCES.iter().any(|p| s.starts_with(p)) {
                ctx.at(v.span(), format!("source {s:?}: use files:///PATH, postgres://, mariadb://, sqlite:///PATH, redis:// or command:CMD"));
            }
            s
        }
        None => {
            ctx.at(
                v.span(),
                format!("{place} has no source (files:///PATH, postgres://…, …)"),
            );
            String::new()
        }
    };
    let schedule = get(t, "schedule").and_then(|v| ctx.schedule(v, "schedule"));
    let continuous = match get(t, "continuous") {
        Some(v) => {
            let c = ctx.boolean(v, "continuous").unwrap_or(false);
            if c && !source.is_empty() && !streams_log(&source) {
                ctx.at(v.span(), "continuous = true streams a transaction log: only postgres:// (WAL) and mariadb:// (binary logs) sources have one".into());
            }
            c
        }
        None => false,
    };
    let physical = match get(t, "physical") {
        Some(v) => {
            let p = ctx.boolean(v, "physical").unwrap_or(false);
            if p && !source.is_empty() && !streams_log(&source) {
                ctx.at(
                    v.span(),
                    "physical = true is for postgres:// and mariadb:// sources".into(),
                );
            }
            p
        }
        None => false,
    };
    let known = |ctx: &mut Ctx<'_>, r: &Value<'_>, what: &str| -> Option<String> {
        let s = ctx.string(r, what)?;
        if !regions.contains_key(&s) && !regions.is_empty() {
            let names: Vec<&str> = regions.keys().map(String::as_str).collect();
            ctx.at(
                r.span(),
                format!(
                    "{what} {s:?} is not a declared region ({})",
                    names.join(", ")
                ),
            );
        }
        Some(s)
    };
    let region = match get(t, "region") {
        Some(r) => known(ctx, r, "region").unwrap_or_default(),
        None if regions.len() == 1 => regions.keys().next().cloned().unwrap_or_default(),
        None => {
            if regions.contains_key("primary") {
                "primary".into()
            } else {
                if !regions.is_empty() {
                    ctx.at(v.span(), format!("{place} names no region, and the plan has no region called primary: give region = \"…\""));
                }
                String::new()
            }
        }
    };
    let mut replicate_to = vec![];
    if let Some(r) = get(t, "replicate_to") {
        match r.get_ref() {
            DeValue::Array(items) => {
                for item in items.iter() {
                    if let Some(s) = known(ctx, item, "replicate_to") {
                        if s == region {
                            ctx.at(
                                item.span(),
                                format!(
                                    "replicate_to names {s:?}, the region backups are written to"
                                ),
                            );
                        }
                        replicate_to.push(s);
                    }
                }
            }
            _ => ctx.at(
                r.span(),
                "replicate_to must be a list of regions, like [\"dr\"]".into(),
            ),
        }
    }
    let mut retention = Retention::default();
    if let Some(r) = get(t, "retention").and_then(|r| ctx.table(r, "retention")) {
        ctx.only(
            r,
            &[
                "last", "hourly", "daily", "weekly", "monthly", "yearly", "within",
            ],
            &format!("{place} retention"),
        );
        retention = Retention {
            last: get(r, "last").and_then(|v| ctx.count(v, "last")),
            hourly: get(r, "hourly").and_then(|v| ctx.count(v, "hourly")),
            daily: get(r, "daily").and_then(|v| ctx.count(v, "daily")),
            weekly: get(r, "weekly").and_then(|v| ctx.count(v, "weekly")),
            monthly: get(r, "monthly").and_then(|v| ctx.count(v, "monthly")),
            yearly: get(r, "yearly").and_then(|v| ctx.count(v, "yearly")),
            within: get(r, "within").and_then(|v| ctx.duration(v, "within")),
        };
    }
    let priority = get(t, "priority")
        .and_then(|v| ctx.one_of(v, "priority", &PRIORITIES))
        .unwrap_or(Priority::Supporting);
    let owner = get(t, "owner").and_then(|v| ctx.string(v, "owner"));
    let verify = get(t, "verify").and_then(|v| verify(ctx, v, &place));
    Some(Component {
        name: id,
        tier: tier?,
        rto,
        rpo,
        source,
        schedule,
        continuous,
        physical,
        region,
        replicate_to,
        retention,
        priority,
        owner,
        verify,
        line: ctx.line_of(&name.span()),
    })
}

fn verify(ctx: &mut Ctx<'_>, v: &Value<'_>, place: &str) -> Option<Verify> {
    let place = format!("{place} verify");
    let t = ctx.table(v, &place)?;
    ctx.only(t, &["schedule", "target", "checks"], &place);
    let schedule = get(t, "schedule").and_then(|v| ctx.schedule(v, "verify schedule"));
    let target = match get(t, "target") {
        Some(v) => ctx.string(v, "verify target").unwrap_or_default(),
        None => {
            ctx.at(
                v.span(),
                format!("{place} has no target (a scratch directory or database server URL)"),
            );
            String::new()
        }
    };
    let mut checks = vec![];
    if let Some(c) = get(t, "checks") {
        let DeValue::Array(items) = c.get_ref() else {
            ctx.at(
                c.span(),
                "checks must be a list, like [{ kind = \"counts\" }]".into(),
            );
            return None;
        };
        for item in items.iter() {
            let Some(ct) = ctx.table(item, "a check") else {
                continue;
            };
            ctx.only(ct, &["kind", "query", "expect", "run"], "a check");
            let Some(kind) = get(ct, "kind").and_then(|k| {
                ctx.one_of(
                    k,
                    "check kind",
                    &[("counts", 0), ("integrity", 1), ("sql", 2), ("command", 3)],
                )
            }) else {
                if get(ct, "kind").is_none() {
                    ctx.at(
                        item.span(),
                        "a check needs kind (counts, integrity, sql or command)".into(),
                    );
                }
                continue;
            };
            let need = |ctx: &mut Ctx<'_>, key: &str| match get(ct, key) {
                Some(v) => ctx.string(v, key).unwrap_or_default(),
                None => {
                    ctx.at(item.span(), format!("this check needs {key}"));
                    String::new()
                }
            };
            checks.push(match kind {
                0 => Check::Counts,
                1 => Check::Integrity,
                2 => Check::Sql {
                    query: need(ctx, "query"),
                    expect: need(ctx, "expect"),
                },
                _ => Check::Command {
                    run: need(ctx, "run"),
                },
            });
        }
    }
    Some(Verify {
        schedule,
        target,
        checks,
    })
}
