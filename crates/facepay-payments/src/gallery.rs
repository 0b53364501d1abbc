//! The in-memory gallery of enrolled templates and the exact 1:N search.
//! A later index replaces the scan; the decision rules stay here.

use std::sync::RwLock;

/// Most candidates a search returns, and so the most a step-up chooses among.
pub const CANDIDATES_MAX: usize = 5;

#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub user_id: String,
    pub score: f32,
}

#[derive(Default)]
pub struct Gallery {
    entries: RwLock<Vec<(String, Vec<f32>)>>,
}

impl Gallery {
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, user_id: &str) -> bool {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.iter().any(|(id, _)| id == user_id)
    }

    pub fn insert(&self, user_id: String, vector: Vec<f32>) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.retain(|(id, _)| *id != user_id);
        entries.push((user_id, vector));
    }

    pub fn remove(&self, user_id: &str) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.retain(|(id, _)| id != user_id);
    }

    /// The best candidates at or above `floor`, best first. Vectors are
    /// L2-normalised, so the dot product is the cosine.
    pub fn search(&self, probe: &[f32], floor: f32) -> Vec<Candidate> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let mut best: Vec<Candidate> = Vec::with_capacity(CANDIDATES_MAX + 1);
        for (user_id, vector) in entries.iter() {
            if vector.len() != probe.len() {
                continue;
            }
            let score: f32 = vector.iter().zip(probe).map(|(a, b)| a * b).sum();
            if score < floor {
                continue;
            }
            if best.len() == CANDIDATES_MAX && best[CANDIDATES_MAX - 1].score >= score {
                continue;
            }
            let at = best.partition_point(|c| c.score >= score);
            best.insert(
                at,
                Candidate {
                    user_id: user_id.clone(),
                    score,
                },
            );
            best.truncate(CANDIDATES_MAX);
        }
        best
    }
}

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

    fn unit(angle: f32) -> Vec<f32> {
        vec![angle.cos(), angle.sin()]
    }

    #[test]
    fn search_ranks_and_bounds_candidates() {
        let gallery = Gallery::default();
        for i in 0..20 {
            gallery.insert(format!("u{i}"), unit(i as f32 * 0.05));
        }
        let found = gallery.search(&unit(0.0), 0.0);
        assert_eq!(found.len(), CANDIDATES_MAX);
        assert_eq!(found[0].user_id, "u0");
        assert!(found.windows(2).all(|w| w[0].score >= w[1].score));
        gallery.remove("u0");
        assert_eq!(gallery.search(&unit(0.0), 0.0)[0].user_id, "u1");
        assert!(gallery.search(&unit(3.0), 0.9).is_empty());
    }

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
