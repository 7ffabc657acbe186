//! Replication statistics: mean and a 95% confidence interval with Student's t.

use serde::Serialize;

/// Two-sided 95% Student t quantiles (t_{0.975, df}) for df = 1..=30.
const T_975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// t_{0.975, df}; beyond the table, the standard interpolation in 1/df towards the normal 1.960.
pub fn t_quantile_975(degrees_of_freedom: usize) -> f64 {
    match degrees_of_freedom {
        0 => f64::INFINITY,
        df if df <= T_975.len() => T_975[df - 1],
        // Between df = 30 (2.042) and ∞ (1.960) the quantile is close to linear in 1/df.
        df => 1.960 + (2.042 - 1.960) * 30.0 / df as f64,
    }
}

/// Mean of replications with a 95% confidence half-width.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// Sample mean.
    pub mean: f64,
    /// Half-width of the 95% confidence interval (infinite with one replication).
    pub half_width_95: f64,
    /// Replications.
    pub replications: usize,
}

impl Estimate {
    /// Mean and 95% CI half-width of `values`.
    pub fn of(values: &[f64]) -> Estimate {
        let count = values.len();
        if count == 0 {
            return Estimate {
                mean: f64::NAN,
                half_width_95: f64::INFINITY,
                replications: 0,
            };
        }
        let mean = values.iter().sum::<f64>() / count as f64;
        if count == 1 {
            return Estimate {
                mean,
                half_width_95: f64::INFINITY,
                replications: 1,
            };
        }
        let variance = values
            .iter()
            .map(|value| (value - mean).powi(2))
            .sum::<f64>()
            / (count - 1) as f64;
        let half_width_95 = t_quantile_975(count - 1) * (variance / count as f64).sqrt();
        Estimate {
            mean,
            half_width_95,
            replications: count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_matches_hand_computation() {
        // values 1..=5: mean 3, sample sd sqrt(2.5), t(4) = 2.776.
        let estimate = Estimate::of(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(estimate.mean, 3.0);
        let expected = 2.776 * (2.5f64 / 5.0).sqrt();
        assert!((estimate.half_width_95 - expected).abs() < 1e-12);
    }

    #[test]
    fn quantiles_fall_towards_the_normal() {
        assert_eq!(t_quantile_975(1), 12.706);
        assert!(t_quantile_975(60) < t_quantile_975(30));
        assert!(t_quantile_975(100_000) > 1.960 && t_quantile_975(100_000) < 1.961);
        assert!(Estimate::of(&[4.0]).half_width_95.is_infinite());
    }
}
