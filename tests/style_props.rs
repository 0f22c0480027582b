//! Properties of the rule engine over arbitrary text: no input makes it
//! panic, fixing is idempotent, and after fixing no violation that carried a
//! fix is left.

use brandvoice::style::{LintRequest, StyleBook, ValidLintRequest};
use proptest::prelude::*;
use std::sync::OnceLock;

fn book() -> &'static StyleBook {
    static BOOK: OnceLock<StyleBook> = OnceLock::new();
    BOOK.get_or_init(|| StyleBook::load(concat!(env!("CARGO_MANIFEST_DIR"), "/prompts")).unwrap_or_else(|e| panic!("{e}")))
}

const BRANDS: [&str; 3] = ["tunely", "northgate", "wayfind"];
const CHANNELS: [&str; 9] = ["twitter", "facebook_comment", "instagram_comment", "messenger", "whatsapp", "live_chat", "email", "sms", "phone"];
const MOODS: [&str; 7] = ["angry", "frustrated", "anxious", "confused", "neutral", "happy", "grateful"];

fn request(b: usize, c: usize, m: usize, text: &str) -> ValidLintRequest {
    let brand = BRANDS[b % 3];
    let langs = &book().brands[brand].guide.languages;
    let lang = langs[(b + c + m) % langs.len()].clone();
    let req = LintRequest { brand: brand.into(), channel: CHANNELS[c % 9].into(), mood: Some(MOODS[m % 7].into()), language: Some(lang), facts: vec![] };
    book().validate(&req, text).expect("valid")
}

/// Text built from pieces the rules care about, so shrinking finds real cases.
fn reply() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("Sorry".to_string()), Just("sorry ".to_string()), Just("!".to_string()), Just("!!".to_string()),
        Just("NOT ".to_string()), Just("the the ".to_string()), Just("🎧".to_string()), Just("🐸 ".to_string()),
        Just("tunely premium ".to_string()), Just("track list ".to_string()), Just("e-mail ".to_string()),
        Just("email ".to_string()), Just("https://x.co/a ".to_string()), Just("#tag ".to_string()),
        Just("ご不便をおかけしました。".to_string()), Just("ですだ。".to_string()), Just("तुम ".to_string()),
        Just("खेद है। ".to_string()), Just(". ".to_string()), Just("\n".to_string()), Just("\n\n".to_string()),
        Just("haha ".to_string()), Just("– Tunely".to_string()), Just("^Mia".to_string()),
        Just("Your card 4111 1111 1111 1111 ".to_string()), Just("We will never ask for your PIN or full password.".to_string()),
        "[a-zA-Z ]{1,12}", "\\PC{1,6}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_any_string(text in "\\PC*", b in 0usize..3, c in 0usize..9, m in 0usize..7) {
        let req = request(b, c, m, &text);
        let vs = book().lint(&req, &text);
        for v in &vs {
            prop_assert!(v.span.start <= v.span.end && v.span.end <= text.len());
            prop_assert!(text.is_char_boundary(v.span.start) && text.is_char_boundary(v.span.end));
        }
        let _ = book().fix(&req, &text);
    }

    #[test]
    fn fix_is_idempotent_and_complete(text in reply(), b in 0usize..3, c in 0usize..9, m in 0usize..7) {
        let req = request(b, c, m, &text);
        let (once, _) = book().fix(&req, &text);
        let (twice, applied) = book().fix(&req, &once);
        prop_assert_eq!(&twice, &once, "fixing twice changed the text");
        prop_assert!(applied.is_empty());
        let left: Vec<_> = book().lint(&req, &once).into_iter().filter(|v| v.fix.is_some()).collect();
        prop_assert!(left.is_empty(), "fixable violations left after fix: {:?}\nin {:?}", left, once);
    }
}
