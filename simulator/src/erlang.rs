//! Closed-form queueing figures the simulator is checked against: Erlang C (M/M/n) and
//! Erlang A (Palm's M/M/n+M, exponential patience).
//!
//! Erlang C uses the Erlang B recursion, which is numerically stable for thousands of
//! agents. Erlang A is computed from its birth–death chain in log space (so large `n` does not
//! overflow) truncated where the remaining mass is negligible; the waiting-time figures follow a
//! tagged arrival through the queue: with `j` contacts ahead it advances at rate
//! `n·μ + j·θ` (a service completion or an abandonment ahead of it) and leaves itself at rate
//! `θ`, so its answer-within-T probability is a uniformised pure-death chain.

/// Relative mass below which the Erlang A chain is truncated.
const TRUNCATION_MASS: f64 = 1e-15;
/// Bound on queue states kept for Erlang A.
pub const QUEUE_STATES_MAX: usize = 200_000;
/// Bound on uniformisation steps (the Poisson tail beyond is below 1e-12 long before).
const UNIFORMISATION_STEPS_MAX: usize = 1_000_000;

/// Why a closed form cannot be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ErlangError {
    /// Offered load reaches or exceeds the agents and nobody abandons: the queue grows forever.
    #[error(
        "unstable: offered load {load_erlangs:.3} erlangs ≥ {agents} agents with no abandonment"
    )]
    Unstable {
        /// Offered load, erlangs.
        load_erlangs: f64,
        /// Agents.
        agents: u32,
    },
    /// A rate or time is negative, zero where it must not be, or not finite.
    #[error("invalid parameter `{name}`: {value}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// The queue would need more states than [`QUEUE_STATES_MAX`].
    #[error("queue needs more than {QUEUE_STATES_MAX} states")]
    TooManyStates,
}

/// An M/M/n(+M) queue: Poisson arrivals, exponential service, `agents` servers, optional
/// exponential patience.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Queue {
    /// Arrivals per second.
    pub arrival_rate_per_s: f64,
    /// Mean handle time, seconds.
    pub handle_time_s_mean: f64,
    /// Agents.
    pub agents: u32,
    /// Mean patience, seconds; `None` means callers never abandon (Erlang C).
    pub patience_s_mean: Option<f64>,
}

/// Steady-state figures of a queue.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Figures {
    /// Probability an arrival has to wait (finds all agents busy).
    pub wait_probability: f64,
    /// Share of arrivals answered within the threshold (answered-within-T / offered).
    pub service_level: f64,
    /// Mean wait of answered contacts (including those answered at once), seconds.
    pub answer_speed_s_mean: f64,
    /// Share of arrivals that abandon.
    pub abandonment: f64,
    /// Agent occupancy (busy share).
    pub occupancy: f64,
}

impl Queue {
    /// Offered load in erlangs.
    pub fn load_erlangs(&self) -> f64 {
        self.arrival_rate_per_s * self.handle_time_s_mean
    }

    fn check(&self) -> Result<(), ErlangError> {
        let positive = |name, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(ErlangError::InvalidParameter { name, value })
            }
        };
        if !(self.arrival_rate_per_s.is_finite() && self.arrival_rate_per_s >= 0.0) {
            return Err(ErlangError::InvalidParameter {
                name: "arrival_rate_per_s",
                value: self.arrival_rate_per_s,
            });
        }
        positive("handle_time_s_mean", self.handle_time_s_mean)?;
        if let Some(patience) = self.patience_s_mean {
            positive("patience_s_mean", patience)?;
        }
        if self.agents == 0 {
            return Err(ErlangError::InvalidParameter {
                name: "agents",
                value: 0.0,
            });
        }
        Ok(())
    }

    /// Figures for answer-time threshold `threshold_s`: Erlang C without patience, Erlang A
    /// with it.
    pub fn figures(&self, threshold_s: f64) -> Result<Figures, ErlangError> {
        if !(threshold_s.is_finite() && threshold_s >= 0.0) {
            return Err(ErlangError::InvalidParameter {
                name: "threshold_s",
                value: threshold_s,
            });
        }
        match self.patience_s_mean {
            None => self.erlang_c(threshold_s),
            Some(patience) => self.erlang_a(threshold_s, patience),
        }
    }

    fn erlang_c(&self, threshold_s: f64) -> Result<Figures, ErlangError> {
        self.check()?;
        let load = self.load_erlangs();
        let agents = f64::from(self.agents);
        if load >= agents {
            return Err(ErlangError::Unstable {
                load_erlangs: load,
                agents: self.agents,
            });
        }
        let wait_probability = erlang_c_wait_probability(self.agents, load);
        let drain_rate_per_s = (agents - load) / self.handle_time_s_mean;
        Ok(Figures {
            wait_probability,
            service_level: 1.0 - wait_probability * (-drain_rate_per_s * threshold_s).exp(),
            answer_speed_s_mean: wait_probability / drain_rate_per_s,
            abandonment: 0.0,
            occupancy: load / agents,
        })
    }

    fn erlang_a(&self, threshold_s: f64, patience_s_mean: f64) -> Result<Figures, ErlangError> {
        self.check()?;
        let arrival = self.arrival_rate_per_s;
        let service = 1.0 / self.handle_time_s_mean;
        let abandon = 1.0 / patience_s_mean;
        let agents = self.agents as usize;
        let agents_f = f64::from(self.agents);

        // log of unnormalised stationary weights, states 0..=agents then queue states.
        let load = arrival / service;
        let mut log_weights = Vec::with_capacity(agents + 64);
        log_weights.push(0.0_f64);
        for k in 1..=agents {
            let previous = log_weights[k - 1];
            log_weights.push(previous + load.ln() - (k as f64).ln());
        }
        let mut queued = 0usize;
        loop {
            queued += 1;
            if queued > QUEUE_STATES_MAX {
                return Err(ErlangError::TooManyStates);
            }
            let rate_out = agents_f * service + queued as f64 * abandon;
            let previous = log_weights[agents + queued - 1];
            let next = previous + arrival.ln() - rate_out.ln();
            log_weights.push(next);
            let peak = log_weights
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max);
            // Once arrivals are slower than departures the weights only fall, so stop when
            // they are negligible relative to the peak.
            if arrival < rate_out && next - peak < TRUNCATION_MASS.ln() {
                break;
            }
        }
        let peak = log_weights
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = log_weights.iter().map(|log| (log - peak).exp()).collect();
        let total: f64 = weights.iter().sum();
        let probability: Vec<f64> = weights.iter().map(|weight| weight / total).collect();

        let wait_probability: f64 = probability[agents..].iter().sum();
        let busy_agents: f64 = probability
            .iter()
            .enumerate()
            .map(|(state, p)| p * (state.min(agents) as f64))
            .sum();

        // Tagged arrival finding j ahead (state agents + j): advance rate r_i = nμ + iθ for
        // i ahead, own abandonment θ. Served iff it advances through all j+1 steps.
        let queue_ahead = probability.len() - agents;
        let advance = |ahead: usize| agents_f * service + ahead as f64 * abandon;
        let mut served_after_wait = 0.0;
        let mut wait_served_sum = 0.0;
        for ahead in 0..queue_ahead {
            let mut survive = 1.0;
            let mut time_mean = 0.0;
            for step in 0..=ahead {
                let rate = advance(step);
                survive *= rate / (rate + abandon);
                time_mean += 1.0 / (rate + abandon);
            }
            let p = probability[agents + ahead];
            served_after_wait += p * survive;
            wait_served_sum += p * survive * time_mean;
        }
        let served = (1.0 - wait_probability) + served_after_wait;

        let answered_within = (1.0 - wait_probability)
            + self.tagged_served_within(&probability[agents..], threshold_s, abandon, &advance);

        Ok(Figures {
            wait_probability,
            service_level: answered_within,
            answer_speed_s_mean: if served > 0.0 {
                wait_served_sum / served
            } else {
                0.0
            },
            abandonment: 1.0 - served,
            occupancy: busy_agents / agents_f,
        })
    }

    /// Probability that an arrival who waits is answered within `threshold_s`, given the
    /// arrival-time distribution over contacts ahead (`waiting[j]` = P(j ahead)). Uniformised
    /// pure-death chain: position j moves to j−1 at `advance(j)`, position 0 is answered at
    /// `advance(0)`, and every position is lost at `abandon`.
    fn tagged_served_within(
        &self,
        waiting: &[f64],
        threshold_s: f64,
        abandon: f64,
        advance: &dyn Fn(usize) -> f64,
    ) -> f64 {
        if waiting.is_empty() || threshold_s == 0.0 {
            return 0.0;
        }
        let uniform_rate = advance(waiting.len()) + abandon;
        let mean_steps = uniform_rate * threshold_s;
        let mut mass = waiting.to_vec();
        let mut answered_by_step = 0.0; // mass answered within the first k uniform steps
        let mut result = 0.0;
        // Poisson(k; mean_steps) iteratively in log space to avoid underflow for large means.
        let mut poisson_cumulative = 0.0;
        for step in 0..UNIFORMISATION_STEPS_MAX {
            let log_poisson = -mean_steps + step as f64 * mean_steps.ln() - ln_factorial(step);
            let poisson = log_poisson.exp();
            // P(N(T) ≥ step+1) weights the answers happening on step+1; simpler: answered
            // within T = Σ_k P(N(T)=k) · answered_by_step(k).
            result += poisson * answered_by_step;
            poisson_cumulative += poisson;
            if poisson_cumulative > 1.0 - 1e-13 && step as f64 > mean_steps {
                break;
            }
            // One uniform step.
            let mut next = vec![0.0; mass.len()];
            for (ahead, m) in mass.iter().enumerate() {
                if *m == 0.0 {
                    continue;
                }
                let move_probability = advance(ahead) / uniform_rate;
                let lost_probability = abandon / uniform_rate;
                let stay = 1.0 - move_probability - lost_probability;
                next[ahead] += m * stay;
                if ahead == 0 {
                    answered_by_step += m * move_probability;
                } else {
                    next[ahead - 1] += m * move_probability;
                }
            }
            mass = next;
        }
        result
    }
}

fn ln_factorial(n: usize) -> f64 {
    // Exact sum for small n, Stirling series beyond (error < 1e-10 for n ≥ 30).
    if n < 30 {
        (2..=n).map(|k| (k as f64).ln()).sum()
    } else {
        let n = n as f64;
        n * n.ln() - n + 0.5 * (2.0 * std::f64::consts::PI * n).ln() + 1.0 / (12.0 * n)
            - 1.0 / (360.0 * n * n * n)
    }
}

/// Erlang B blocking probability for `agents` servers and `load_erlangs`, by the stable
/// recursion B(k) = a·B(k−1) / (k + a·B(k−1)).
pub fn erlang_b(agents: u32, load_erlangs: f64) -> f64 {
    let mut blocking = 1.0;
    for k in 1..=agents {
        blocking = load_erlangs * blocking / (f64::from(k) + load_erlangs * blocking);
    }
    blocking
}

/// Erlang C probability of waiting (requires `load_erlangs < agents`; 1 otherwise).
pub fn erlang_c_wait_probability(agents: u32, load_erlangs: f64) -> f64 {
    let agents_f = f64::from(agents);
    if load_erlangs >= agents_f {
        return 1.0;
    }
    let blocking = erlang_b(agents, load_erlangs);
    agents_f * blocking / (agents_f - load_erlangs * (1.0 - blocking))
}

/// Fewest agents whose closed-form figures meet the targets (SL ≥ `service_level_target`
/// and abandonment ≤ `abandonment_target`), searching up from the load; `agents_max` bounds it.
pub fn agents_required(
    arrival_rate_per_s: f64,
    handle_time_s_mean: f64,
    patience_s_mean: Option<f64>,
    threshold_s: f64,
    service_level_target: f64,
    abandonment_target: f64,
    agents_max: u32,
) -> Option<u32> {
    if arrival_rate_per_s <= 0.0 {
        return Some(0);
    }
    let load = arrival_rate_per_s * handle_time_s_mean;
    let start = (load.floor() as u32).max(1);
    (start..=agents_max).find(|agents| {
        let queue = Queue {
            arrival_rate_per_s,
            handle_time_s_mean,
            agents: *agents,
            patience_s_mean,
        };
        queue.figures(threshold_s).is_ok_and(|figures| {
            figures.service_level >= service_level_target
                && figures.abandonment <= abandonment_target
        })
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "actual {actual} expected {expected} ± {tolerance}"
        );
    }

    #[test]
    fn erlang_b_matches_published_table_values() {
        // Exact: B(2, 1) = (1/2) / (1 + 1 + 1/2).
        close(erlang_b(2, 1.0), 0.2, 1e-12);
        // Erlang B tables: 10 erlangs on 10 trunks block 21.46%; 5 erlangs on 10 trunks 1.84%.
        close(erlang_b(10, 10.0), 0.2146, 5e-5);
        close(erlang_b(10, 5.0), 0.01838, 5e-5);
    }

    #[test]
    fn erlang_c_matches_published_call_centre_example() {
        // The widely reproduced worked example (callcentrehelper.com, "Erlang C formula –
        // made simple"): 100 calls in 30 minutes, 180 s handle time (10 erlangs), 14 agents:
        // P(wait) 17.4%, SL(20 s) 88.8%, ASA 7.8 s; with 11 agents P(wait) is 68.2%.
        let queue = Queue {
            arrival_rate_per_s: 100.0 / 1800.0,
            handle_time_s_mean: 180.0,
            agents: 14,
            patience_s_mean: None,
        };
        let figures = queue.figures(20.0).unwrap();
        close(figures.wait_probability, 0.1741, 5e-4);
        close(figures.service_level, 0.8884, 5e-4);
        close(figures.answer_speed_s_mean, 7.83, 0.05);
        close(figures.occupancy, 10.0 / 14.0, 1e-12);
        // Exact small case: C(2, 1) = 1/3.
        close(erlang_c_wait_probability(11, 10.0), 0.682, 5e-4);
        close(erlang_c_wait_probability(2, 1.0), 1.0 / 3.0, 1e-12);
    }

    #[test]
    fn erlang_c_rejects_unstable_queue() {
        let queue = Queue {
            arrival_rate_per_s: 1.0,
            handle_time_s_mean: 10.0,
            agents: 10,
            patience_s_mean: None,
        };
        assert!(matches!(
            queue.figures(20.0),
            Err(ErlangError::Unstable { .. })
        ));
    }

    #[test]
    fn erlang_a_with_patience_equal_to_service_is_poisson() {
        // When θ = μ the number in system is M/M/∞: Poisson(a), so P(wait) = P(N ≥ n).
        let load = 8.0;
        let queue = Queue {
            arrival_rate_per_s: load / 100.0,
            handle_time_s_mean: 100.0,
            agents: 10,
            patience_s_mean: Some(100.0),
        };
        let figures = queue.figures(20.0).unwrap();
        let mut term = (-load).exp();
        let mut below = 0.0;
        for k in 0..10 {
            if k > 0 {
                term *= load / f64::from(k);
            }
            below += term;
        }
        close(figures.wait_probability, 1.0 - below, 1e-9);
    }

    #[test]
    fn erlang_a_abandonment_agrees_with_littles_law() {
        // P(abandon) = θ·E[Q]/λ must equal 1 − P(served) from the tagged-customer walk.
        let queue = Queue {
            arrival_rate_per_s: 0.5,
            handle_time_s_mean: 40.0,
            agents: 20,
            patience_s_mean: Some(60.0),
        };
        let figures = queue.figures(20.0).unwrap();
        // Recompute E[Q] from the same chain by brute force.
        let (service, abandon) = (1.0 / 40.0, 1.0 / 60.0);
        let mut weights = vec![1.0_f64];
        for k in 1..2000 {
            let out = if k <= 20 {
                k as f64 * service
            } else {
                20.0 * service + (k - 20) as f64 * abandon
            };
            weights.push(weights[k - 1] * 0.5 / out);
        }
        let total: f64 = weights.iter().sum();
        let queue_mean: f64 = weights
            .iter()
            .enumerate()
            .map(|(k, w)| w / total * k.saturating_sub(20) as f64)
            .sum();
        close(figures.abandonment, abandon * queue_mean / 0.5, 1e-9);
    }

    #[test]
    fn erlang_a_approaches_erlang_c_as_patience_grows() {
        let base = Queue {
            arrival_rate_per_s: 100.0 / 1800.0,
            handle_time_s_mean: 180.0,
            agents: 14,
            patience_s_mean: None,
        };
        let c = base.figures(20.0).unwrap();
        let a = Queue {
            patience_s_mean: Some(1e9),
            ..base
        }
        .figures(20.0)
        .unwrap();
        close(a.wait_probability, c.wait_probability, 1e-5);
        close(a.service_level, c.service_level, 1e-5);
        close(a.answer_speed_s_mean, c.answer_speed_s_mean, 1e-3);
        assert!(a.abandonment < 1e-6);
    }

    #[test]
    fn erlang_a_is_stable_when_overloaded() {
        // Overloaded (15 erlangs on 10 agents) is still stable with abandonment.
        let queue = Queue {
            arrival_rate_per_s: 0.15,
            handle_time_s_mean: 100.0,
            agents: 10,
            patience_s_mean: Some(120.0),
        };
        let figures = queue.figures(20.0).unwrap();
        assert!(
            figures.abandonment > 0.2 && figures.abandonment < 0.5,
            "{figures:?}"
        );
        assert!(figures.service_level < 0.5);
    }

    #[test]
    fn agents_required_finds_the_smallest_meeting_targets() {
        let agents = agents_required(100.0 / 1800.0, 180.0, None, 20.0, 0.8, 1.0, 1000).unwrap();
        assert_eq!(agents, 14);
        let below = Queue {
            arrival_rate_per_s: 100.0 / 1800.0,
            handle_time_s_mean: 180.0,
            agents: 13,
            patience_s_mean: None,
        };
        assert!(below.figures(20.0).unwrap().service_level < 0.8);
    }
}
