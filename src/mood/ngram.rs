//! A FastText-like linear model over hashed word and character n-grams.
//!
//! Why next to the embedding head: MiniLM's mean-pooled vector blurs the
//! few words that carry a tweet's polarity ("not", "can't wait", a hashtag),
//! while a bag of n-grams keeps them; TweetEval's FastText and SVM baselines
//! are exactly this kind of model. Its probabilities are averaged with the
//! embedding head's (the weight chosen by cross-validation in
//! [`super::train`]). Input is [`super::tweet::normalize`]d and lower-cased;
//! features are word unigrams and bigrams plus character 3–5-grams of each
//! word, hashed (FNV-1a) into [`BUCKETS`] and L2-normalised per message.
//! Weights are stored sparsely: only buckets seen in training are non-zero.

use serde::{Deserialize, Serialize};

use super::head::{argmax, softmax_in_place};

/// Hash buckets.
pub const BUCKETS: usize = 1 << 18;

/// A sparse feature vector: (bucket, value) pairs, buckets unique.
pub type SparseRow = Vec<(u32, f32)>;

fn fnv(parts: &[&str]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f;
            h = h.wrapping_mul(0x0100_0193);
        }
        for b in p.bytes() {
            h ^= b as u32;
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h % BUCKETS as u32
}

/// The hashed n-gram features of a message.
pub fn featurize(text: &str) -> SparseRow {
    let norm = super::tweet::normalize(text).to_lowercase();
    let words: Vec<&str> = norm
        .split(|c: char| c.is_whitespace() || (c.is_ascii_punctuation() && c != '\'' && c != '!' && c != '?' && c != '@'))
        .filter(|w| !w.is_empty())
        .collect();
    let mut counts: std::collections::HashMap<u32, f32> = std::collections::HashMap::new();
    for (i, w) in words.iter().enumerate() {
        *counts.entry(fnv(&["w", w])).or_default() += 1.0;
        if i + 1 < words.len() {
            *counts.entry(fnv(&["b", w, words[i + 1]])).or_default() += 1.0;
        }
        let padded: Vec<char> = format!("<{w}>").chars().collect();
        for n in 3..=5 {
            if padded.len() < n {
                continue;
            }
            for s in padded.windows(n) {
                let g: String = s.iter().collect();
                *counts.entry(fnv(&["c", &g])).or_default() += 0.5;
            }
        }
    }
    // Punctuation runs matter for mood ("!!!", "?!").
    for p in ["!!", "?!", "!?", "??", "..."] {
        if norm.contains(p) {
            *counts.entry(fnv(&["p", p])).or_default() += 1.0;
        }
    }
    let norm2 = counts.values().map(|v| v * v).sum::<f32>().sqrt().max(1e-6);
    let mut row: SparseRow = counts.into_iter().map(|(k, v)| (k, v / norm2)).collect();
    row.sort_unstable_by_key(|&(k, _)| k);
    row
}

/// A trained n-gram softmax classifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NgramHead {
    pub labels: Vec<String>,
    pub bias: Vec<f32>,
    /// (bucket, one weight per label) for every bucket with a non-zero weight.
    pub weights: Vec<(u32, Vec<f32>)>,
    pub l2: f32,
    #[serde(skip)]
    dense: std::sync::OnceLock<Vec<f32>>,
}

impl NgramHead {
    fn dense(&self) -> &[f32] {
        self.dense.get_or_init(|| {
            let k = self.labels.len();
            let mut d = vec![0f32; BUCKETS * k];
            for (b, w) in &self.weights {
                let b = *b as usize % BUCKETS;
                d[b * k..b * k + k].copy_from_slice(&w[..k.min(w.len())]);
            }
            d
        })
    }

    pub fn predict_row(&self, row: &SparseRow) -> Vec<f32> {
        let k = self.labels.len();
        let d = self.dense();
        let mut z = self.bias.clone();
        for &(b, v) in row {
            let b = b as usize;
            for c in 0..k {
                z[c] += d[b * k + c] * v;
            }
        }
        softmax_in_place(&mut z);
        z
    }

    pub fn predict(&self, text: &str) -> Vec<f32> {
        self.predict_row(&featurize(text))
    }

    /// Full-batch Adam on the softmax loss with L2, balanced class weights.
    pub fn train(labels: &[String], rows: &[SparseRow], ys: &[usize], l2: f32, epochs: usize) -> NgramHead {
        let k = labels.len();
        let n = rows.len().max(1);
        let mut counts = vec![0usize; k];
        for &y in ys {
            counts[y] += 1;
        }
        let sw: Vec<f32> = (0..k).map(|c| if counts[c] > 0 { n as f32 / (k as f32 * counts[c] as f32) } else { 1.0 }).collect();
        // Only buckets that occur can move; train over those, compactly.
        let mut used: Vec<u32> = rows.iter().flat_map(|r| r.iter().map(|&(b, _)| b)).collect();
        used.sort_unstable();
        used.dedup();
        let slot = |b: u32| used.binary_search(&b).unwrap_or(0);
        let compact: Vec<Vec<(usize, f32)>> = rows.iter().map(|r| r.iter().map(|&(b, v)| (slot(b), v)).collect()).collect();
        let m = used.len();
        let mut w = vec![0f32; m * k];
        let mut b = vec![0f32; k];
        let (mut mw, mut vw) = (vec![0f32; m * k], vec![0f32; m * k]);
        let (mut mb, mut vb) = (vec![0f32; k], vec![0f32; k]);
        let mut gw = vec![0f32; m * k];
        let mut gb = vec![0f32; k];
        let (beta1, beta2, eps, lr) = (0.9f32, 0.999f32, 1e-8f32, 0.05f32);
        let mut p = vec![0f32; k];
        for t in 1..=epochs {
            gw.iter_mut().for_each(|v| *v = 0.0);
            gb.iter_mut().for_each(|v| *v = 0.0);
            for (row, &y) in compact.iter().zip(ys) {
                p.copy_from_slice(&b);
                for &(j, v) in row {
                    for c in 0..k {
                        p[c] += w[j * k + c] * v;
                    }
                }
                softmax_in_place(&mut p);
                for c in 0..k {
                    let err = (p[c] - if c == y { 1.0 } else { 0.0 }) * sw[y];
                    gb[c] += err;
                    for &(j, v) in row {
                        gw[j * k + c] += err * v;
                    }
                }
            }
            let inv_n = 1.0 / n as f32;
            let lr_t = lr * (1.0 - beta2.powi(t as i32)).sqrt() / (1.0 - beta1.powi(t as i32));
            for i in 0..m * k {
                let g = gw[i] * inv_n + l2 * w[i];
                mw[i] = beta1 * mw[i] + (1.0 - beta1) * g;
                vw[i] = beta2 * vw[i] + (1.0 - beta2) * g * g;
                w[i] -= lr_t * mw[i] / (vw[i].sqrt() + eps);
            }
            for c in 0..k {
                let g = gb[c] * inv_n;
                mb[c] = beta1 * mb[c] + (1.0 - beta1) * g;
                vb[c] = beta2 * vb[c] + (1.0 - beta2) * g * g;
                b[c] -= lr_t * mb[c] / (vb[c].sqrt() + eps);
            }
        }
        let weights = used.iter().enumerate().map(|(j, &bk)| (bk, w[j * k..j * k + k].to_vec())).collect();
        NgramHead { labels: labels.to_vec(), bias: b, weights, l2, dense: Default::default() }
    }

    pub fn argmax(&self, row: &SparseRow) -> usize {
        argmax(&self.predict_row(row))
    }

    /// Rounds weights to 4 significant decimals so the committed file stays small.
    pub fn round(&mut self) {
        for (_, w) in self.weights.iter_mut() {
            w.iter_mut().for_each(|v| *v = (*v * 1e4).round() / 1e4);
        }
        self.weights.retain(|(_, w)| w.iter().any(|&v| v != 0.0));
        self.dense = Default::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_unit_length_and_stable() {
        let a = featurize("I hate waiting!! #NeverAgain");
        let n: f32 = a.iter().map(|(_, v)| v * v).sum();
        assert!((n - 1.0).abs() < 1e-4, "{n}");
        assert_eq!(a, featurize("I hate waiting!! #NeverAgain"));
        assert!(a.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn learns_polarity_words() {
        let labels: Vec<String> = ["neg", "pos"].iter().map(|s| s.to_string()).collect();
        let texts = ["awful service", "i hate this", "terrible day", "love it", "great service", "what a lovely day"];
        let rows: Vec<SparseRow> = texts.iter().map(|t| featurize(t)).collect();
        let ys = [0, 0, 0, 1, 1, 1];
        let h = NgramHead::train(&labels, &rows, &ys, 1e-4, 200);
        assert_eq!(h.argmax(&featurize("awful awful")), 0);
        assert_eq!(h.argmax(&featurize("love this great")), 1);
        let mut r = h.clone();
        r.round();
        assert_eq!(r.argmax(&featurize("i hate it")), 0);
    }
}
