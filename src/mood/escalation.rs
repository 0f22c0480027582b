//! Escalation flags: messages a human must see first, whatever their mood.
//!
//! Why regexes and not the classifier: these flags route messages to legal,
//! safety and fraud teams, so each one must be explainable ("matched 'my
//! lawyer'") and editable by the people who own that risk without retraining
//! anything. The patterns are data (`prompts/escalation.yaml`, compiled in),
//! written as phrases so innocent uses ("basketball court", "this song is
//! fire", "press the button") do not fire. Each pattern compiles once at load;
//! a bad one is an error that names the file, flag and pattern.

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

pub const ESCALATION_YAML: &str = include_str!("../../prompts/escalation.yaml");
const ESCALATION_NAME: &str = "prompts/escalation.yaml";

/// The flag kinds, in report order.
pub const FLAG_KINDS: [&str; 5] = ["legal_threat", "safety", "fraud_security", "churn_threat", "press_regulator"];

#[derive(Debug, thiserror::Error)]
pub enum EscalationError {
    #[error("{file}: {reason}")]
    Parse { file: String, reason: String },
    #[error("{file}: flag `{key}` is unknown (expected one of {expected})")]
    UnknownFlag { file: String, key: String, expected: String },
    #[error("{file}: flag `{key}`, pattern {pattern:?} does not compile: {reason}")]
    BadPattern { file: String, key: String, pattern: String, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    flags: BTreeMap<String, FlagFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlagFile {
    #[allow(dead_code)]
    description: String,
    patterns: BTreeMap<String, Vec<String>>,
}

/// One raised flag and the text that raised it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EscalationFlag {
    pub kind: String,
    pub matched: String,
}

/// The compiled escalation rules.
pub struct EscalationRules {
    rules: Vec<(String, Vec<Regex>)>,
}

impl EscalationRules {
    pub fn builtin() -> Result<Self, EscalationError> {
        Self::parse(ESCALATION_NAME, ESCALATION_YAML)
    }

    pub fn parse(file: &str, yaml: &str) -> Result<Self, EscalationError> {
        let raw: RulesFile = serde_yaml::from_str(yaml)
            .map_err(|e| EscalationError::Parse { file: file.to_string(), reason: e.to_string() })?;
        let mut rules = Vec::new();
        for (key, flag) in raw.flags {
            if !FLAG_KINDS.contains(&key.as_str()) {
                return Err(EscalationError::UnknownFlag {
                    file: file.to_string(),
                    key,
                    expected: FLAG_KINDS.join(", "),
                });
            }
            let mut res = Vec::new();
            for pattern in flag.patterns.values().flatten() {
                let re = Regex::new(&format!("(?i){pattern}")).map_err(|e| EscalationError::BadPattern {
                    file: file.to_string(),
                    key: key.clone(),
                    pattern: pattern.clone(),
                    reason: e.to_string(),
                })?;
                res.push(re);
            }
            rules.push((key, res));
        }
        rules.sort_by_key(|(k, _)| FLAG_KINDS.iter().position(|f| f == k));
        Ok(Self { rules })
    }

    /// The flags `text` raises, at most one per kind (the first match).
    pub fn check(&self, text: &str) -> Vec<EscalationFlag> {
        let folded = text.replace(['\u{2019}', '\u{2018}'], "'");
        let mut out = Vec::new();
        for (kind, res) in &self.rules {
            if let Some(m) = res.iter().find_map(|re| re.find(&folded)) {
                out.push(EscalationFlag { kind: kind.clone(), matched: m.as_str().to_string() });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<String> {
        EscalationRules::builtin().expect("rules parse").check(text).into_iter().map(|f| f.kind).collect()
    }

    #[test]
    fn real_phrasing_fires() {
        assert_eq!(kinds("If this isn't fixed by Friday my lawyer will be in touch."), ["legal_threat"]);
        assert_eq!(kinds("I'm going to sue you for every penny"), ["legal_threat"]);
        assert_eq!(kinds("The charger caught fire on my desk last night"), ["safety"]);
        assert_eq!(kinds("honestly I just want to die, nothing works"), ["safety"]);
        assert_eq!(kinds("There's a charge on my card, I didn't make this payment"), ["fraud_security"]);
        assert_eq!(kinds("I didn't make this purchase, someone logged into my account"), ["fraud_security"]);
        assert_eq!(kinds("My account was hacked and my password changed"), ["fraud_security"]);
        assert_eq!(kinds("Cancel my subscription today. Never again."), ["churn_threat"]);
        assert_eq!(kinds("I'm switching to another bank"), ["churn_threat"]);
        assert_eq!(kinds("I've already contacted a journalist at the Guardian"), ["press_regulator"]);
        assert_eq!(kinds("Reporting you to the FCA and the ombudsman."), ["press_regulator"]);
    }

    #[test]
    fn several_flags_at_once() {
        let k = kinds("My account was hacked, I'm closing my account and my solicitor will hear about it");
        assert_eq!(k, ["legal_threat", "fraud_security", "churn_threat"]);
    }

    #[test]
    fn japanese_and_hindi() {
        assert_eq!(kinds("返金されないなら弁護士に相談します。"), ["legal_threat"]);
        assert_eq!(kinds("身に覚えのない請求があります。不正利用ではないですか？"), ["fraud_security"]);
        assert_eq!(kinds("もう解約します。"), ["churn_threat"]);
        assert_eq!(kinds("充電中にバッテリーから煙が出ました"), ["safety"]);
        assert_eq!(kinds("मैं उपभोक्ता फोरम में शिकायत करूंगा"), ["press_regulator"]);
        assert_eq!(kinds("मेरे खाते से बिना अनुमति पैसे कट गए"), ["fraud_security"]);
        assert_eq!(kinds("मैं वकील से बात करूंगा"), ["legal_threat"]);
    }

    #[test]
    fn innocent_text_stays_quiet() {
        for t in [
            "This new album is fire 🔥",
            "Press the reset button for five seconds",
            "We played on the basketball court all afternoon",
            "Can I change the email on my account?",
            "I love your app, never had a problem",
            "Just read a great newsletter from you",
            "The password reset link worked, thanks!",
            "Is the store open on Sunday?",
            "कृपया मेरा ऑर्डर कब आएगा बताइए",
            "注文の配送状況を教えてください",
            "The last time I ordered it came in two days",
        ] {
            assert!(kinds(t).is_empty(), "{t:?} raised {:?}", kinds(t));
        }
    }

    #[test]
    fn bad_rules_name_the_file_flag_and_pattern() {
        let e = EscalationRules::parse("x.yaml", "flags: {legal_threat: {description: d, patterns: {en: ['(']}}}")
            .err()
            .expect("must fail")
            .to_string();
        assert!(e.contains("x.yaml") && e.contains("legal_threat") && e.contains("\"(\""), "{e}");
        let e = EscalationRules::parse("x.yaml", "flags: {legel: {description: d, patterns: {}}}")
            .err()
            .expect("must fail")
            .to_string();
        assert!(e.contains("legel"), "{e}");
    }
}
