//! The open-set decision: a search's candidates become `match`,
//! `ambiguous` (ask the payer) or `no_match`, never just "the nearest".

use crate::Candidate;

/// What the search means for a payment.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// One candidate, strong, clearly ahead of the next.
    Match(Candidate),
    /// Candidates above the threshold but not one clear winner: ask the payer.
    Ambiguous(Vec<Candidate>),
    NoMatch,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecisionPolicy {
    /// Below this a candidate is not the payer at all.
    pub match_threshold: f32,
    /// At or above this (and clear of the second) no step-up is needed.
    pub strong_threshold: f32,
    /// How far the best must lead the second to count as clear.
    pub margin_min: f32,
}

impl Default for DecisionPolicy {
    /// From `facepay eval verify` on the labelled photos: at 0.363 no
    /// impostor pair and no genuine pair is misjudged; the highest impostor
    /// scored 0.328 and the lowest genuine pair 0.545, so 0.5 and up is
    /// strong and a lead of 0.1 separates people.
    fn default() -> Self {
        Self {
            match_threshold: 0.363,
            strong_threshold: 0.5,
            margin_min: 0.1,
        }
    }
}

impl DecisionPolicy {
    pub fn decide(&self, candidates: Vec<Candidate>) -> Decision {
        let Some(best) = candidates.first() else {
            return Decision::NoMatch;
        };
        let clear = candidates
            .get(1)
            .is_none_or(|second| best.score - second.score >= self.margin_min);
        if best.score >= self.strong_threshold && clear {
            Decision::Match(best.clone())
        } else {
            Decision::Ambiguous(candidates)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_step_up_when_weak_or_close() {
        let policy = DecisionPolicy::default();
        let c = |id: &str, score| Candidate {
            user_id: id.into(),
            score,
        };
        assert_eq!(policy.decide(vec![]), Decision::NoMatch);
        assert_eq!(
            policy.decide(vec![c("a", 0.8), c("b", 0.4)]),
            Decision::Match(c("a", 0.8))
        );
        assert!(
            matches!(policy.decide(vec![c("a", 0.8), c("b", 0.75)]), Decision::Ambiguous(v) if v.len() == 2)
        );
        assert!(
            matches!(policy.decide(vec![c("a", 0.45)]), Decision::Ambiguous(v) if v.len() == 1)
        );
    }
}
