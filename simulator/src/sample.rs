//! Sampling of scenario distributions with the simulator's seeded generator.
//!
//! A [`Sampler`] is prepared once per distribution (lognormal parameters are derived from the
//! mean and coefficient of variation up front) so drawing is a few float operations.
//! Everything draws from one `Pcg64` stream, so the same seed gives the same day anywhere.

use rand::Rng;
use rand_distr::{Distribution as _, Exp1, StandardNormal};
use rand_pcg::Pcg64;

use crate::scenario::Distribution;

/// A prepared distribution, drawing seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    /// Never happens: draws `f64::INFINITY`.
    Never,
    /// Always the same value.
    Constant(f64),
    /// Exponential with this mean.
    Exponential(f64),
    /// exp(mu + sigma·Z).
    Lognormal {
        /// Mean of the underlying normal.
        mu: f64,
        /// Standard deviation of the underlying normal.
        sigma: f64,
    },
}

impl Sampler {
    /// Prepares a scenario distribution.
    pub fn new(distribution: &Distribution) -> Sampler {
        match *distribution {
            Distribution::None => Sampler::Never,
            Distribution::Constant { value_s } => Sampler::Constant(value_s),
            Distribution::Exponential { mean_s } => Sampler::Exponential(mean_s),
            Distribution::Lognormal { mean_s, cv } => {
                // For a lognormal, CV² = e^{σ²} − 1 and mean = e^{μ + σ²/2}.
                let variance = (1.0 + cv * cv).ln();
                Sampler::Lognormal {
                    mu: mean_s.ln() - variance / 2.0,
                    sigma: variance.sqrt(),
                }
            }
        }
    }

    /// Draws one value, seconds.
    pub fn sample(&self, random: &mut Pcg64) -> f64 {
        match *self {
            Sampler::Never => f64::INFINITY,
            Sampler::Constant(value) => value,
            Sampler::Exponential(mean) => {
                let unit: f64 = Exp1.sample(random);
                unit * mean
            }
            Sampler::Lognormal { mu, sigma } => {
                let normal: f64 = StandardNormal.sample(random);
                (mu + sigma * normal).exp()
            }
        }
    }
}

/// Draws `true` with probability `probability`.
pub fn chance(random: &mut Pcg64, probability: f64) -> bool {
    probability > 0.0 && random.r#gen::<f64>() < probability
}

/// Exponential inter-arrival gap for `rate_per_s`, seconds (infinite for a zero rate).
pub fn gap_s(random: &mut Pcg64, rate_per_s: f64) -> f64 {
    if rate_per_s <= 0.0 {
        return f64::INFINITY;
    }
    let unit: f64 = Exp1.sample(random);
    unit / rate_per_s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::SeedableRng;

    fn moments(sampler: Sampler, count: usize) -> (f64, f64) {
        let mut random = Pcg64::seed_from_u64(7);
        let values: Vec<f64> = (0..count).map(|_| sampler.sample(&mut random)).collect();
        let mean = values.iter().sum::<f64>() / count as f64;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / count as f64;
        (mean, variance.sqrt() / mean)
    }

    #[test]
    fn lognormal_has_the_requested_mean_and_cv() {
        let (mean, cv) = moments(
            Sampler::new(&Distribution::Lognormal {
                mean_s: 180.0,
                cv: 0.8,
            }),
            400_000,
        );
        assert!((mean - 180.0).abs() < 1.5, "mean {mean}");
        assert!((cv - 0.8).abs() < 0.03, "cv {cv}");
    }

    #[test]
    fn exponential_has_the_requested_mean_and_unit_cv() {
        let (mean, cv) = moments(
            Sampler::new(&Distribution::Exponential { mean_s: 60.0 }),
            400_000,
        );
        assert!((mean - 60.0).abs() < 0.5, "mean {mean}");
        assert!((cv - 1.0).abs() < 0.02, "cv {cv}");
    }

    #[test]
    fn none_never_happens_and_constant_is_constant() {
        let mut random = Pcg64::seed_from_u64(1);
        assert_eq!(
            Sampler::new(&Distribution::None).sample(&mut random),
            f64::INFINITY
        );
        assert_eq!(
            Sampler::new(&Distribution::Constant { value_s: 3.0 }).sample(&mut random),
            3.0
        );
    }

    #[test]
    fn same_seed_same_stream() {
        let sampler = Sampler::new(&Distribution::Lognormal {
            mean_s: 10.0,
            cv: 1.0,
        });
        let mut first = Pcg64::seed_from_u64(42);
        let mut second = Pcg64::seed_from_u64(42);
        for _ in 0..100 {
            assert_eq!(
                sampler.sample(&mut first).to_bits(),
                sampler.sample(&mut second).to_bits()
            );
        }
    }
}
