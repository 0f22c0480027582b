//! Lint throughput: tweet-length replies linted per second on one core, with
//! all three shipped brands loaded. Each reply is linted for a rotating
//! brand × channel × mood × language, as a drafting pipeline would.
//!
//!     cargo run --release --example style_bench [-- SECONDS]

use brandvoice::style::{LintRequest, StyleBook};
use std::time::{Duration, Instant};

const REPLIES: [(&str, &str); 8] = [
    ("en", "That's awful, and I understand why you're upset. Your playlists are backed up for 90 days, so nothing is lost. Please send us a DM and I'll restore them today.\n^Mia"),
    ("en", "Honestly, at 47 years it's more of a relocation 😅 Our bug, not your dream. Here's the same route with a 2-hour layover: wayfind.travel/f/BKK2\n^Leo"),
    ("en", "As a valued customer, let's circle back on your order #4481923!! Call +44 20 7946 0958 or e-mail sam@example.com, the the team will help 🎧🎶💜🐸"),
    ("en", "I'm sorry, I understand how stressful this is with rent due. The Northgate app is working again as of 11:40. If anything still fails, please send us a direct message.\n– Northgate Bank"),
    ("ja", "ご不便をおかけして申し訳ございません。現在、一部の地域で再生できない障害が発生しており、復旧作業を進めています。最新の状況はstatus.tunely.fmでお知らせします。\n^ミア"),
    ("ja", "うれしいお言葉をありがとうございます🎶 素敵な出会いになってよかったです。Daily Mixも毎日更新されるので、ぜひ聴いてみてください！\n^ケイ"),
    ("hi", "असुविधा के लिए हमें खेद है, हम आपकी परेशानी समझते हैं। कृपया हमें DM में संपर्क करें, ताकि हम आज ही आपके रिफ़ंड की स्थिति जाँच सकें।\n– नॉर्थगेट बैंक"),
    ("hi", "हमें खेद है, हम आपकी परेशानी समझते हैं। कृपया अपना बुकिंग नंबर DM में भेजिए, हम आज ही एयरलाइन से बात करेंगे।\n^Leo"),
];

fn main() {
    let secs: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let t0 = Instant::now();
    let book = StyleBook::load(concat!(env!("CARGO_MANIFEST_DIR"), "/prompts")).unwrap_or_else(|e| panic!("{e}"));
    let load = t0.elapsed();
    let rules: usize = book.brands.values().map(|b| b.rules.len()).sum();
    let channels = ["twitter", "facebook_comment", "instagram_comment", "messenger", "live_chat", "sms"];
    let moods = ["angry", "neutral", "happy", "frustrated", "grateful", "anxious", "confused"];
    let mut work = Vec::new();
    for (bi, brand) in ["tunely", "northgate", "wayfind"].iter().enumerate() {
        let served = &book.brands[*brand].guide.languages;
        for (ri, (lang, text)) in REPLIES.iter().enumerate() {
            let lang = if served.iter().any(|l| l == lang) { lang.to_string() } else { served[0].clone() };
            let req = LintRequest {
                brand: brand.to_string(),
                channel: channels[(ri + bi) % channels.len()].into(),
                mood: Some(moods[(ri * 3 + bi) % moods.len()].into()),
                language: Some(lang),
                facts: vec![],
            };
            work.push((book.validate(&req, text).expect("valid"), *text));
        }
    }
    // Warm up, then measure.
    for (r, t) in &work {
        std::hint::black_box(book.lint(r, t));
    }
    let mut n = 0u64;
    let mut violations = 0usize;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs_f64(secs) {
        for (r, t) in &work {
            violations += std::hint::black_box(book.lint(r, t)).len();
            n += 1;
        }
    }
    let el = start.elapsed().as_secs_f64();
    let mut fixed = 0u64;
    let fstart = Instant::now();
    while fstart.elapsed() < Duration::from_secs_f64(secs / 3.0) {
        for (r, t) in &work {
            std::hint::black_box(book.fix(r, t));
            fixed += 1;
        }
    }
    let fel = fstart.elapsed().as_secs_f64();
    let avg_len: f64 = REPLIES.iter().map(|(_, t)| t.chars().count() as f64).sum::<f64>() / REPLIES.len() as f64;
    println!("loaded 3 brands, {rules} compiled rules, in {:.1} ms", load.as_secs_f64() * 1e3);
    println!("lint: {n} replies (avg {avg_len:.0} chars) in {el:.2} s = {:.0} replies/s on one thread, {:.1} µs each ({:.1} violations/reply)", n as f64 / el, el * 1e6 / n as f64, violations as f64 / n as f64);
    println!("fix:  {fixed} replies in {fel:.2} s = {:.0} replies/s", fixed as f64 / fel);
}
