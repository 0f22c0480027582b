//! Golden tests for every rule kind: a reply in, the exact Vale-style lines
//! out (`line:col:level:Check:message`), against the shipped brands, channels,
//! moods and packs. English, Japanese and Hindi cases.

use brandvoice::style::{Fact, LintRequest, StyleBook};
use std::sync::OnceLock;

fn book() -> &'static StyleBook {
    static BOOK: OnceLock<StyleBook> = OnceLock::new();
    BOOK.get_or_init(|| {
        StyleBook::load(concat!(env!("CARGO_MANIFEST_DIR"), "/prompts")).unwrap_or_else(|e| panic!("prompts load: {e}"))
    })
}

fn lint_facts(brand: &str, channel: &str, mood: &str, lang: &str, facts: Vec<Fact>, text: &str) -> Vec<String> {
    let req = LintRequest {
        brand: brand.into(),
        channel: channel.into(),
        mood: Some(mood.into()),
        language: Some(lang.into()),
        facts,
    };
    let v = book().validate(&req, text).expect("valid request");
    book()
        .lint(&v, text)
        .into_iter()
        .map(|v| format!("{}:{}:{}:{}:{}", v.span.line, v.span.column, v.level, v.check, v.message))
        .collect()
}

fn lint(brand: &str, channel: &str, mood: &str, lang: &str, text: &str) -> Vec<String> {
    lint_facts(brand, channel, mood, lang, vec![], text)
}

fn fix(brand: &str, channel: &str, mood: &str, lang: &str, text: &str) -> String {
    let req = LintRequest { brand: brand.into(), channel: channel.into(), mood: Some(mood.into()), language: Some(lang.into()), facts: vec![] };
    let v = book().validate(&req, text).expect("valid request");
    book().fix(&v, text).0
}

/// Only the lines of one check.
fn only(lines: Vec<String>, check: &str) -> Vec<String> {
    lines.into_iter().filter(|l| l.split(':').nth(3) == Some(check)).collect()
}

#[test]
fn existence_banned_and_jargon() {
    assert_eq!(
        lint("tunely", "live_chat", "neutral", "en", "As a valued customer, let's circle back on your playlists tomorrow."),
        vec![
            "1:6:error:Tunely.Banned:'valued customer' is not a word Tunely uses.",
            "1:29:warning:Common.Jargon:'circle back' is corporate jargon; say it plainly.",
        ]
    );
}

#[test]
fn existence_japanese_without_spaces() {
    assert_eq!(
        only(lint("tunely", "live_chat", "neutral", "ja", "大切なお客様へ、ご連絡ありがとうございます。"), "Tunely.Banned"),
        vec!["1:1:error:Tunely.Banned:'大切なお客様' is not a word Tunely uses."]
    );
    assert_eq!(
        only(lint("tunely", "live_chat", "neutral", "ja", "確認しましたので、もう大丈夫だ。"), "Japanese.PlainForm"),
        vec!["1:14:warning:Japanese.PlainForm:「だ。」は常体です。お客様への返信は敬体（です・ます）で書いてください。"]
    );
}

#[test]
fn existence_hindi_formal_address() {
    assert_eq!(
        only(lint("northgate", "live_chat", "neutral", "hi", "तुम्हारा कार्ड कल तक पहुँच जाएगा। हम आपसे कभी भी आपका PIN या पूरा पासवर्ड नहीं माँगेंगे।"), "Hindi.Formal"),
        vec!["1:1:error:Hindi.Formal:ग्राहक को 'तुम्हारा' नहीं, 'आप' कहकर संबोधित करें।"]
    );
}

#[test]
fn substitution_with_fix() {
    let text = "Track list saved to your subscription tier.";
    assert_eq!(
        lint("tunely", "live_chat", "neutral", "en", text),
        vec![
            "1:1:warning:Tunely.Preferred:Use 'Playlist' instead of 'Track list'.",
            "1:24:warning:Tunely.Preferred:Use 'plan' instead of 'subscription tier'.",
        ]
    );
    assert_eq!(fix("tunely", "live_chat", "neutral", "en", text), "Playlist saved to your plan.");
}

#[test]
fn occurrence_apologies_for_angry_customer() {
    assert_eq!(
        only(lint("wayfind", "live_chat", "angry", "en", "Sorry about the delay. I apologise again, and sorry for the trouble. I'll rebook you now."), "Mood.Apologies"),
        vec![
            "1:26:warning:Mood.Apologies:One apology is enough for a angry customer (found 3); over-apologising sounds canned.",
            "1:50:warning:Mood.Apologies:One apology is enough for a angry customer (found 3); over-apologising sounds canned.",
        ]
    );
}

#[test]
fn occurrence_hashtags_on_twitter() {
    assert_eq!(
        only(lint("wayfind", "twitter", "happy", "en", "Lisbon for £89! #travel #deals\n^Leo"), "Channel.Hashtags"),
        vec!["1:24:warning:Channel.Hashtags:At most 1 hashtags on twitter; this reply has 2."]
    );
}

#[test]
fn repetition_english_only() {
    assert_eq!(
        only(lint("wayfind", "live_chat", "neutral", "en", "Your flight leaves from the the north terminal."), "Common.Repetition"),
        vec!["1:27:error:Common.Repetition:'the' is repeated."]
    );
    assert_eq!(fix("wayfind", "live_chat", "neutral", "en", "Your flight leaves from the the north terminal."), "Your flight leaves from the north terminal.");
    // Hindi reduplication is grammatical and the rule is English-only.
    assert!(only(lint("wayfind", "live_chat", "neutral", "hi", "धीरे धीरे सब ठीक हो जाएगा, हम आपकी बुकिंग देख रहे हैं।"), "Common.Repetition").is_empty());
}

#[test]
fn consistency_first_form_wins() {
    let text = "Check your email for the link. The e-mail comes from Wayfind.";
    assert_eq!(
        only(lint("wayfind", "live_chat", "neutral", "en", text), "Common.Spelling"),
        vec!["1:36:suggestion:Common.Spelling:You wrote 'e-mail' after already using 'email'; pick one."]
    );
    assert_eq!(fix("wayfind", "live_chat", "neutral", "en", text), "Check your email for the link. The email comes from Wayfind.");
}

#[test]
fn conditional_public_account_talk_needs_dm() {
    assert_eq!(
        only(lint("northgate", "twitter", "neutral", "en", "We have checked your account and the payment is on its way.\n– Northgate Bank"), "Public.MoveToPrivate"),
        vec!["1:17:warning:Public.MoveToPrivate:'your account' is account-specific: invite the customer to a private message before going into details."]
    );
    assert!(only(lint("northgate", "twitter", "neutral", "en", "We can look at your account in a direct message.\n– Northgate Bank"), "Public.MoveToPrivate").is_empty());
    assert_eq!(
        only(lint("northgate", "live_chat", "neutral", "en", "The Northgate Saver pays 3.1% on balances. We will never ask for your PIN or full password."), "NorthgateBank.RateNeedsApr"),
        vec!["1:26:error:NorthgateBank.RateNeedsApr:You mention a rate ('3.1%'); state it as APR or AER so it can be compared."]
    );
}

#[test]
fn capitalization_product_names() {
    let text = "You can download songs with tunely premium and offline mode.";
    assert_eq!(
        only(lint("tunely", "live_chat", "neutral", "en", text), "Tunely.ProductNames"),
        vec![
            "1:29:error:Tunely.ProductNames:Write 'Tunely Premium', not 'tunely premium'.",
            "1:48:error:Tunely.ProductNames:Write 'Offline Mode', not 'offline mode'.",
        ]
    );
    assert_eq!(fix("tunely", "live_chat", "neutral", "en", text), "You can download songs with Tunely Premium and Offline Mode.");
}

#[test]
fn metric_readability_english_only() {
    let hard = "Notwithstanding the aforementioned considerations, reimbursement eligibility determination necessitates comprehensive documentation verification procedures.";
    assert_eq!(
        only(lint("wayfind", "live_chat", "neutral", "en", hard), "Common.Readability"),
        vec!["1:1:suggestion:Common.Readability:Flesch–Kincaid grade 31.2; aim for 9 or lower so anyone can read it quickly."]
    );
    assert!(only(lint("wayfind", "live_chat", "neutral", "en", "Your bag is on the next flight. It lands at six. We will bring it to your hotel tonight."), "Common.Readability").is_empty());
}

#[test]
fn length_twitter_weighted_and_sms_segments() {
    // 150 kana weigh 300 on Twitter.
    let long_ja = format!("{}\n^ミア", "あ".repeat(150));
    assert_eq!(
        only(lint("tunely", "twitter", "neutral", "ja", &long_ja), "Channel.Length"),
        vec!["1:1:error:Channel.Length:twitter allows 280 twitter characters; this reply has 306."]
    );
    // Japanese SMS is UCS-2: 70 per single segment, 67 per part after that.
    let sms = format!("{} – Tunely", "ご利用ありがとうございます。".repeat(10));
    assert_eq!(
        only(lint("tunely", "sms", "neutral", "ja", &sms), "Channel.Length"),
        vec!["1:1:error:Channel.Length:sms allows 2 SMS segments; this reply has 3."]
    );
    let fixed = fix("tunely", "sms", "neutral", "ja", &sms);
    assert!(fixed.ends_with("ございます。 – Tunely"), "{fixed}");
    assert!(only(lint("tunely", "sms", "neutral", "ja", &fixed), "Channel.Length").is_empty());
}

#[test]
fn emoji_brand_set_channel_and_mood() {
    assert_eq!(
        only(lint("tunely", "twitter", "happy", "en", "Love it 🎧🎶💜 see you soon 🐸\n^Mia"), "Tunely.Emoji"),
        vec![
            "1:11:error:Tunely.Emoji:Tunely uses at most 2 emoji on twitter, from its own set; remove '💜'.",
            "1:27:error:Tunely.Emoji:Tunely uses at most 2 emoji on twitter, from its own set; remove '🐸'.",
        ]
    );
    assert_eq!(
        only(lint("tunely", "twitter", "angry", "en", "I understand, and I'm on it 🎧\n^Mia"), "Mood.Emoji"),
        vec!["1:29:error:Mood.Emoji:At most 0 emoji for a angry customer; remove '🎧'."]
    );
    assert_eq!(
        only(lint("tunely", "email", "happy", "en", "Hi there,\n\nEnjoy 🎧\n\nKeep listening,\nThe Tunely Care team"), "Channel.Emoji"),
        vec!["3:7:error:Channel.Emoji:No emoji on email; remove '🎧'."]
    );
}

#[test]
fn punctuation_exclamation_and_shouting() {
    let text = "I understand!! This is NOT okay and we will fix it today!";
    assert_eq!(
        lint("wayfind", "live_chat", "angry", "en", text),
        vec![
            "1:13:error:Mood.Exclamation:At most 0 exclamation marks for a angry customer; found '!!'.",
            "1:13:warning:Common.RepeatedMarks:'!!': one mark is enough.",
            "1:24:warning:Mood.Shouting:Do not shout at a angry customer: 'NOT'.",
            "1:57:error:Mood.Exclamation:At most 0 exclamation marks for a angry customer; found '!'.",
        ]
    );
    assert_eq!(fix("wayfind", "live_chat", "angry", "en", text), "I understand. This is not okay and we will fix it today.");
    // Japanese full-width marks become 。
    assert_eq!(fix("tunely", "live_chat", "angry", "ja", "ご不便をおかけしております！すぐに確認いたします！"), "ご不便をおかけしております。すぐに確認いたします。");
}

#[test]
fn pii_on_public_channels_only() {
    let text = "Sam, your order #4481923 is late; call +44 20 7946 0958 or write to sam.jones@example.com.\n^Leo";
    assert_eq!(
        only(lint("wayfind", "twitter", "neutral", "en", text), "Channel.PII"),
        vec![
            "1:11:error:Channel.PII:twitter is public: do not post an order number; move the conversation to a private message.",
            "1:40:error:Channel.PII:twitter is public: do not post a phone number; move the conversation to a private message.",
            "1:67:error:Channel.PII:twitter is public: do not post an email address; move the conversation to a private message.",
        ]
    );
    assert!(only(lint("wayfind", "messenger", "neutral", "en", text), "Channel.PII").is_empty());
    // A Luhn-valid card number is a card; the same digits shuffled are not.
    assert_eq!(
        only(lint("northgate", "facebook_comment", "neutral", "en", "Card 4111 1111 1111 1111 is blocked.\n– Northgate Bank"), "Channel.PII"),
        vec!["1:6:error:Channel.PII:facebook_comment is public: do not post a card number; move the conversation to a private message."]
    );
}

#[test]
fn required_sign_off_disclosure_and_facts() {
    assert_eq!(
        lint("northgate", "sms", "neutral", "en", "Your card is on its way."),
        vec![
            "1:25:error:NorthgateBank.Required:Northgate Bank requires this phrase (security): 'We will never ask for your PIN or full password.'.",
            "1:25:error:NorthgateBank.SignOff:End with Northgate Bank's sign-off for sms, such as '– Northgate Bank'.",
        ]
    );
    assert_eq!(
        fix("northgate", "sms", "neutral", "en", "Your card is on its way."),
        "Your card is on its way. We will never ask for your PIN or full password. – Northgate Bank"
    );
    let facts = vec![Fact { text: "arrives Friday".into(), url: Some("https://wayfind.travel/t/8KQ2".into()) }];
    assert_eq!(
        only(lint_facts("wayfind", "live_chat", "neutral", "en", facts, "Your bag is on the next flight."), "Common.Facts"),
        vec![
            "1:32:error:Common.Facts:The reply must include 'arrives Friday' from the request, word for word.",
            "1:32:error:Common.Facts:The reply must include 'https://wayfind.travel/t/8KQ2' from the request, word for word.",
        ]
    );
}

#[test]
fn required_acknowledge_first_in_three_languages() {
    assert_eq!(
        only(lint("wayfind", "live_chat", "angry", "en", "Your refund was sent yesterday. It takes a week."), "Mood.AcknowledgeFirst"),
        vec!["1:1:error:Mood.AcknowledgeFirst:Acknowledge the problem first when the customer is angry (for example 'I understand')."]
    );
    assert!(only(lint("tunely", "live_chat", "angry", "ja", "ご不便をおかけして申し訳ございません。すぐに確認いたします。"), "Mood.AcknowledgeFirst").is_empty());
    assert_eq!(
        only(lint("wayfind", "live_chat", "angry", "hi", "आपका रिफ़ंड कल भेजा गया था। इसमें एक हफ़्ता लगता है।"), "Mood.AcknowledgeFirst"),
        vec!["1:1:error:Mood.AcknowledgeFirst:Acknowledge the problem first when the customer is angry (for example 'असुविधा')."]
    );
}

#[test]
fn language_mismatch() {
    assert_eq!(
        only(lint("tunely", "live_chat", "neutral", "ja", "Thanks for writing in, your playlist is back now."), "Language.Expected"),
        vec!["1:1:error:Language.Expected:This reply reads as English, but the customer's language is Japanese."]
    );
    assert_eq!(
        only(lint("northgate", "live_chat", "neutral", "en", "आपका कार्ड कल तक पहुँच जाएगा। We will never ask for your PIN or full password."), "Language.Expected"),
        vec![]
    );
    assert_eq!(
        only(lint("wayfind", "live_chat", "neutral", "en", "Tu vuelo sale mañana a las diez desde la terminal norte del aeropuerto."), "Language.Expected"),
        vec!["1:1:error:Language.Expected:This reply reads as Spanish, but the customer's language is English."]
    );
}

#[test]
fn no_humour_for_angry_customers() {
    assert_eq!(
        only(lint("tunely", "live_chat", "angry", "en", "I understand, haha, the app did crash."), "Mood.NoHumour"),
        vec!["1:15:error:Mood.NoHumour:No jokes for a angry customer: 'haha'."]
    );
    // The bank never jokes, whatever the mood.
    assert_eq!(
        only(lint("northgate", "live_chat", "happy", "en", "Lovely news lol. We will never ask for your PIN or full password."), "NorthgateBank.NoHumour"),
        vec!["1:13:error:NorthgateBank.NoHumour:Northgate Bank does not joke with customers: 'lol'."]
    );
}

#[test]
fn length_truncate_keeps_sign_off() {
    let body = "Thanks for waiting. ".repeat(20);
    let text = format!("{body}\n^Leo");
    let fixed = fix("wayfind", "twitter", "neutral", "en", &text);
    assert!(fixed.ends_with("\n^Leo"), "{fixed}");
    assert!(brandvoice::style::text::twitter_length(&fixed) <= 280);
    assert!(only(lint("wayfind", "twitter", "neutral", "en", &fixed), "Channel.Length").is_empty());
}

#[test]
fn clean_reply_has_no_violations() {
    assert_eq!(
        lint("tunely", "twitter", "happy", "en", "Thank you for the music! 🎶 Your Daily Mix is ready.\n^Kai"),
        Vec::<String>::new()
    );
}
