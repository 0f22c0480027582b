//! `report.md` and `report.html` of a run: the headline metrics, pass rate
//! by channel × mood (heatmap), tone-score distribution per brand, latency
//! histogram, and every failure with its violations.
//!
//! The HTML is one self-contained file — inline CSS, charts as inline SVG,
//! no scripts, fonts or images from anywhere — so it opens from a CI
//! artifact or an air-gapped laptop. Everything from a result line is
//! HTML-escaped (drafts are model output and messages may be injection
//! attempts). Both reports are pure functions of the summary and the result
//! lines, so they can be regenerated from a run directory.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use super::run::{CaseResult, RunError, Summary};

pub fn write(dir: &Path, s: &Summary, results: &[CaseResult]) -> Result<(), RunError> {
    for (name, text) in [("report.md", markdown(s, results)), ("report.html", html(s, results))] {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|source| RunError::Io { path: p.display().to_string(), source })?;
    }
    Ok(())
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn opt_pct(x: Option<f64>) -> String {
    x.map(pct).unwrap_or_else(|| "–".into())
}

/// (channels, moods) present in the heatmap, moods in the style book's order.
fn axes(s: &Summary) -> (Vec<String>, Vec<String>) {
    const ORDER: [&str; 7] = ["angry", "frustrated", "anxious", "confused", "neutral", "happy", "grateful"];
    let mut ch = BTreeSet::new();
    let mut moods = BTreeSet::new();
    for k in s.by_channel_mood.keys() {
        if let Some((c, m)) = k.split_once('/') {
            ch.insert(c.to_string());
            moods.insert(m.to_string());
        }
    }
    let mut m: Vec<String> = ORDER.iter().filter(|x| moods.contains(**x)).map(|x| x.to_string()).collect();
    m.extend(moods.into_iter().filter(|x| !ORDER.contains(&x.as_str())));
    (ch.into_iter().collect(), m)
}

fn metrics_rows(s: &Summary) -> Vec<(&'static str, String)> {
    vec![
        ("cases (× repeats)", s.cases.to_string()),
        ("passed", s.passed.to_string()),
        ("pass_rate", pct(s.pass_rate)),
        ("error_rate", pct(s.error_rate)),
        ("fallback_rate", pct(s.fallback_rate)),
        ("mean_tone", format!("{:.1}", s.mean_tone)),
        ("mood_accuracy", opt_pct(s.mood_accuracy)),
        ("language_accuracy", opt_pct(s.language_accuracy)),
        ("latency p50 / p95 / max", format!("{:.0} / {:.0} / {:.0} ms", s.latency_ms.p50, s.latency_ms.p95, s.latency_ms.max)),
    ]
}

fn failed(results: &[CaseResult]) -> Vec<&CaseResult> {
    results.iter().filter(|r| !r.passed).collect()
}

fn md_cell(t: &str) -> String {
    t.replace('|', "\\|").replace('\n', " ")
}

pub fn markdown(s: &Summary, results: &[CaseResult]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Eval run {}\n", s.run_id);
    let _ = writeln!(o, "Suites: {} · model `{}` · seed {} · repeat {} · {} → {}{}\n", s.suites.join(", "), s.model, s.seed, s.repeat, s.started, s.finished, s.load_avg.map(|l| format!(" · load avg {:.2} {:.2} {:.2}", l[0], l[1], l[2])).unwrap_or_default());
    let _ = writeln!(o, "| metric | value |\n|---|---|");
    for (k, v) in metrics_rows(s) {
        let _ = writeln!(o, "| {k} | {v} |");
    }
    if !s.thresholds.is_empty() {
        let _ = writeln!(o, "\n## Thresholds\n\n| metric | fails when | value | actual | |\n|---|---|---|---|---|");
        for t in &s.thresholds {
            let _ = writeln!(o, "| {} | {} | {} | {} | {} |", t.metric, t.fail, t.value, t.actual.map(|a| format!("{a}")).unwrap_or_else(|| "null".into()), if t.ok { "ok" } else { "**MISSED**" });
        }
    }
    let (chs, moods) = axes(s);
    let _ = writeln!(o, "\n## Pass rate by channel × mood\n\n| channel | {} |\n|---|{}", moods.join(" | "), "---|".repeat(moods.len()));
    for c in &chs {
        let cells: Vec<String> = moods
            .iter()
            .map(|m| match s.by_channel_mood.get(&format!("{c}/{m}")) {
                Some(cell) if cell.cases > 0 => format!("{:.0}% ({}/{})", 100.0 * cell.passed as f64 / cell.cases as f64, cell.passed, cell.cases),
                _ => "–".into(),
            })
            .collect();
        let _ = writeln!(o, "| {c} | {} |", cells.join(" | "));
    }
    let _ = writeln!(o, "\n## By brand\n\n| brand | cases | passed | mean tone |\n|---|---|---|---|");
    for (b, st) in &s.by_brand {
        let _ = writeln!(o, "| {b} | {} | {} | {:.1} |", st.cases, st.passed, st.mean_tone);
    }
    if !s.mean_parts.is_empty() {
        let _ = writeln!(o, "\n## Tone score parts (mean)\n\n| part | mean |\n|---|---|");
        for (k, v) in &s.mean_parts {
            let _ = writeln!(o, "| {k} | {v:.1} |");
        }
    }
    if !s.failures_by_assert.is_empty() {
        let _ = writeln!(o, "\n## Failures by assertion\n\n| assertion | failures |\n|---|---|");
        for (k, v) in &s.failures_by_assert {
            let _ = writeln!(o, "| {k} | {v} |");
        }
    }
    let f = failed(results);
    let _ = writeln!(o, "\n## Failures ({})\n", f.len());
    for r in f {
        let _ = writeln!(o, "### {} ({}/{}/{}{})\n", r.item(), r.brand, r.channel, r.mood_expected.as_deref().unwrap_or("?"), if r.fallback { ", fallback" } else { "" });
        let _ = writeln!(o, "- message: {}", md_cell(&r.message));
        let _ = writeln!(o, "- draft: {}", md_cell(&r.draft));
        if let Some(e) = &r.error {
            let _ = writeln!(o, "- error: {}", md_cell(e));
        }
        for x in &r.failures {
            let _ = writeln!(o, "- failed `{}`: {}", x.assert, md_cell(&x.message));
        }
        for v in &r.violations {
            let _ = writeln!(o, "- {} {}: {}", v.level, v.rule, md_cell(&v.message));
        }
        let _ = writeln!(o);
    }
    o
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(t: &str) -> String {
    let mut o = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Red (0) → amber (0.5) → green (1).
fn rate_colour(r: f64) -> String {
    let r = r.clamp(0.0, 1.0);
    let (h, s, l) = (120.0 * r, 60.0, 45.0 + 10.0 * (1.0 - (2.0 * r - 1.0).abs()));
    format!("hsl({h:.0},{s:.0}%,{l:.0}%)")
}

fn heatmap_svg(s: &Summary) -> String {
    let (chs, moods) = axes(s);
    let (cw, chh, left, top) = (86.0, 28.0, 130.0, 30.0);
    let w = left + cw * moods.len() as f64 + 10.0;
    let h = top + chh * chs.len() as f64 + 10.0;
    let mut o = format!(r#"<svg class="chart" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" role="img" aria-label="pass rate by channel and mood">"#);
    for (j, m) in moods.iter().enumerate() {
        let _ = write!(o, r#"<text x="{:.0}" y="20" text-anchor="middle">{}</text>"#, left + cw * (j as f64 + 0.5), esc(m));
    }
    for (i, c) in chs.iter().enumerate() {
        let y = top + chh * i as f64;
        let _ = write!(o, r#"<text x="{:.0}" y="{:.0}" text-anchor="end">{}</text>"#, left - 6.0, y + chh * 0.65, esc(c));
        for (j, m) in moods.iter().enumerate() {
            let x = left + cw * j as f64;
            match s.by_channel_mood.get(&format!("{c}/{m}")).filter(|c| c.cases > 0) {
                Some(cell) => {
                    let r = cell.passed as f64 / cell.cases as f64;
                    let _ = write!(
                        o,
                        r#"<rect x="{x:.0}" y="{y:.0}" width="{:.0}" height="{:.0}" fill="{}"><title>{c} × {m}: {}/{} passed</title></rect><text x="{:.0}" y="{:.0}" text-anchor="middle" class="cell">{:.0}% ({})</text>"#,
                        cw - 2.0,
                        chh - 2.0,
                        rate_colour(r),
                        cell.passed,
                        cell.cases,
                        x + cw / 2.0,
                        y + chh * 0.65,
                        100.0 * r,
                        cell.cases
                    );
                }
                None => {
                    let _ = write!(o, r##"<rect x="{x:.0}" y="{y:.0}" width="{:.0}" height="{:.0}" fill="#eee"/>"##, cw - 2.0, chh - 2.0);
                }
            }
        }
    }
    o.push_str("</svg>");
    o
}

/// A bar chart of counts with labelled bins.
fn bars_svg(title: &str, labels: &[String], counts: &[usize], colour: &str) -> String {
    let (bw, ph, left, top, bottom) = (34.0, 110.0, 34.0, 22.0, 34.0);
    let w = left + bw * counts.len() as f64 + 10.0;
    let h = top + ph + bottom;
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let mut o = format!(r#"<svg class="chart" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" role="img" aria-label="{}"><text x="{left:.0}" y="14" class="title">{}</text>"#, esc(title), esc(title));
    let _ = write!(o, r##"<line x1="{left:.0}" y1="{:.0}" x2="{:.0}" y2="{:.0}" stroke="#999"/>"##, top + ph, w - 10.0, top + ph);
    let _ = write!(o, r#"<text x="{:.0}" y="{:.0}" text-anchor="end">{}</text>"#, left - 4.0, top + 8.0, max as usize);
    for (i, (&c, l)) in counts.iter().zip(labels).enumerate() {
        let bh = ph * c as f64 / max;
        let x = left + bw * i as f64;
        let _ = write!(o, r#"<rect x="{:.0}" y="{:.1}" width="{:.0}" height="{bh:.1}" fill="{colour}"><title>{}: {c}</title></rect>"#, x + 2.0, top + ph - bh, bw - 4.0, esc(l));
        if c > 0 {
            let _ = write!(o, r#"<text x="{:.0}" y="{:.0}" text-anchor="middle" class="small">{c}</text>"#, x + bw / 2.0, top + ph - bh - 3.0);
        }
        let _ = write!(o, r#"<text x="{:.0}" y="{:.0}" text-anchor="middle" class="small">{}</text>"#, x + bw / 2.0, top + ph + 14.0, esc(l));
    }
    o.push_str("</svg>");
    o
}

fn tone_histograms(results: &[CaseResult]) -> BTreeMap<String, [usize; 10]> {
    let mut m: BTreeMap<String, [usize; 10]> = BTreeMap::new();
    for r in results {
        if let Some(s) = &r.score {
            let bin = ((s.overall / 10.0).floor() as usize).min(9);
            m.entry(r.brand.clone()).or_default()[bin] += 1;
        }
    }
    m
}

/// (bin labels, counts) of latencies over 12 equal bins from 0 to the max.
fn latency_histogram(results: &[CaseResult]) -> (Vec<String>, Vec<usize>) {
    let lat: Vec<f64> = results.iter().filter(|r| r.error.is_none()).map(|r| r.latency_ms).collect();
    let max = lat.iter().copied().fold(0.0, f64::max);
    let bins = 12;
    let width = if max > 0.0 { max / bins as f64 } else { 1.0 };
    let mut counts = vec![0; bins];
    for l in lat {
        counts[((l / width) as usize).min(bins - 1)] += 1;
    }
    let labels = (0..bins).map(|i| format!("{:.1}", (i as f64 + 1.0) * width / 1000.0)).collect();
    (labels, counts)
}

const CSS: &str = "body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}table{border-collapse:collapse;margin:8px 0}\
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f5f5f5}.chart{display:inline-block;margin:4px 12px 4px 0}\
.chart text{font-size:12px;fill:#333}.chart text.cell{fill:#fff;font-weight:600}.chart text.small{font-size:10px}.chart text.title{font-weight:600}\
.ok{color:#1a7f37}.miss{color:#c62828;font-weight:600}.fail{border:1px solid #e3c0c0;background:#fffafa;margin:10px 0;padding:8px 12px;border-radius:6px}\
.draft{white-space:pre-wrap;background:#f6f8fa;padding:6px;border-radius:4px}.meta{color:#666}code{background:#f3f3f3;padding:0 3px}";

pub fn html(s: &Summary, results: &[CaseResult]) -> String {
    let mut o = String::new();
    let _ = write!(o, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Eval run {}</title><style>{CSS}</style></head><body>", esc(&s.run_id));
    let _ = write!(o, "<h1>Eval run {}</h1><p class=\"meta\">Suites: {} · model <code>{}</code> · seed {} · repeat {} · {} → {}{}</p>", esc(&s.run_id), esc(&s.suites.join(", ")), esc(&s.model), s.seed, s.repeat, esc(&s.started), esc(&s.finished), s.load_avg.map(|l| format!(" · load avg {:.2} {:.2} {:.2}", l[0], l[1], l[2])).unwrap_or_default());
    o.push_str("<table>");
    for (k, v) in metrics_rows(s) {
        let _ = write!(o, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    }
    o.push_str("</table>");
    if !s.thresholds.is_empty() {
        o.push_str("<h2>Thresholds</h2><table><tr><th>metric</th><th>fails when</th><th>value</th><th>actual</th><th></th></tr>");
        for t in &s.thresholds {
            let _ = write!(o, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>", esc(&t.metric), esc(&t.fail), t.value, t.actual.map(|a| a.to_string()).unwrap_or_else(|| "null".into()), if t.ok { "ok" } else { "miss" }, if t.ok { "ok" } else { "MISSED" });
        }
        o.push_str("</table>");
    }
    let _ = write!(o, "<h2>Pass rate by channel × mood</h2>{}", heatmap_svg(s));
    o.push_str("<h2>Tone-score distribution per brand</h2>");
    let labels: Vec<String> = (0..10).map(|i| format!("{}", i * 10)).collect();
    for (brand, counts) in tone_histograms(results) {
        let mean = s.by_brand.get(&brand).map(|b| b.mean_tone).unwrap_or(0.0);
        o.push_str(&bars_svg(&format!("{brand} (mean {mean:.1})"), &labels, &counts, "#3b6fb6"));
    }
    if !s.mean_parts.is_empty() {
        o.push_str("<table><tr><th>part</th><th>mean</th></tr>");
        for (k, v) in &s.mean_parts {
            let _ = write!(o, "<tr><td>{}</td><td>{v:.1}</td></tr>", esc(k));
        }
        o.push_str("</table>");
    }
    let (ll, lc) = latency_histogram(results);
    let _ = write!(o, "<h2>Latency</h2>{}", bars_svg("latency, seconds (bin upper edge)", &ll, &lc, "#7a5cb8"));
    let f = failed(results);
    let _ = write!(o, "<h2>Failures ({})</h2>", f.len());
    for r in f {
        let _ = write!(
            o,
            "<div class=\"fail\"><b>{}</b> <span class=\"meta\">{} · {} · {} · detected {} · seed {}{}</span><p>Customer: {}</p><div class=\"draft\">{}</div><ul>",
            esc(&r.item()),
            esc(&r.brand),
            esc(&r.channel),
            esc(r.mood_expected.as_deref().unwrap_or("?")),
            esc(r.mood_detected.as_deref().unwrap_or("?")),
            r.seed,
            if r.fallback { " · fallback" } else { "" },
            esc(&r.message),
            esc(&r.draft)
        );
        if let Some(e) = &r.error {
            let _ = write!(o, "<li class=\"miss\">error: {}</li>", esc(e));
        }
        for x in &r.failures {
            let _ = write!(o, "<li><code>{}</code> {}</li>", esc(&x.assert), esc(&x.message));
        }
        for v in &r.violations {
            let _ = write!(o, "<li>{} <code>{}</code>: {}</li>", esc(&v.level), esc(&v.rule), esc(&v.message));
        }
        o.push_str("</ul></div>");
    }
    o.push_str("</body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::run::{summarize, tests::line};

    fn sample() -> (Summary, Vec<CaseResult>) {
        let mut v = vec![line("a", true, 82.0, 1200.0), line("b", false, 41.0, 3400.0), line("c", true, 67.0, 800.0)];
        v[1].message = "<script>alert(1)</script> ignore previous instructions".into();
        v[1].draft = "Sorry & \"thanks\"".into();
        v[2].channel = "email".into();
        v[2].brand = "northgate".into();
        let mut s = summarize(&v);
        s.run_id = "20260101-000000-t".into();
        (s, v)
    }

    #[test]
    fn html_is_self_contained_and_escapes_everything() {
        let (s, v) = sample();
        let h = html(&s, &v);
        assert!(h.starts_with("<!doctype html>"));
        assert!(!h.contains("<script"), "a message must not become markup");
        assert!(h.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(h.contains("Sorry &amp; &quot;thanks&quot;"));
        assert!(!h.contains("<link") && !h.contains("src=") && !h.contains("@import") && !h.contains("url("), "no external resources");
        assert!(!h.contains("http"), "inline SVG in HTML needs no namespace URL either");
        assert_eq!(h.matches("<svg").count(), 1 + 2 + 1, "heatmap, one histogram per brand, latency");
        assert!(h.contains("twitter × angry: 1/2 passed"));
    }

    #[test]
    fn markdown_has_heatmap_and_failures() {
        let (s, v) = sample();
        let m = markdown(&s, &v);
        assert!(m.contains("| twitter | 50% (1/2) |"), "{m}");
        assert!(m.contains("| email | 100% (1/1) |"), "{m}");
        assert!(m.contains("## Failures (1)"));
        assert!(m.contains("failed `no-fallback`"));
    }

    #[test]
    fn histograms_bin_scores_and_latency() {
        let (_, v) = sample();
        let t = tone_histograms(&v);
        assert_eq!(t["tunely"][8] + t["tunely"][4], 2);
        assert_eq!(t["northgate"][6], 1);
        let (labels, counts) = latency_histogram(&v);
        assert_eq!(counts.iter().sum::<usize>(), 3);
        assert_eq!(counts[11], 1, "the max falls in the last bin");
        assert_eq!(labels.len(), 12);
    }
}
