//! The style book and the lint/fix API the drafting pipeline calls.
//!
//! `StyleBook::load(prompts_dir)` reads every brand guide, the channel
//! profiles, the mood→tone table and the shared rule packs once, checks them
//! (every problem, with file, key path and line), and compiles each brand's
//! rules — its own, its packs', and the rules derived from its vocabulary,
//! sign-offs, emoji policy and required phrases and from every channel
//! profile and mood — into one list per brand. Each compiled rule carries a
//! `When` (channels, moods, languages, public), so linting a reply is a
//! filter and a loop; nothing is compiled per request.
//!
//! Alerts are named like Vale's: `Tunely.Banned` (the brand's), `Common.Jargon`
//! (a pack's), `Channel.Length`, `Mood.Exclamation`, `Language.Expected`.

use super::channel::{ChannelBook, ChannelProfile, PiiPolicy};
use super::emoji::EmojiSpec;
use super::existence::ExistenceSpec;
use super::fix::{apply_round, AppliedFix, Fix, MAX_ROUNDS};
use super::guide::{placeholders, StyleGuide, REQUIRED_INTENTS};
use super::language::{detect, to_whatlang, LanguageSpec};
use super::length::{LengthSpec, LengthUnit};
use super::mood::{MoodBook, MoodTone};
use super::occurrence::OccurrenceSpec;
use super::pii::PiiSpec;
use super::punctuation::{Mark, PunctuationSpec};
use super::capitalization::CapitalizationSpec;
use super::required::{template_regex, RequiredSpec};
use super::rule::{CompileContext, FixKind, Level, Rule, RuleSpec, Scope, Segment, SpecError, When};
use super::schema::{join_key, load_file, GuideProblem, YamlDoc};
use super::substitution::SubstitutionSpec;
use super::text::TextIndex;
use super::StyleError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// A fact or link the reply must carry (order status, product page, outage notice).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fact {
    /// The short, quotable value ("arrives Friday 14 March", "TN-48213").
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// What a caller asks for, before validation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LintRequest {
    pub brand: String,
    pub channel: String,
    #[serde(default)]
    pub mood: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub facts: Vec<Fact>,
}

/// A request whose brand, channel, mood and language are known to exist.
/// Only `StyleBook::validate` makes one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidLintRequest {
    pub brand: String,
    pub channel: String,
    pub mood: String,
    pub language: String,
    pub facts: Vec<Fact>,
    #[serde(skip)]
    _valid: (),
}

/// Where a violation is: bytes `start..end`, and 1-based line and column
/// (column in characters) of `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleViolation {
    /// `Brand.Rule`, `Channel.Length`, …
    pub check: String,
    pub level: Level,
    pub message: String,
    pub span: Span,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<Fix>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// What a check sees of the request.
#[derive(Debug, Clone, Copy)]
pub struct LintContext<'a> {
    pub channel: &'a str,
    pub profile: &'a ChannelProfile,
    pub mood: &'a str,
    pub language: &'a str,
    pub facts: &'a [Fact],
    /// Between the body and an appended phrase or sign-off.
    pub separator: &'a str,
}

/// A shared rule pack (`prompts/rules/<file>.yaml`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RulePack {
    /// Alert prefix (`Common` → `Common.Jargon`).
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub rules: Vec<RuleSpec>,
}

/// One brand, compiled.
#[derive(Debug)]
pub struct Brand {
    pub guide: StyleGuide,
    pub rules: Vec<Rule>,
}

/// Everything under `prompts/`, loaded and compiled once.
#[derive(Debug)]
pub struct StyleBook {
    pub brands: BTreeMap<String, Brand>,
    pub channels: ChannelBook,
    pub moods: MoodBook,
    pub packs: BTreeMap<String, RulePack>,
}

/// Where the shared files are, relative to the prompts folder.
fn shared_paths(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    (dir.join("channels.yaml"), dir.join("moods.yaml"), dir.join("rules"), dir.join("brands"))
}

fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, StyleError> {
    let rd = std::fs::read_dir(dir).map_err(|e| StyleError::Io { path: dir.display().to_string(), source: e })?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    v.sort();
    Ok(v)
}

/// Alert prefix from a display name: letters and digits only.
pub fn prefix_of(name: &str) -> String {
    name.chars().filter(|c| c.is_alphanumeric()).collect()
}

/// The shared files, loaded (for checking guides against them).
pub struct Shared {
    pub channels: ChannelBook,
    pub moods: MoodBook,
    pub packs: BTreeMap<String, RulePack>,
}

impl Shared {
    /// Load channels, moods and packs, collecting every problem.
    pub fn load(dir: &Path) -> Result<Shared, Vec<GuideProblem>> {
        let (cp, mp, rp, _) = shared_paths(dir);
        let mut problems = Vec::new();
        let channels = load_file::<ChannelBook>(&cp).map_err(|e| problems.extend(e)).ok();
        let moods = load_file::<MoodBook>(&mp).map_err(|e| problems.extend(e)).ok();
        if let (Some((c, cdoc)), Some((m, mdoc))) = (&channels, &moods) {
            problems.extend(check_channels(c, cdoc));
            problems.extend(check_moods(m, mdoc));
        }
        let mut packs = BTreeMap::new();
        match yaml_files(&rp) {
            Ok(files) => {
                for f in files {
                    let stem = f.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
                    match load_file::<RulePack>(&f) {
                        Ok((p, doc)) => {
                            problems.extend(check_pack(&p, &doc, channels.as_ref().map(|c| &c.0), moods.as_ref().map(|m| &m.0)));
                            packs.insert(stem, p);
                        }
                        Err(e) => problems.extend(e),
                    }
                }
            }
            Err(e) => problems.push(GuideProblem { file: rp.display().to_string(), path: String::new(), line: 0, column: 0, message: e.to_string() }),
        }
        match (channels, moods) {
            (Some((channels, _)), Some((moods, _))) if problems.is_empty() => Ok(Shared { channels, moods, packs }),
            _ => Err(problems),
        }
    }
}

fn check_channels(c: &ChannelBook, doc: &YamlDoc) -> Vec<GuideProblem> {
    let mut p = Vec::new();
    for (id, ch) in &c.channels {
        let at = join_key("channels", id);
        if !id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            p.push(doc.problem(&at, format!("expected a channel id of lower-case letters, digits and _, found `{id}`")));
        }
        if let Some(l) = &ch.length {
            if l.max == 0 {
                p.push(doc.problem(&format!("{at}.length.max"), "expected a limit above 0"));
            }
        }
    }
    p
}

fn check_moods(m: &MoodBook, doc: &YamlDoc) -> Vec<GuideProblem> {
    let mut p = Vec::new();
    for (kind, list) in [("apology", &m.phrases.apology), ("acknowledgement", &m.phrases.acknowledgement), ("humour", &m.phrases.humour), ("next_step", &m.phrases.next_step)] {
        for lang in list.keys() {
            if to_whatlang(lang).is_none() {
                p.push(doc.problem(&format!("phrases.{kind}.{lang}"), format!("expected an ISO 639-1 language code such as en, ja, hi; found `{lang}`")));
            }
        }
    }
    p
}

fn check_when(w: &When, at: &str, doc: &YamlDoc, channels: Option<&ChannelBook>, moods: Option<&MoodBook>, p: &mut Vec<GuideProblem>) {
    if let Some(c) = channels {
        for (i, ch) in w.channels.iter().enumerate() {
            if !c.channels.contains_key(ch) {
                p.push(doc.problem(&format!("{at}.when.channels[{i}]"), unknown("channel", ch, c.channels.keys())));
            }
        }
    }
    if let Some(m) = moods {
        for (i, md) in w.moods.iter().enumerate() {
            if !m.moods.contains_key(md) {
                p.push(doc.problem(&format!("{at}.when.moods[{i}]"), unknown("mood", md, m.moods.keys())));
            }
        }
    }
    for (i, l) in w.languages.iter().enumerate() {
        if to_whatlang(l).is_none() {
            p.push(doc.problem(&format!("{at}.when.languages[{i}]"), format!("expected an ISO 639-1 language code such as en, ja, hi; found `{l}`")));
        }
    }
}

fn unknown<'a>(what: &str, value: &str, known: impl Iterator<Item = &'a String>) -> String {
    format!("unknown {what} `{value}`; expected one of: {}", known.map(String::as_str).collect::<Vec<_>>().join(", "))
}

fn check_rules(rules: &[RuleSpec], base: &str, prefix: &str, doc: &YamlDoc, channels: Option<&ChannelBook>, moods: Option<&MoodBook>) -> Vec<GuideProblem> {
    let mut p = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, r) in rules.iter().enumerate() {
        let at = format!("{base}[{i}]");
        if let Some(j) = seen.insert(r.id.as_str(), i) {
            p.push(doc.problem(&format!("{at}.id"), format!("duplicate rule id `{}` (also {base}[{j}])", r.id)));
        }
        check_when(&r.when, &at, doc, channels, moods, &mut p);
        if let Err(errs) = r.compile(prefix, &CompileContext::default()) {
            p.extend(spec_problems(errs, &at, doc));
        }
    }
    p
}

fn spec_problems(errs: Vec<SpecError>, at: &str, doc: &YamlDoc) -> Vec<GuideProblem> {
    errs.into_iter()
        .map(|e| {
            let path = if e.path.is_empty() { at.to_string() } else { format!("{at}.{}", e.path) };
            doc.problem(&path, e.message)
        })
        .collect()
}

fn check_pack(p: &RulePack, doc: &YamlDoc, channels: Option<&ChannelBook>, moods: Option<&MoodBook>) -> Vec<GuideProblem> {
    let mut out = Vec::new();
    if prefix_of(&p.name) != p.name || p.name.is_empty() {
        out.push(doc.problem("name", format!("expected a pack name of letters and digits (it prefixes alerts), found `{}`", p.name)));
    }
    out.extend(check_rules(&p.rules, "rules", &p.name, doc, channels, moods));
    out
}

/// Check one brand guide against the shared files; every problem is returned.
pub fn check_guide(g: &StyleGuide, doc: &YamlDoc, shared: &Shared) -> Vec<GuideProblem> {
    let mut p = Vec::new();
    let chans = &shared.channels.channels;
    let moods = &shared.moods.moods;
    if g.id.is_empty() || !g.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-') {
        p.push(doc.problem("id", format!("expected a lower-case id of letters, digits, - and _, found `{}`", g.id)));
    }
    if let Some(stem) = Path::new(&doc.file).file_stem().map(|s| s.to_string_lossy().to_string()) {
        if stem != g.id {
            p.push(doc.problem("id", format!("expected the id to match the file name `{stem}`, found `{}`", g.id)));
        }
    }
    if prefix_of(&g.name).is_empty() {
        p.push(doc.problem("name", "expected a name with at least one letter"));
    }
    if g.languages.is_empty() {
        p.push(doc.problem("languages", "expected at least one language"));
    }
    for (i, l) in g.languages.iter().enumerate() {
        if to_whatlang(l).is_none() {
            p.push(doc.problem(&format!("languages[{i}]"), format!("expected an ISO 639-1 language code such as en, ja, hi; found `{l}`")));
        }
    }
    let lang_ok = |l: &str| g.languages.iter().any(|x| x == l);
    for (key, map) in [("greetings", &g.greetings), ("sign_offs", &g.sign_offs)] {
        for (ch, per_lang) in map {
            let at = join_key(key, ch);
            if !chans.contains_key(ch) {
                p.push(doc.problem(&at, unknown("channel", ch, chans.keys())));
            }
            for (lang, list) in per_lang {
                let lat = join_key(&at, lang);
                if !lang_ok(lang) {
                    p.push(doc.problem(&lat, format!("language `{lang}` is not in this guide's `languages` ({})", g.languages.join(", "))));
                }
                if list.is_empty() {
                    p.push(doc.problem(&lat, "expected at least one template"));
                }
                for (i, t) in list.iter().enumerate() {
                    if let Err(e) = template_regex(t) {
                        p.push(doc.problem(&format!("{lat}[{i}]"), e));
                    }
                }
            }
        }
    }
    for ch in g.emoji.max.keys() {
        if !chans.contains_key(ch) {
            p.push(doc.problem(&join_key("emoji.max", ch), unknown("channel", ch, chans.keys())));
        } else if chans.get(ch).is_some_and(|c| !c.emoji) && g.emoji.max.get(ch).is_some_and(|m| *m > 0) {
            p.push(doc.problem(&join_key("emoji.max", ch), format!("channel `{ch}` allows no emoji (channels.yaml), so a brand maximum above 0 has no effect")));
        }
    }
    if !g.emoji.allowed.is_empty() {
        let spec = EmojiSpec { max: None, allowed: g.emoji.allowed.clone() };
        if let Err(errs) = spec.compile(None) {
            p.extend(spec_problems(errs, "emoji", doc));
        }
    }
    for (i, r) in g.required_phrases.iter().enumerate() {
        let at = format!("required_phrases[{i}]");
        for (j, ch) in r.channels.iter().enumerate() {
            if !chans.contains_key(ch) {
                p.push(doc.problem(&format!("{at}.channels[{j}]"), unknown("channel", ch, chans.keys())));
            }
        }
        for l in &g.languages {
            if !r.text.contains_key(l) {
                p.push(doc.problem(&format!("{at}.text"), format!("missing the phrase in `{l}` (the guide serves {})", g.languages.join(", "))));
            }
        }
        for l in r.text.keys() {
            if !lang_ok(l) {
                p.push(doc.problem(&join_key(&format!("{at}.text"), l), format!("language `{l}` is not in this guide's `languages`")));
            }
        }
    }
    for m in g.moods.keys() {
        if !moods.contains_key(m) {
            p.push(doc.problem(&join_key("moods", m), unknown("mood", m, moods.keys())));
        }
    }
    for (i, pk) in g.packs.iter().enumerate() {
        if !shared.packs.contains_key(pk) {
            p.push(doc.problem(&format!("packs[{i}]"), unknown("rule pack", pk, shared.packs.keys())));
        }
    }
    p.extend(check_rules(&g.rules, "rules", &prefix_of(&g.name), doc, Some(&shared.channels), Some(&shared.moods)));
    for (i, e) in g.exemplars.iter().enumerate() {
        let at = format!("exemplars[{i}]");
        if !chans.contains_key(&e.channel) {
            p.push(doc.problem(&format!("{at}.channel"), unknown("channel", &e.channel, chans.keys())));
        }
        if !moods.contains_key(&e.mood) {
            p.push(doc.problem(&format!("{at}.mood"), unknown("mood", &e.mood, moods.keys())));
        }
        if !lang_ok(&e.language) {
            p.push(doc.problem(&format!("{at}.language"), format!("language `{}` is not in this guide's `languages` ({})", e.language, g.languages.join(", "))));
        }
    }
    for intent in REQUIRED_INTENTS {
        if !g.fallbacks.contains_key(intent) {
            p.push(doc.problem("fallbacks", format!("missing the fallback for intent `{intent}` (every guide needs {})", REQUIRED_INTENTS.join(", "))));
        }
    }
    for (intent, per_lang) in &g.fallbacks {
        let at = join_key("fallbacks", intent);
        for l in &g.languages {
            if !per_lang.contains_key(l) {
                p.push(doc.problem(&at, format!("missing the `{l}` text (the guide serves {})", g.languages.join(", "))));
            }
        }
        for (l, t) in per_lang {
            let lat = join_key(&at, l);
            if !lang_ok(l) {
                p.push(doc.problem(&lat, format!("language `{l}` is not in this guide's `languages`")));
            }
            if let Err(e) = template_regex(t) {
                p.push(doc.problem(&lat, e));
            }
        }
    }
    if p.is_empty() {
        // Disabled names must exist, so a typo does not silently keep a rule on.
        match compile_brand(g, shared) {
            Ok(rules) => {
                for (i, d) in g.disable.iter().enumerate() {
                    if !rules.iter().any(|r| &r.name == d) && !known_rule_names(g, shared).contains(d) {
                        p.push(doc.problem(&format!("disable[{i}]"), format!("no rule named `{d}` applies to this brand")));
                    }
                }
            }
            Err(errs) => p.extend(spec_problems(errs, "", doc)),
        }
    }
    p.sort_by_key(|x| (x.line, x.column));
    p
}

fn known_rule_names(g: &StyleGuide, shared: &Shared) -> Vec<String> {
    let mut v = Vec::new();
    for pk in &g.packs {
        if let Some(pack) = shared.packs.get(pk) {
            v.extend(pack.rules.iter().map(|r| format!("{}.{}", pack.name, r.id)));
        }
    }
    v
}

fn spec(id: &str, level: Level, message: &str, when: When, fix: Option<FixKind>) -> RuleSpec {
    RuleSpec { id: id.into(), level, message: message.into(), when, fix, ..Default::default() }
}

fn when_ch(ch: &str) -> When {
    When { channels: vec![ch.to_string()], ..Default::default() }
}

/// Compile every rule that can apply to a brand.
pub fn compile_brand(g: &StyleGuide, shared: &Shared) -> Result<Vec<Rule>, Vec<SpecError>> {
    let brand = prefix_of(&g.name);
    let mut specs: Vec<(String, RuleSpec)> = Vec::new();
    let mut push = |prefix: &str, s: RuleSpec| specs.push((prefix.to_string(), s));

    // Vocabulary.
    let banned: Vec<String> = g.vocabulary.banned.iter().map(|b| b.term.clone()).collect();
    if !banned.is_empty() {
        let mut s = spec("Banned", Level::Error, &format!("'%s' is not a word {} uses.", g.name), When::default(), None);
        s.existence = Some(ExistenceSpec { tokens: banned, ignorecase: true, ..Default::default() });
        push(&brand, s);
    }
    // Competitors: never named in a reply, praise or not (a customer asking
    // "is X better?" must not get the brand's agent talking about X).
    if !g.competitors.is_empty() {
        let mut s = spec("Competitors", Level::Error, &format!("'%s' is a competitor; {} replies never name competitors.", g.name), When::default(), None);
        s.existence = Some(ExistenceSpec { tokens: g.competitors.clone(), ignorecase: true, ..Default::default() });
        push(&brand, s);
    }
    let swap: BTreeMap<String, String> = g.vocabulary.preferred.iter().flat_map(|p| p.instead_of.iter().map(move |i| (i.clone(), p.r#use.clone()))).collect();
    if !swap.is_empty() {
        let mut s = spec("Preferred", Level::Warning, "Use '%s' instead of '%s'.", When::default(), Some(FixKind::Replace));
        s.substitution = Some(SubstitutionSpec { swap });
        push(&brand, s);
    }
    if !g.vocabulary.products.is_empty() {
        let mut s = spec("ProductNames", Level::Error, "Write '%s', not '%s'.", When::default(), Some(FixKind::Replace));
        s.capitalization = Some(CapitalizationSpec { terms: g.vocabulary.products.clone(), sentence_start: false });
        push(&brand, s);
    }
    // Per channel: sign-offs, greetings, emoji, and the channel's own limits.
    for (ch, profile) in &shared.channels.channels {
        for (lang, list) in g.sign_offs.get(ch).into_iter().flatten() {
            let level = if profile.sign_off { Level::Error } else { Level::Warning };
            let mut s = spec("SignOff", level, &format!("End with {}'s sign-off for {ch}, such as '%s'.", g.name), When { channels: vec![ch.clone()], languages: vec![lang.clone()], ..Default::default() }, Some(FixKind::Append));
            s.required = Some(RequiredSpec { sign_off: list.clone(), ..Default::default() });
            push(&brand, s);
        }
        if profile.greeting {
            for (lang, list) in g.greetings.get(ch).into_iter().flatten() {
                let mut s = spec("Greeting", Level::Warning, "Open with a greeting, such as '%s'.", When { channels: vec![ch.clone()], languages: vec![lang.clone()], ..Default::default() }, Some(FixKind::Replace));
                s.required = Some(RequiredSpec { greeting: list.clone(), ..Default::default() });
                push(&brand, s);
            }
        }
        if profile.emoji {
            let max = g.emoji.max.get(ch).copied().unwrap_or(0);
            let mut s = spec("Emoji", Level::Error, &format!("{} uses at most {max} emoji on {ch}, from its own set; remove '%s'.", g.name), when_ch(ch), Some(FixKind::Remove));
            s.emoji = Some(EmojiSpec { max: Some(max), allowed: g.emoji.allowed.clone() });
            push(&brand, s);
        } else {
            let mut s = spec("Emoji", Level::Error, &format!("No emoji on {ch}; remove '%s'."), when_ch(ch), Some(FixKind::Remove));
            s.emoji = Some(EmojiSpec { max: Some(0), allowed: vec![] });
            push("Channel", s);
        }
        if let Some(l) = &profile.length {
            let mut s = spec("Length", Level::Error, &format!("{ch} allows {} {}; this reply has %s.", l.max, l.unit), when_ch(ch), Some(FixKind::Truncate));
            s.length = Some(LengthSpec { unit: l.unit, min: None, max: Some(l.max) });
            push("Channel", s);
        }
        if let Some(m) = profile.max_sentences {
            let mut s = spec("Sentences", Level::Warning, &format!("Keep {ch} replies to {m} sentences; this one has %s."), when_ch(ch), Some(FixKind::Truncate));
            s.length = Some(LengthSpec { unit: LengthUnit::Sentences, min: None, max: Some(m) });
            push("Channel", s);
        }
        if !profile.links {
            let mut s = spec("Links", Level::Error, &format!("No links on {ch} (it is read aloud); remove '%s'."), when_ch(ch), Some(FixKind::Remove));
            s.existence = Some(ExistenceSpec { patterns: vec![super::text::URL_PATTERN.to_string()], ignorecase: true, ..Default::default() });
            push("Channel", s);
        }
        let mut s = spec("Hashtags", Level::Warning, &format!("At most {} hashtags on {ch}; this reply has %s.", profile.max_hashtags), when_ch(ch), Some(FixKind::Remove));
        s.occurrence = Some(OccurrenceSpec { tokens: vec![], patterns: vec![r"(?:^|\s)#[\p{L}\p{N}_]+".into()], ignorecase: true, min: None, max: Some(profile.max_hashtags) });
        push("Channel", s);
        if profile.pii == PiiPolicy::Forbid {
            let mut s = spec("PII", Level::Error, &format!("{ch} is public: do not post %s; move the conversation to a private message."), when_ch(ch), None);
            s.pii = Some(PiiSpec { kinds: vec![super::pii::PiiKind::Email, super::pii::PiiKind::Phone, super::pii::PiiKind::Card, super::pii::PiiKind::OrderId, super::pii::PiiKind::AccountId] });
            push("Channel", s);
        }
    }
    // Required phrases.
    for r in &g.required_phrases {
        for (lang, text) in &r.text {
            let mut s = spec("Required", Level::Error, &format!("{} requires this phrase ({}): '%s'.", g.name, r.id), When { channels: r.channels.clone(), languages: vec![lang.clone()], ..Default::default() }, Some(FixKind::Append));
            s.required = Some(RequiredSpec { phrases: vec![text.clone()], ..Default::default() });
            push(&brand, s);
        }
    }
    // Mood → tone, with the brand's overrides.
    let ph = &shared.moods.phrases;
    for (mood, base) in &shared.moods.moods {
        let tone: MoodTone = g.moods.get(mood).map_or_else(|| base.clone(), |o| base.merged(o));
        let wm = || When { moods: vec![mood.clone()], ..Default::default() };
        let a = if mood.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        if let Some(max) = tone.exclamation_max {
            let mut s = spec("Exclamation", Level::Warning, &format!("At most {max} exclamation marks for {a} {mood} customer; found '%s'."), wm(), Some(FixKind::Replace));
            s.punctuation = Some(PunctuationSpec { mark: Mark::Exclamation, max, exceptions: vec![] });
            push("Mood", s);
        }
        if let Some(max) = tone.emoji_max {
            let mut s = spec("Emoji", Level::Error, &format!("At most {max} emoji for {a} {mood} customer; remove '%s'."), wm(), Some(FixKind::Remove));
            s.emoji = Some(EmojiSpec { max: Some(max), allowed: vec![] });
            push("Mood", s);
        }
        if let Some(max) = tone.caps_words_max {
            let mut s = spec("Shouting", Level::Warning, &format!("Do not shout at {a} {mood} customer: '%s'."), wm(), Some(FixKind::Replace));
            s.punctuation = Some(PunctuationSpec { mark: Mark::AllCaps, max, exceptions: caps_exceptions() });
            push("Mood", s);
        }
        for (lang, _) in g.languages.iter().map(|l| (l, ())) {
            let wl = || When { moods: vec![mood.clone()], languages: vec![lang.clone()], ..Default::default() };
            if let (Some(max), Some(list)) = (tone.apologies_max, ph.apology.get(lang)) {
                let mut s = spec("Apologies", Level::Warning, &format!("One apology is enough for {a} {mood} customer (found %s); over-apologising sounds canned."), wl(), None);
                s.occurrence = Some(OccurrenceSpec { tokens: list.clone(), ignorecase: true, min: None, max: Some(max), patterns: vec![] });
                push("Mood", s);
            }
            if tone.acknowledge_first == Some(true) {
                let mut any: Vec<String> = ph.acknowledgement.get(lang).cloned().unwrap_or_default();
                any.extend(ph.apology.get(lang).cloned().unwrap_or_default());
                if !any.is_empty() {
                    let mut s = spec("AcknowledgeFirst", Level::Error, &format!("Acknowledge the problem first when the customer is {mood} (for example '%s')."), wl(), None);
                    s.required = Some(RequiredSpec { any_of: any, within_first_sentences: Some(2), ..Default::default() });
                    push("Mood", s);
                }
            }
            if tone.humour == Some(false) {
                if let Some(list) = ph.humour.get(lang).filter(|l| !l.is_empty()) {
                    let mut s = spec("NoHumour", Level::Error, &format!("No jokes for {a} {mood} customer: '%s'."), wl(), Some(FixKind::Remove));
                    s.existence = Some(ExistenceSpec { tokens: list.clone(), ignorecase: true, ..Default::default() });
                    push("Mood", s);
                }
            }
            if tone.next_step == Some(true) {
                if let Some(list) = ph.next_step.get(lang).filter(|l| !l.is_empty()) {
                    let mut s = spec("NextStep", Level::Suggestion, &format!("Give {a} {mood} customer one concrete next step (for example '%s')."), wl(), None);
                    s.required = Some(RequiredSpec { any_of: list.clone(), ..Default::default() });
                    push("Mood", s);
                }
            }
        }
    }
    // The reply is in the request's language.
    let mut s = spec("Expected", Level::Error, "This reply reads as %s, but the customer's language is %s.", When::default(), None);
    s.language = Some(LanguageSpec { expected: None, min_letters: 12 });
    push("Language", s);
    // Packs and the brand's own rules.
    for pk in &g.packs {
        if let Some(pack) = shared.packs.get(pk) {
            for r in &pack.rules {
                push(&pack.name, r.clone());
            }
        }
    }
    for r in &g.rules {
        push(&brand, r.clone());
    }

    // Truncation keeps sign-offs and required phrases at the end; missing
    // phrases go in before the sign-off.
    let mut tail = Vec::new();
    for list in g.sign_offs.values().flat_map(|m| m.values()) {
        for t in list {
            if let Ok(p) = template_regex(t) {
                if let Ok(re) = regex::RegexBuilder::new(&format!(r"(?:{p})\s*$")).case_insensitive(true).build() {
                    tail.push(re);
                }
            }
        }
    }
    let sign_offs = tail.clone();
    for r in &g.required_phrases {
        for t in r.text.values() {
            if let Ok(re) = regex::RegexBuilder::new(&format!(r"{}\s*$", regex::escape(t.trim()))).case_insensitive(true).build() {
                tail.push(re);
            }
        }
    }
    let ctx = CompileContext { protected_tail: tail, sign_offs };
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for (prefix, s) in specs {
        match s.compile(&prefix, &ctx) {
            Ok(r) => {
                if !g.disable.contains(&r.name) {
                    rules.push(r);
                }
            }
            Err(e) => errors.extend(e.into_iter().map(|x| SpecError::new(x.path, format!("{prefix}.{}: {}", s.id, x.message)))),
        }
    }
    if errors.is_empty() { Ok(rules) } else { Err(errors) }
}

fn caps_exceptions() -> Vec<String> {
    ["FAQ", "SMS", "ATM", "USA", "PIN", "APR", "API", "URL", "ETA", "DM", "OK", "FYI", "ID", "PDF", "CVV", "IBAN", "GPS", "NYC", "LAX", "JFK", "TV", "USD", "EUR", "GBP", "JPY", "INR"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Replace each `%s` in turn with the next argument.
pub fn format_message(template: &str, args: &[String]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut it = args.iter();
    let mut rest = template;
    while let Some(i) = rest.find("%s") {
        out.push_str(&rest[..i]);
        out.push_str(it.next().map_or("", String::as_str));
        rest = &rest[i + 2..];
    }
    out.push_str(rest);
    out
}

impl StyleBook {
    /// Load and compile everything under `prompts_dir`; every problem in
    /// every file is reported in one error.
    pub fn load(prompts_dir: impl AsRef<Path>) -> Result<StyleBook, StyleError> {
        let dir = prompts_dir.as_ref();
        let shared = Shared::load(dir).map_err(StyleError::Guide)?;
        let (_, _, _, bp) = shared_paths(dir);
        let mut problems = Vec::new();
        let mut brands = BTreeMap::new();
        for f in yaml_files(&bp)? {
            match load_file::<StyleGuide>(&f) {
                Ok((g, doc)) => {
                    let p = check_guide(&g, &doc, &shared);
                    if !p.is_empty() {
                        problems.extend(p);
                        continue;
                    }
                    match compile_brand(&g, &shared) {
                        Ok(rules) => {
                            brands.insert(g.id.clone(), Brand { guide: g, rules });
                        }
                        Err(errs) => problems.extend(spec_problems(errs, "", &doc)),
                    }
                }
                Err(e) => problems.extend(e),
            }
        }
        if !problems.is_empty() {
            return Err(StyleError::Guide(problems));
        }
        if brands.is_empty() {
            return Err(StyleError::Guide(vec![GuideProblem { file: bp.display().to_string(), path: String::new(), line: 0, column: 0, message: "no brand guides found (expected brands/<id>.yaml)".into() }]));
        }
        Ok(StyleBook { brands, channels: shared.channels, moods: shared.moods, packs: shared.packs })
    }

    /// Check a request's brand, channel, mood and language. Without a
    /// language, the reply's language is detected (falling back to the
    /// brand's default when it is not one the brand serves).
    pub fn validate(&self, req: &LintRequest, text: &str) -> Result<ValidLintRequest, StyleError> {
        let brand = self.brands.get(&req.brand).ok_or_else(|| StyleError::Unknown {
            field: "brand",
            value: req.brand.clone(),
            expected: self.brands.keys().cloned().collect::<Vec<_>>().join(", "),
        })?;
        if !self.channels.channels.contains_key(&req.channel) {
            return Err(StyleError::Unknown { field: "channel", value: req.channel.clone(), expected: self.channels.channels.keys().cloned().collect::<Vec<_>>().join(", ") });
        }
        let mood = req.mood.clone().unwrap_or_else(|| "neutral".into());
        if !self.moods.moods.contains_key(&mood) {
            return Err(StyleError::Unknown { field: "mood", value: mood, expected: self.moods.moods.keys().cloned().collect::<Vec<_>>().join(", ") });
        }
        let served = &brand.guide.languages;
        let language = match &req.language {
            Some(l) => {
                if !served.contains(l) {
                    return Err(StyleError::Unknown { field: "language", value: l.clone(), expected: served.join(", ") });
                }
                l.clone()
            }
            None => detect(text).filter(|l| served.contains(l)).or_else(|| served.first().cloned()).unwrap_or_else(|| "en".into()),
        };
        for (i, f) in req.facts.iter().enumerate() {
            if f.text.chars().count() > 500 {
                return Err(StyleError::Invalid { field: format!("facts[{i}].text"), message: format!("at most 500 characters, got {}", f.text.chars().count()) });
            }
        }
        Ok(ValidLintRequest { brand: req.brand.clone(), channel: req.channel.clone(), mood, language, facts: req.facts.clone(), _valid: () })
    }

    /// Every violation of the brand's rules that apply to this channel, mood
    /// and language, in text order.
    pub fn lint(&self, req: &ValidLintRequest, text: &str) -> Vec<RuleViolation> {
        let (Some(brand), Some(profile)) = (self.brands.get(&req.brand), self.channels.channels.get(&req.channel)) else {
            return Vec::new();
        };
        let index = TextIndex::new(text);
        let cx = LintContext {
            channel: &req.channel,
            profile,
            mood: &req.mood,
            language: &req.language,
            facts: &req.facts,
            separator: &profile.separator,
        };
        let mut out = Vec::new();
        let mut hits = Vec::new();
        for rule in &brand.rules {
            if !rule.when.matches(&req.channel, profile.public, &req.mood, &req.language) {
                continue;
            }
            hits.clear();
            let run = |r: std::ops::Range<usize>, hits: &mut Vec<_>| {
                rule.check.check(Segment { text: &text[r.clone()], start: r.start, index: &index }, &cx, hits)
            };
            match rule.scope {
                Scope::Reply => run(0..text.len(), &mut hits),
                Scope::Sentence => {
                    for r in &index.sentences {
                        run(r.clone(), &mut hits);
                    }
                }
                Scope::FirstSentence => {
                    if let Some(r) = index.sentences.first() {
                        run(r.clone(), &mut hits);
                    }
                }
                Scope::LastSentence => {
                    if let Some(r) = index.sentences.last() {
                        run(r.clone(), &mut hits);
                    }
                }
            }
            for h in hits.drain(..) {
                let (line, column) = index.line_col(h.range.start);
                out.push(RuleViolation {
                    check: rule.name.clone(),
                    level: rule.level,
                    message: format_message(&rule.message, &h.args),
                    span: Span { start: h.range.start, end: h.range.end, line, column },
                    fix: h.fix,
                    link: rule.link.clone(),
                });
            }
        }
        out.sort_by(|a, b| (a.span.start, &a.check).cmp(&(b.span.start, &b.check)));
        out
    }

    /// Apply the fix actions until none is left; returns the fixed text and
    /// every fix applied. Fixing the result again changes nothing.
    pub fn fix(&self, req: &ValidLintRequest, text: &str) -> (String, Vec<AppliedFix>) {
        let mut cur = text.to_string();
        let mut all = Vec::new();
        for _ in 0..MAX_ROUNDS {
            let fixes: Vec<(String, Fix)> = self.lint(req, &cur).into_iter().filter_map(|v| v.fix.map(|f| (v.check, f))).collect();
            if fixes.is_empty() {
                break;
            }
            let (next, applied) = apply_round(&cur, &fixes);
            if next == cur {
                break;
            }
            all.extend(applied);
            cur = next;
        }
        (cur, all)
    }

    pub fn brand(&self, id: &str) -> Option<&Brand> {
        self.brands.get(id)
    }
}

/// Placeholder names a fallback uses, for callers filling them.
pub fn fallback_placeholders(g: &StyleGuide, intent: &str, lang: &str) -> Vec<String> {
    g.fallbacks.get(intent).and_then(|m| m.get(lang)).map(|t| placeholders(t)).unwrap_or_default()
}
