//! Small learned heads: multinomial logistic regression over
//! [MiniLM embedding ‖ signal features].
//!
//! Why hand-written and not a crate: the whole model is one matrix and a
//! softmax, trained on a few thousand rows; full-batch gradient descent with
//! Adam converges in under a second here, and keeping it in ~150 lines avoids
//! pulling a linear-algebra stack (linfa/ndarray/BLAS) into the build. Classes
//! are weighted inversely to their frequency because the targets are
//! macro-averaged (macro-recall, macro-F1). The L2 strength is picked by
//! k-fold cross-validation inside the training data only.

use serde::{Deserialize, Serialize};

/// One trained softmax classifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Head {
    pub labels: Vec<String>,
    /// `labels.len()` rows of `dim` weights.
    pub weights: Vec<Vec<f32>>,
    pub bias: Vec<f32>,
    /// The L2 strength it was trained with.
    pub l2: f32,
}

/// Training settings.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub l2: f32,
    pub epochs: usize,
    pub learning_rate: f32,
    pub balanced: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self { l2: 1e-3, epochs: 400, learning_rate: 0.05, balanced: true }
    }
}

/// The L2 strengths tried by [`select_l2`].
pub const L2_GRID: [f32; 4] = [1e-4, 1e-3, 3e-3, 1e-2];

impl Head {
    /// Class probabilities for one feature vector.
    pub fn predict(&self, x: &[f32]) -> Vec<f32> {
        let mut z: Vec<f32> = self
            .weights
            .iter()
            .zip(&self.bias)
            .map(|(w, b)| w.iter().zip(x).map(|(a, b)| a * b).sum::<f32>() + b)
            .collect();
        softmax_in_place(&mut z);
        z
    }

    /// Index of the most probable class.
    pub fn argmax(&self, x: &[f32]) -> usize {
        argmax(&self.predict(x))
    }

    pub fn dim(&self) -> usize {
        self.weights.first().map(|w| w.len()).unwrap_or(0)
    }

    /// Trains on rows `xs` with integer labels `ys` in `0..labels.len()`.
    pub fn train(labels: &[String], xs: &[Vec<f32>], ys: &[usize], cfg: &TrainConfig) -> Head {
        let k = labels.len();
        let d = xs.first().map(|x| x.len()).unwrap_or(0);
        let n = xs.len().max(1);
        let mut counts = vec![0usize; k];
        for &y in ys {
            counts[y] += 1;
        }
        let sample_weight: Vec<f32> = (0..k)
            .map(|c| if cfg.balanced && counts[c] > 0 { n as f32 / (k as f32 * counts[c] as f32) } else { 1.0 })
            .collect();
        let mut w = vec![vec![0f32; d]; k];
        let mut b = vec![0f32; k];
        // Adam state.
        let (beta1, beta2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let mut mw = vec![vec![0f32; d]; k];
        let mut vw = vec![vec![0f32; d]; k];
        let mut mb = vec![0f32; k];
        let mut vb = vec![0f32; k];
        let mut gw = vec![vec![0f32; d]; k];
        let mut gb = vec![0f32; k];
        let mut p = vec![0f32; k];
        for t in 1..=cfg.epochs {
            for g in gw.iter_mut() {
                g.iter_mut().for_each(|v| *v = 0.0);
            }
            gb.iter_mut().for_each(|v| *v = 0.0);
            for (x, &y) in xs.iter().zip(ys) {
                for c in 0..k {
                    p[c] = w[c].iter().zip(x).map(|(a, b)| a * b).sum::<f32>() + b[c];
                }
                softmax_in_place(&mut p);
                let sw = sample_weight[y];
                for c in 0..k {
                    let err = (p[c] - if c == y { 1.0 } else { 0.0 }) * sw;
                    if err == 0.0 {
                        continue;
                    }
                    gb[c] += err;
                    for (g, xi) in gw[c].iter_mut().zip(x) {
                        *g += err * xi;
                    }
                }
            }
            let inv_n = 1.0 / n as f32;
            let lr_t = cfg.learning_rate * (1.0 - beta2.powi(t as i32)).sqrt() / (1.0 - beta1.powi(t as i32));
            for c in 0..k {
                for j in 0..d {
                    let g = gw[c][j] * inv_n + cfg.l2 * w[c][j];
                    mw[c][j] = beta1 * mw[c][j] + (1.0 - beta1) * g;
                    vw[c][j] = beta2 * vw[c][j] + (1.0 - beta2) * g * g;
                    w[c][j] -= lr_t * mw[c][j] / (vw[c][j].sqrt() + eps);
                }
                let g = gb[c] * inv_n;
                mb[c] = beta1 * mb[c] + (1.0 - beta1) * g;
                vb[c] = beta2 * vb[c] + (1.0 - beta2) * g * g;
                b[c] -= lr_t * mb[c] / (vb[c].sqrt() + eps);
            }
        }
        Head { labels: labels.to_vec(), weights: w, bias: b, l2: cfg.l2 }
    }
}

/// Picks the L2 strength with the best mean macro-F1 over `folds`-fold CV on
/// the given rows (which must be training rows only).
pub fn select_l2(labels: &[String], xs: &[Vec<f32>], ys: &[usize], folds: usize, base: &TrainConfig) -> f32 {
    use rayon::prelude::*;
    // Every (L2, fold) model on its own core; the choice is the same as a serial loop's.
    let jobs: Vec<(usize, usize)> = (0..L2_GRID.len()).flat_map(|g| (0..folds).map(move |f| (g, f))).collect();
    let preds: Vec<(usize, Vec<(usize, usize)>)> = jobs
        .par_iter()
        .map(|&(g, f)| {
            let cfg = TrainConfig { l2: L2_GRID[g], ..base.clone() };
            let (tr, te): (Vec<usize>, Vec<usize>) = (0..ys.len()).partition(|i| i % folds != f);
            let h = Head::train(
                labels,
                &tr.iter().map(|&i| xs[i].clone()).collect::<Vec<_>>(),
                &tr.iter().map(|&i| ys[i]).collect::<Vec<_>>(),
                &cfg,
            );
            (g, te.iter().map(|&i| (i, h.argmax(&xs[i]))).collect())
        })
        .collect();
    let mut best = (f32::MIN, base.l2);
    for (g, &l2) in L2_GRID.iter().enumerate() {
        let mut pred = vec![0usize; ys.len()];
        for (_, p) in preds.iter().filter(|(pg, _)| *pg == g) {
            for &(i, c) in p {
                pred[i] = c;
            }
        }
        let m = super::eval::Metrics::compute(labels.len(), ys, &pred);
        if m.macro_f1 > best.0 {
            best = (m.macro_f1, l2);
        }
    }
    best.1
}

pub fn softmax_in_place(z: &mut [f32]) {
    let max = z.iter().cloned().fold(f32::MIN, f32::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    if sum > 0.0 {
        z.iter_mut().for_each(|v| *v /= sum);
    }
}

pub fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .fold((0, f32::MIN), |best, (i, &v)| if v > best.1 { (i, v) } else { best })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_separable_problem() {
        // Three clusters on the axes of a 3-d space, with a little noise.
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for i in 0..90 {
            let c = i % 3;
            let mut x = vec![0.1 * ((i * 7 % 5) as f32 / 5.0); 3];
            x[c] += 1.0;
            xs.push(x);
            ys.push(c);
        }
        let h = Head::train(&labels, &xs, &ys, &TrainConfig::default());
        let correct = xs.iter().zip(&ys).filter(|(x, &y)| h.argmax(x) == y).count();
        assert_eq!(correct, 90);
        let p = h.predict(&[0.0, 0.0, 1.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(p[2] > 0.8, "{p:?}");
    }

    #[test]
    fn softmax_is_stable_on_large_logits() {
        let mut z = vec![1000.0, 1001.0, 999.0];
        softmax_in_place(&mut z);
        assert!(z.iter().all(|v| v.is_finite()));
        assert_eq!(argmax(&z), 1);
    }
}
