//! Redaction of personal data in text bound for logs and the drafts audit log.
//!
//! Customers paste e-mail addresses, phone numbers and card or account
//! numbers into messages; none of that may reach a log file or the audit
//! table. [`redact`] replaces each with a typed placeholder (`[email]`,
//! `[phone]`, `[card]`, `[iban]`, `[account]`) so a log line still reads
//! sensibly. It errs on the side of hiding: a long date-like digit run may be
//! masked as a phone number, which costs a log reader little, while a missed
//! card number costs a customer a lot. The patterns compile once.
//!
//! `crate::style::pii::find` (behind the draft-side `Draft.PersonalData`
//! check) finds the same kinds but strictly (Luhn-valid cards, phones of 9+
//! digits), because a false hit there rejects a draft; here a false hit only
//! masks a log word, so the patterns are looser on purpose. Sharing one set
//! would loosen that check or let logs keep numbers this masks.

use regex::Regex;
use std::borrow::Cow;
use std::sync::OnceLock;

struct Patterns {
    email: Regex,
    iban: Regex,
    card: Regex,
    phone: Regex,
    account: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| Patterns {
        email: Regex::new(r"(?i)[a-z0-9._%+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}").expect("email pattern"),
        // Two letters, two check digits, 11–30 more letters/digits, spaces allowed in groups.
        iban: Regex::new(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b").expect("iban pattern"),
        // 13–19 digits, optionally grouped by spaces or dashes.
        card: Regex::new(r"\b\d(?:[ \-]?\d){12,18}\b").expect("card pattern"),
        // 7–15 digits with an optional +country code, brackets, spaces, dots or dashes.
        phone: Regex::new(r"(?:\+\d{1,3}[ .\-]?)?(?:\(\d{1,4}\)[ .\-]?)?\d{2,4}(?:[ .\-]?\d{2,4}){1,4}").expect("phone pattern"),
        // A labelled account/sort/routing number: "account 12345678", "acct no. 1234-5678".
        account: Regex::new(r"(?i)\b(?:account|acct|a/c|sort code|routing)(?: (?:no\.?|number|#))?[:#]?\s*[\d][\d \-]{3,}\d").expect("account pattern"),
    })
}

fn digits(s: &str) -> usize {
    s.bytes().filter(u8::is_ascii_digit).count()
}

/// `text` with e-mail addresses, card, IBAN, account and phone numbers replaced
/// by placeholders. Borrowed when nothing matched.
pub fn redact(text: &str) -> Cow<'_, str> {
    let p = patterns();
    let mut out: Cow<str> = Cow::Borrowed(text);
    let mut apply = |re: &Regex, placeholder: &str, min_digits: usize| {
        if re.find_iter(&out).any(|m| digits(m.as_str()) >= min_digits) {
            let replaced = re.replace_all(&out, |c: &regex::Captures| if digits(&c[0]) >= min_digits { placeholder.to_string() } else { c[0].to_string() });
            if let Cow::Owned(s) = replaced {
                out = Cow::Owned(s);
            }
        }
    };
    apply(&p.email, "[email]", 0);
    apply(&p.account, "[account]", 4);
    apply(&p.iban, "[iban]", 0);
    apply(&p.card, "[card]", 13);
    apply(&p.phone, "[phone]", 7);
    out
}

/// [`redact`] as an owned `String` (for struct fields and JSON).
pub fn redact_owned(text: &str) -> String {
    redact(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_phones_cards_accounts() {
        let t = "Mail me at jane.doe+x@example.co.uk or call +44 20 7946 0958, card 4111 1111 1111 1111.";
        let r = redact(t);
        assert_eq!(r, "Mail me at [email] or call [phone], card [card].");
        assert_eq!(redact("my number is (555) 123-4567 thanks"), "my number is [phone] thanks");
        assert_eq!(redact("IBAN DE89 3704 0044 0532 0130 00 please"), "IBAN [iban] please");
        assert_eq!(redact("account no. 12345678 was charged"), "[account] was charged");
        assert_eq!(redact("card 4111-1111-1111-1111"), "card [card]");
        assert_eq!(redact("call 9876543210"), "call [phone]");
    }

    #[test]
    fn ordinary_text_is_untouched() {
        for t in ["My playlist disappeared after the update.", "Order 42 arrived 3 days late", "Version 2.1 broke it", "price 19.99"] {
            assert!(matches!(redact(t), Cow::Borrowed(_)), "{t} → {}", redact(t));
        }
    }

    #[test]
    fn idempotent() {
        let t = "x a@b.io 4111111111111111 +1 415 555 0100";
        let once = redact_owned(t);
        assert_eq!(redact(&once), once);
        assert!(!once.contains("4111") && !once.contains("a@b.io") && !once.contains("555"), "{once}");
    }
}
