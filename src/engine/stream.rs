//! Streaming detokenisation: token bytes in, text chunks out — only ever valid
//! UTF-8, and never a piece of a stop string.
//!
//! Two small state machines, kept apart because they fail differently:
//! - `Utf8Decoder` holds back the trailing bytes of a character that is split
//!   across tokens (byte-fallback tokens of Japanese, Hindi, emoji) and emits a
//!   chunk only once the character is complete. Bytes that can never become
//!   valid UTF-8 are replaced by U+FFFD rather than dropped, so text is lost
//!   visibly, not silently.
//! - `StopMatcher` holds back the longest tail of the text that could still be
//!   the start of a stop string, and cuts the text where a stop string begins.
//!   Matching is on text, not tokens, because a stop string may be split across
//!   tokens in any way.
//!
//! Hand-written (rather than candle's `TokenOutputStream`, which re-decodes
//! the whole tail each step and works on `&str` tokens) because our tokenizer
//! hands out raw token bytes and we need stop strings in the same pass.

/// Incremental UTF-8 decoding of a byte stream.
#[derive(Debug, Default, Clone)]
pub struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `bytes` and returns the text that is now complete (may be empty).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = start + e.valid_up_to();
                    // Safe: from_utf8 just vouched for these bytes.
                    out.push_str(std::str::from_utf8(&self.pending[start..valid]).unwrap_or_default());
                    match e.error_len() {
                        // An incomplete character at the end: wait for more bytes.
                        None => {
                            start = valid;
                            break;
                        }
                        // Bytes that can never be valid: replace and go on.
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            start = valid + n;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
        out
    }

    /// Whether bytes of an unfinished character are held back.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Ends the stream: whatever is held back becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

/// Text-level stop strings with hold-back, so a stop string is never emitted,
/// even in part.
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    text: String,
    emitted: usize,
    stopped: bool,
}

impl StopMatcher {
    /// Empty stop strings are ignored (they would match everywhere).
    pub fn new(stops: &[String]) -> Self {
        let stops = stops.iter().filter(|s| !s.is_empty()).cloned().collect();
        Self { stops, ..Self::default() }
    }

    /// Appends `new` text. Returns the chunk that is safe to emit and whether a
    /// stop string was found (then the text ends right before it).
    pub fn push(&mut self, new: &str) -> (String, bool) {
        if self.stopped {
            return (String::new(), true);
        }
        self.text.push_str(new);
        // A stop string can only start in the part not yet emitted: everything
        // that could begin one was held back.
        let tail = &self.text[self.emitted..];
        let hit = self.stops.iter().filter_map(|s| tail.find(s.as_str())).min();
        if let Some(at) = hit {
            let end = self.emitted + at;
            let chunk = self.text[self.emitted..end].to_string();
            self.text.truncate(end);
            self.emitted = end;
            self.stopped = true;
            return (chunk, true);
        }
        let safe = self.text.len() - self.holdback();
        let chunk = self.text[self.emitted..safe].to_string();
        self.emitted = safe;
        (chunk, false)
    }

    /// Bytes at the end of the text that could be the start of a stop string.
    fn holdback(&self) -> usize {
        let tail = &self.text[self.emitted..];
        let mut best = 0;
        for s in &self.stops {
            // Longest proper prefix of `s` that is a suffix of `tail`.
            let max = (s.len() - 1).min(tail.len());
            for len in (best + 1..=max).rev() {
                let from = tail.len() - len;
                if tail.is_char_boundary(from) && s.as_bytes().starts_with(&tail.as_bytes()[from..]) {
                    best = len;
                    break;
                }
            }
        }
        best
    }

    /// Ends the stream: returns what was held back (nothing after a stop).
    pub fn finish(&mut self) -> String {
        let chunk = self.text[self.emitted..].to_string();
        self.emitted = self.text.len();
        chunk
    }

    /// All text so far, stop string excluded.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn stopped(&self) -> bool {
        self.stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `text`'s bytes split at every possible place pattern and checks
    /// each chunk is whole characters and all chunks rebuild the text.
    fn split_feed(text: &str, sizes: &[usize]) -> Vec<String> {
        let b = text.as_bytes();
        let mut d = Utf8Decoder::new();
        let mut out = Vec::new();
        let mut i = 0;
        let mut k = 0;
        while i < b.len() {
            let n = sizes[k % sizes.len()].min(b.len() - i);
            out.push(d.push(&b[i..i + n]));
            i += n;
            k += 1;
        }
        out.push(d.finish());
        out
    }

    #[test]
    fn utf8_split_across_tokens_is_held_back() {
        for text in ["お問い合わせありがとうございます。", "नमस्ते, आपका ऑर्डर", "Thanks 🙏🏽👨‍👩‍👧 done", "mixed ü ß € 𝄞"] {
            for sizes in [&[1][..], &[2], &[3], &[1, 2, 4], &[5, 1]] {
                let chunks = split_feed(text, sizes);
                assert_eq!(chunks.concat(), text, "sizes {sizes:?}");
                // Every chunk is a String, so valid UTF-8 by construction; check no
                // replacement char crept in.
                assert!(chunks.iter().all(|c| !c.contains('\u{FFFD}')));
            }
        }
        let mut d = Utf8Decoder::new();
        assert_eq!(d.push(&[0xF0, 0x9F]), "");
        assert!(d.has_pending());
        assert_eq!(d.push(&[0x99, 0x8F, b'!']), "🙏!");
    }

    #[test]
    fn invalid_bytes_become_replacement_chars() {
        let mut d = Utf8Decoder::new();
        assert_eq!(d.push(&[b'a', 0xFF, b'b']), "a\u{FFFD}b");
        assert_eq!(d.push(&[0xE3, 0x81]), "");
        assert_eq!(d.push(b"x"), "\u{FFFD}x");
        assert_eq!(d.push(&[0xE3]), "");
        assert_eq!(d.finish(), "\u{FFFD}");
    }

    fn run_stops(stops: &[&str], pieces: &[&str]) -> (Vec<String>, bool, String) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut m = StopMatcher::new(&stops);
        let mut out = Vec::new();
        let mut stopped = false;
        for p in pieces {
            let (c, s) = m.push(p);
            out.push(c);
            if s {
                stopped = true;
                break;
            }
        }
        out.push(m.finish());
        (out, stopped, m.text().to_string())
    }

    #[test]
    fn stop_string_split_across_pieces_is_not_emitted() {
        let (chunks, stopped, text) = run_stops(&["\nUser:"], &["Hello", " there\n", "Us", "er: more"]);
        assert!(stopped);
        assert_eq!(text, "Hello there");
        assert_eq!(chunks.concat(), "Hello there");
        // The newline was held back while it could start the stop string.
        assert_eq!(chunks[1], " there");
    }

    #[test]
    fn false_start_is_released() {
        let (chunks, stopped, text) = run_stops(&["STOP"], &["ST", "ART", " ok"]);
        assert!(!stopped);
        assert_eq!(text, "START ok");
        assert_eq!(chunks, vec!["", "START", " ok", ""]);
    }

    #[test]
    fn earliest_of_several_stops_wins_and_multibyte_is_safe() {
        let (_, stopped, text) = run_stops(&["。", "END"], &["ありがとう", "END。"]);
        assert!(stopped);
        assert_eq!(text, "ありがとう");
        let (chunks, stopped, _) = run_stops(&["é!"], &["caf", "é", "?"]);
        assert!(!stopped);
        assert_eq!(chunks.concat(), "café?");
        assert_eq!(chunks[1], "", "é held back as a possible stop start");
    }

    #[test]
    fn no_stops_emits_everything_at_once() {
        let (chunks, stopped, _) = run_stops(&[], &["a", "b"]);
        assert!(!stopped);
        assert_eq!(chunks, vec!["a", "b", ""]);
        let (chunks, _, _) = run_stops(&[""], &["a"]);
        assert_eq!(chunks, vec!["a", ""]);
    }
}
