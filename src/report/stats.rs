//! The arithmetic of a release, kept apart so its determinism is easy to see: fixed summation
//! order (the caller sorts), weighted mean and sample SD, rounding to fixed decimals, and
//! standard competition ranking.

use std::cmp::Ordering;

use crate::model::Ranking;

use super::DECIMALS;

/// Rounds to [`DECIMALS`] places. `(x * 1e6).round() / 1e6` is exact IEEE arithmetic, so every
/// platform gets the same bits; `-0.0` becomes `0.0` so it never prints as `-0.0`.
pub fn round(x: f64) -> f64 {
    let scale = 10f64.powi(DECIMALS);
    let r = (x * scale).round() / scale;
    if r == 0.0 { 0.0 } else { r }
}

/// Mean and spread of values (in the caller's fixed order) with weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub mean: f64,
    pub sd: Option<f64>,
    pub min: f64,
    pub max: f64,
    pub n: u32,
}

/// Weighted mean and weighted sample SD with reliability weights:
/// `var = sum w (x - mean)^2 / (V1 - V2 / V1)` with `V1 = sum w`, `V2 = sum w^2`, which is the
/// ordinary sample variance (`n - 1` denominator) when all weights are equal. `None` for an
/// empty list. Unrounded: the caller rounds what it releases.
pub fn summarize(values: &[(f64, f64)]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let v1: f64 = values.iter().map(|(_, w)| w).sum();
    let v2: f64 = values.iter().map(|(_, w)| w * w).sum();
    let mean = values.iter().map(|(x, w)| x * w).sum::<f64>() / v1;
    let sd = if values.len() > 1 {
        let ss: f64 = values.iter().map(|(x, w)| w * (x - mean).powi(2)).sum();
        let denom = v1 - v2 / v1;
        (denom > 0.0).then(|| (ss / denom).sqrt())
    } else {
        None
    };
    let min = values.iter().map(|(x, _)| *x).fold(f64::INFINITY, f64::min);
    let max = values
        .iter()
        .map(|(x, _)| *x)
        .fold(f64::NEG_INFINITY, f64::max);
    Some(Summary {
        mean,
        sd,
        min,
        max,
        n: values.len() as u32,
    })
}

/// Standard competition ranks ("1224") for `scores` (already rounded, so ranks agree with the
/// printed values): a score's rank is one plus the number of strictly better scores.
pub fn competition_ranks(scores: &[f64], ranking: Ranking) -> Vec<u32> {
    scores
        .iter()
        .map(|s| {
            let better = scores
                .iter()
                .filter(|o| better(**o, *s, ranking) == Ordering::Less)
                .count();
            better as u32 + 1
        })
        .collect()
}

/// `Less` when `a` ranks before `b`.
fn better(a: f64, b: f64, ranking: Ranking) -> Ordering {
    match ranking {
        Ranking::HigherIsBetter => b.total_cmp(&a),
        Ranking::LowerIsBetter => a.total_cmp(&b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_weights_give_the_sample_sd() {
        let s = summarize(&[(1.0, 1.0), (2.0, 1.0), (4.0, 1.0)]).unwrap();
        assert_eq!(round(s.mean), 2.333333);
        // sample variance = ((4/3)^2 + (1/3)^2 + (5/3)^2) / 2 = 7/3
        assert_eq!(round(s.sd.unwrap()), round((7.0f64 / 3.0).sqrt()));
        assert_eq!((s.min, s.max, s.n), (1.0, 4.0, 3));
        assert_eq!(summarize(&[(0.5, 1.0)]).unwrap().sd, None);
    }

    #[test]
    fn weights_pull_the_mean() {
        let s = summarize(&[(0.8, 240.0), (0.6, 180.0)]).unwrap();
        assert_eq!(round(s.mean), round((0.8 * 240.0 + 0.6 * 180.0) / 420.0));
        assert!(s.sd.is_some());
    }

    #[test]
    fn ranks_are_1224() {
        let r = competition_ranks(&[0.9, 0.8, 0.8, 0.7], Ranking::HigherIsBetter);
        assert_eq!(r, [1, 2, 2, 4]);
        let r = competition_ranks(&[0.9, 0.8, 0.8, 0.7], Ranking::LowerIsBetter);
        assert_eq!(r, [4, 2, 2, 1]);
    }

    #[test]
    fn rounding_is_fixed() {
        assert_eq!(round(0.123_456_49), 0.123456);
        assert_eq!(round(0.123_456_51), 0.123457);
        assert_eq!(round(-0.000_000_1).to_string(), "0");
    }
}
