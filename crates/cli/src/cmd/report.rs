//! `lifeboat report`: the plan as a compliance report — per component its
//! objectives and posture now (what `status` shows) and its history from
//! the ledger (the last verifications with their restore times, the last
//! backups with their sizes and durations, its copies) — as Markdown, JSON
//! or one self-contained HTML page. One document is built, then written in
//! the format asked for.

use std::fmt::Write as _;

use anyhow::Result;
use lifeboat_plan::objectives;
use serde_json::{json, Value};

use crate::args::ReportArgs;
use crate::cmd::plan::{ledger, load};
use crate::cmd::Ctx;
use crate::exit;

pub fn run(ctx: &Ctx, a: ReportArgs) -> Result<u8> {
    let (plan, path) = load(ctx)?;
    let l = ledger(&plan, &path)?;
    let (mut rows, over) = crate::cmd::status::posture(&plan, &l)?;
    for (c, r) in plan.components.iter().zip(&mut rows) {
        let verifications: Vec<Value> = l
            .verifications(&c.name, a.last)?
            .into_iter()
            .map(|v| {
                json!({
                    "at": v.at,
                    "result": v.result,
                    "restore_seconds": v.restore_seconds,
                    "within_rto": v.restore_seconds.map(|s| s <= c.rto.as_secs_f64()),
                    "snapshot": v.snapshot,
                })
            })
            .collect();
        r["verifications"] = json!(verifications);
        r["backups"] = json!(l.runs(&c.name, "backup", a.last)?);
        r["copies"] = json!(l.runs(&c.name, "copy", a.last)?);
    }
    let failed_verifications = rows
        .iter()
        .filter(|r| r["last_verification"]["result"] == "failed")
        .count();
    let doc = json!({
        "plan": path.display().to_string(),
        "generated_at": jiff::Timestamp::now(),
        "lifeboat": env!("CARGO_PKG_VERSION"),
        "components_total": rows.len(),
        "outside_rpo": over,
        "failed_verifications": failed_verifications,
        "components": rows,
    });
    let text = match a.format.as_str() {
        "json" => serde_json::to_string_pretty(&doc)? + "\n",
        "html" => html(&doc),
        _ => markdown(&doc),
    };
    match &a.output {
        Some(file) => {
            std::fs::write(file, &text).map_err(|e| {
                anyhow::anyhow!(
                    "cannot write the report to {}: {}",
                    file.display(),
                    lifeboat_repo::error::io_words(&e)
                )
            })?;
            if !ctx.global.quiet {
                ctx.out.print(
                    &json!({ "report": file.display().to_string(), "format": a.format }),
                    || format!("wrote the {} report to {}\n", a.format, file.display()),
                )?;
            }
        }
        None => {
            #[allow(clippy::print_stdout)]
            {
                print!("{text}");
            }
        }
    }
    Ok(exit::SUCCESS)
}

/// Seconds in words (`4h`, `15m 30s`); `-` for none.
fn dur(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |s| {
        objectives::words(jiff::SignedDuration::from_secs(s.round() as i64))
    })
}

/// A time as `2026-12-08 02:00 UTC`; `-` for none.
fn when(v: &Value) -> String {
    v.as_f64()
        .and_then(|s| jiff::Timestamp::from_microsecond((s * 1e6) as i64).ok())
        .map_or("-".into(), |t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// The report's tables, as (title, header, rows) — shared by Markdown and
/// HTML.
type Table = (String, Vec<&'static str>, Vec<Vec<String>>);

fn tables(doc: &Value) -> (Vec<String>, Vec<Table>) {
    let comps = doc["components"].as_array().cloned().unwrap_or_default();
    let facts = vec![
        format!("Plan: {}", text(&doc["plan"])),
        format!(
            "Generated: {} by lifeboat {}",
            text(&doc["generated_at"]),
            text(&doc["lifeboat"])
        ),
        format!(
            "Components: {}; outside their RPO: {}; last verification failed: {}",
            doc["components_total"], doc["outside_rpo"], doc["failed_verifications"]
        ),
    ];
    let mut out = vec![];
    let summary = comps
        .iter()
        .map(|r| {
            let v = &r["last_verification"];
            let copies: Vec<String> = r["replication"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| format!("{} {}", text(&c["region"]), dur(&c["lag_seconds"])))
                .collect();
            vec![
                text(&r["component"]),
                text(&r["tier"]),
                dur(&r["rpo_seconds"]),
                dur(&r["achievable_rpo_seconds"]),
                format!(
                    "{} ({})",
                    dur(&r["data_loss_window_seconds"]),
                    if r["within_rpo"] == true {
                        "met"
                    } else {
                        "NOT MET"
                    }
                ),
                dur(&r["rto_seconds"]),
                match v["result"].as_str() {
                    Some(res) => format!("{res} {}", when(&v["at"])),
                    None => "never".into(),
                },
                dur(&v["restore_seconds"]),
                if copies.is_empty() {
                    "-".into()
                } else {
                    copies.join(", ")
                },
            ]
        })
        .collect();
    out.push((
        "Objectives and posture".to_string(),
        vec![
            "component",
            "tier",
            "RPO",
            "achievable RPO",
            "data-loss window",
            "RTO",
            "last verification",
            "restore time",
            "copies (lag)",
        ],
        summary,
    ));
    for r in &comps {
        let name = text(&r["component"]);
        let rto = r["rto_seconds"].as_f64().unwrap_or(0.0);
        let verifications = r["verifications"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                vec![
                    when(&v["at"]),
                    text(&v["result"]),
                    dur(&v["restore_seconds"]),
                    match v["restore_seconds"].as_f64() {
                        Some(s) if s <= rto => "yes".into(),
                        Some(_) => "NO".into(),
                        None => "-".into(),
                    },
                    v["snapshot"]
                        .as_str()
                        .map_or("-".into(), |s| s[..s.len().min(8)].to_string()),
                ]
            })
            .collect();
        out.push((
            format!("{name}: verifications"),
            vec!["at", "result", "restore time", "within RTO", "snapshot"],
            verifications,
        ));
        let runs = |key: &str| -> Vec<Vec<String>> {
            r[key]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| {
                    let took = match (b["started"].as_f64(), b["ended"].as_f64()) {
                        (Some(s), Some(e)) => dur(&json!(e - s)),
                        _ => "-".into(),
                    };
                    vec![
                        when(&b["started"]),
                        text(&b["region"]),
                        match b["ok"].as_bool() {
                            Some(true) => "ok".into(),
                            Some(false) => format!("FAILED: {}", text(&b["error"])),
                            None => "did not end".into(),
                        },
                        b["bytes"].as_u64().map_or("-".into(), crate::ui::bytes),
                        took,
                    ]
                })
                .collect()
        };
        out.push((
            format!("{name}: backups"),
            vec!["started", "region", "result", "bytes read", "took"],
            runs("backups"),
        ));
        if r["replication"].as_array().is_some_and(|a| !a.is_empty()) {
            out.push((
                format!("{name}: copies"),
                vec!["started", "to", "result", "bytes sent", "took"],
                runs("copies"),
            ));
        }
    }
    (facts, out)
}

fn markdown(doc: &Value) -> String {
    let (facts, tables) = tables(doc);
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut t = String::from("# lifeboat DR report\n\n");
    for f in facts {
        let _ = writeln!(t, "- {}", cell(&f));
    }
    for (title, head, rows) in tables {
        let _ = write!(t, "\n## {}\n\n", cell(&title));
        if rows.is_empty() {
            t += "none recorded\n";
            continue;
        }
        let _ = writeln!(t, "| {} |", head.join(" | "));
        let _ = writeln!(t, "|{}", "---|".repeat(head.len()));
        for r in rows {
            let cells: Vec<String> = r.iter().map(|c| cell(c)).collect();
            let _ = writeln!(t, "| {} |", cells.join(" | "));
        }
    }
    t
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(doc: &Value) -> String {
    let (facts, tables) = tables(doc);
    let mut t = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>lifeboat DR report</title>\n<style>\nbody{font-family:system-ui,sans-serif;margin:2em;color:#222}\ntable{border-collapse:collapse;margin:.5em 0 1.5em}\nth,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}\nth{background:#f3f3f3}\n.bad{color:#b00;font-weight:bold}\n</style>\n</head>\n<body>\n<h1>lifeboat DR report</h1>\n<ul>\n",
    );
    for f in facts {
        let _ = writeln!(t, "<li>{}</li>", escape(&f));
    }
    t += "</ul>\n";
    for (title, head, rows) in tables {
        let _ = writeln!(t, "<h2>{}</h2>", escape(&title));
        if rows.is_empty() {
            t += "<p>none recorded</p>\n";
            continue;
        }
        t += "<table>\n<tr>";
        for h in head {
            let _ = write!(t, "<th>{}</th>", escape(h));
        }
        t += "</tr>\n";
        for r in rows {
            t += "<tr>";
            for c in r {
                let bad = c.contains("NOT MET")
                    || c == "NO"
                    || c.starts_with("FAILED")
                    || c.starts_with("failed");
                let _ = write!(
                    t,
                    "<td{}>{}</td>",
                    if bad { " class=\"bad\"" } else { "" },
                    escape(&c)
                );
            }
            t += "</tr>\n";
        }
        t += "</table>\n";
    }
    t + "</body>\n</html>\n"
}
