//! Robust statistics the rules share: median, median absolute deviation, the modified z score
//! (Iglewicz & Hoaglin: `0.6745 · (x − median) / MAD`), percentiles, and an exponentially
//! weighted mean and variance.

/// The median of `values` (0 when empty).
pub(crate) fn median(values: &[f64]) -> f64 {
    percentile(values, 0.5)
}

/// The `q` quantile of `values` by linear interpolation (0 when empty).
pub(crate) fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let w = pos - lo as f64;
    v[lo] * (1.0 - w) + v[hi] * w
}

/// The spread of `values` around `center`: the median absolute deviation, or, when more than
/// half the values are equal (MAD 0), 1.2533 × the mean absolute deviation (Iglewicz &
/// Hoaglin's fallback), never below `floor`. The floor keeps a principal whose history is
/// perfectly regular from turning one extra call into an infinite score.
pub(crate) fn spread(values: &[f64], center: f64, floor: f64) -> f64 {
    let deviations: Vec<f64> = values.iter().map(|v| (v - center).abs()).collect();
    let mad = median(&deviations);
    let s = if mad > 0.0 {
        mad
    } else if deviations.is_empty() {
        0.0
    } else {
        1.2533 * deviations.iter().sum::<f64>() / deviations.len() as f64 / 0.6745
    };
    s.max(floor)
}

/// The modified z score of `x` against `history`, with the spread floored at `floor`.
pub(crate) fn robust_z(x: f64, history: &[f64], floor: f64) -> f64 {
    let m = median(history);
    0.6745 * (x - m) / spread(history, m, floor)
}

/// An exponentially weighted mean and variance, updated one observation at a time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Ewma {
    /// The weighted mean.
    pub(crate) mean: f64,
    /// The weighted variance.
    pub(crate) var: f64,
    /// Observations folded in.
    pub(crate) count: u32,
}

impl Ewma {
    /// Folds in one observation with smoothing `alpha`.
    pub(crate) fn update(&mut self, x: f64, alpha: f64) {
        if self.count == 0 {
            self.mean = x;
            self.var = 0.0;
        } else {
            let d = x - self.mean;
            self.mean += alpha * d;
            self.var = (1.0 - alpha) * (self.var + alpha * d * d);
        }
        self.count = self.count.saturating_add(1);
    }

    /// The weighted standard deviation.
    pub(crate) fn sd(&self) -> f64 {
        self.var.sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_percentiles_interpolate() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(percentile(&[0.0, 10.0], 0.95), 9.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn the_modified_z_matches_a_hand_computation() {
        // median 5, deviations [2,1,0,1,2] → MAD 1; z(12) = 0.6745 · 7 / 1.
        let h = [3.0, 4.0, 5.0, 6.0, 7.0];
        assert!((robust_z(12.0, &h, 0.0) - 0.6745 * 7.0).abs() < 1e-12);
        // All equal: MAD and mean deviation are 0, so the floor decides.
        assert!((robust_z(2.0, &[1.0; 4], 0.5) - 0.6745 * 2.0).abs() < 1e-12);
    }

    #[test]
    fn mad_zero_falls_back_to_the_mean_deviation() {
        // median 1, deviations [0,0,0,9] → MAD 0, mean deviation 2.25.
        let s = spread(&[1.0, 1.0, 1.0, 10.0], 1.0, 0.0);
        assert!((s - 1.2533 * 2.25 / 0.6745).abs() < 1e-9);
    }

    #[test]
    fn ewma_tracks_a_level_and_its_spread() {
        let mut e = Ewma::default();
        for x in [0.1, 0.1, 0.1, 0.1] {
            e.update(x, 0.1);
        }
        assert!((e.mean - 0.1).abs() < 1e-12 && e.sd() < 1e-12);
        e.update(1.1, 0.1);
        assert!((e.mean - 0.2).abs() < 1e-12);
        assert!((e.var - 0.9 * 0.1).abs() < 1e-12);
    }
}
