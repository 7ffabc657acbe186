//! Call quality control: the checklist a supervisor scores a finished contact on, and the
//! replicated reviews. (Bincode in the log and snapshots: no skipped fields.)
//!
//! The checklist is site configuration (`[[quality.checklist]]`, default: greeting,
//! identification, accuracy of drug information, order correctness). A review carries the
//! checklist it was scored on, so the state machine checks every score against it on every
//! site alike, and a later change of the configuration does not rewrite the meaning of old
//! scores. A review's score is the weighted share of the points:
//! `Σ weight·points/max_points ÷ Σ weight`, shown in percent.
//!
//! One review per contact and reviewer: a second review by the same supervisor replaces the
//! first (its `revision` counts the replacements), another supervisor's review is kept beside
//! it. Reviews are kept [`REVIEW_RETENTION_MS`] after the first one of their (contact,
//! reviewer), at most [`REVIEWS_MAX`] at a time. Sizing: a QA team scoring 5 contacts per
//! agent and week for 200 agents makes ~150 reviews a day, ~13,500 in 90 days.

use serde::{Deserialize, Serialize};

use super::command::{InvalidCommand, validate_text};
use super::model::{DAY_MS, TimestampMs};

/// Items a checklist may have.
pub const CHECKLIST_ITEMS_MAX: usize = 32;
/// Characters of a checklist item's name.
pub const CHECKLIST_ITEM_NAME_CHARS_MAX: usize = 64;
/// Points one item may be worth at most.
pub const ITEM_POINTS_MAX: u32 = 100;
/// Weight one item may have at most.
pub const ITEM_WEIGHT_MAX: u32 = 100;
/// Characters of a review's comment.
pub const REVIEW_COMMENT_CHARS_MAX: usize = 2_000;
/// Reviews held at most; a new one beyond it is refused (a replacement is not).
pub const REVIEWS_MAX: usize = 50_000;
/// How long a review is kept after the first review of its (contact, reviewer).
pub const REVIEW_RETENTION_MS: u64 = 90 * DAY_MS;
/// Reviews listed per request at most.
pub const REVIEWS_LIST_MAX: usize = 1_000;

/// Identifier of a review (from the state's id sequence).
pub type ReviewId = u64;

/// One item of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecklistItem {
    /// Identifier: 1–64 characters of `a-z`, `0-9`, `_`.
    pub name: String,
    /// Points the item is worth (1–100); a score is 0 to this.
    pub max_points: u32,
    /// Weight in the review's score (1–100).
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// `[quality]`: the checklist supervisors score finished contacts on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualitySection {
    /// The items, in the order the supervisor's form shows them.
    #[serde(default = "default_checklist")]
    pub checklist: Vec<ChecklistItem>,
}

impl Default for QualitySection {
    fn default() -> Self {
        Self {
            checklist: default_checklist(),
        }
    }
}

/// The default checklist: greeting, identification, accuracy of drug information, order
/// correctness (drug information weighs most: a wrong dose or analogue is the costly error).
pub fn default_checklist() -> Vec<ChecklistItem> {
    let item = |name: &str, max_points, weight| ChecklistItem {
        name: name.to_string(),
        max_points,
        weight,
    };
    vec![
        item("greeting", 5, 1),
        item("identification", 5, 1),
        item("drug_information", 10, 3),
        item("order_correctness", 10, 2),
    ]
}

/// Checks a checklist: 1 to [`CHECKLIST_ITEMS_MAX`] items with unique valid names, points
/// and weights in range. The error names the field as `checklist[i].field`.
pub fn validate_checklist(checklist: &[ChecklistItem]) -> Result<(), InvalidCommand> {
    if checklist.is_empty() || checklist.len() > CHECKLIST_ITEMS_MAX {
        return Err(InvalidCommand::new(
            "checklist",
            &format!("must have 1 to {CHECKLIST_ITEMS_MAX} items"),
        ));
    }
    for (position, item) in checklist.iter().enumerate() {
        let field = |name: &str| format!("checklist[{position}].{name}");
        let valid_name = !item.name.is_empty()
            && item.name.len() <= CHECKLIST_ITEM_NAME_CHARS_MAX
            && item
                .name
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_');
        if !valid_name {
            return Err(InvalidCommand::new(
                &field("name"),
                &format!("must be 1 to {CHECKLIST_ITEM_NAME_CHARS_MAX} characters of a-z, 0-9, _"),
            ));
        }
        if checklist[..position]
            .iter()
            .any(|earlier| earlier.name == item.name)
        {
            return Err(InvalidCommand::new(&field("name"), "must be unique"));
        }
        if item.max_points == 0 || item.max_points > ITEM_POINTS_MAX {
            return Err(InvalidCommand::new(
                &field("max_points"),
                &format!("must be between 1 and {ITEM_POINTS_MAX}"),
            ));
        }
        if item.weight == 0 || item.weight > ITEM_WEIGHT_MAX {
            return Err(InvalidCommand::new(
                &field("weight"),
                &format!("must be between 1 and {ITEM_WEIGHT_MAX}"),
            ));
        }
    }
    Ok(())
}

/// The points given for one checklist item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemScore {
    /// The checklist item's name.
    pub item: String,
    /// Points, 0 to the item's `max_points`.
    pub points: u32,
}

/// Checks `scores` against `checklist` (itself valid): every item scored exactly once, no
/// unknown item, points within the item's range; and the comment's length.
pub fn validate_scores(
    checklist: &[ChecklistItem],
    scores: &[ItemScore],
    comment: &str,
) -> Result<(), InvalidCommand> {
    validate_checklist(checklist)?;
    for (position, score) in scores.iter().enumerate() {
        let Some(item) = checklist.iter().find(|item| item.name == score.item) else {
            return Err(InvalidCommand::new(
                "scores.item",
                &format!("unknown checklist item `{}`", score.item.escape_debug()),
            ));
        };
        if scores[..position]
            .iter()
            .any(|earlier| earlier.item == score.item)
        {
            return Err(InvalidCommand::new(
                "scores.item",
                &format!("`{}` is scored twice", score.item),
            ));
        }
        if score.points > item.max_points {
            return Err(InvalidCommand::new(
                "scores.points",
                &format!(
                    "`{}` is worth 0 to {} points, not {}",
                    item.name, item.max_points, score.points
                ),
            ));
        }
    }
    if let Some(missing) = checklist
        .iter()
        .find(|item| !scores.iter().any(|score| score.item == item.name))
    {
        return Err(InvalidCommand::new(
            "scores",
            &format!("checklist item `{}` is not scored", missing.name),
        ));
    }
    validate_text("comment", comment, REVIEW_COMMENT_CHARS_MAX, true)
}

/// The weighted score of `scores` on `checklist`, 0 to 100 (percent).
pub fn score_percent(checklist: &[ChecklistItem], scores: &[ItemScore]) -> f64 {
    let mut weighted = 0.0;
    let mut weights = 0.0;
    for item in checklist {
        let points = scores
            .iter()
            .find(|score| score.item == item.name)
            .map_or(0, |score| score.points);
        weighted += f64::from(item.weight) * f64::from(points) / f64::from(item.max_points);
        weights += f64::from(item.weight);
    }
    if weights > 0.0 {
        100.0 * weighted / weights
    } else {
        0.0
    }
}

/// A supervisor's review of one finished contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// Identifier.
    pub id: ReviewId,
    /// The contact's id at its site.
    pub contact: u64,
    /// The site that served the contact.
    pub site: String,
    /// The agent who (last) answered it: the one scored.
    pub agent: String,
    /// The contact's queue.
    pub skill: String,
    /// When the caller arrived in the chain.
    pub arrived_at_ms: TimestampMs,
    /// When the contact ended (the ledger's last stage change).
    pub ended_at_ms: TimestampMs,
    /// The gateway's recording reference, if it gave one.
    pub recording_ref: Option<String>,
    /// The supervisor's name.
    pub reviewer: String,
    /// When it was (last) scored.
    pub reviewed_at_ms: TimestampMs,
    /// The checklist it was scored on.
    pub checklist: Vec<ChecklistItem>,
    /// Points per item.
    pub scores: Vec<ItemScore>,
    /// The supervisor's comment.
    pub comment: String,
    /// Replacements by the same reviewer (0 for the first review).
    pub revision: u32,
}

impl Review {
    /// The weighted score, 0 to 100.
    pub fn score_percent(&self) -> f64 {
        score_percent(&self.checklist, &self.scores)
    }
}

/// How many reviews and their mean score: one agent's quality figure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct QualityFigure {
    /// Reviews counted.
    pub reviews: u64,
    /// Mean score in percent (`None` without reviews).
    pub score_percent_mean: Option<f64>,
}

impl QualityFigure {
    /// The figure of `reviews`.
    pub fn of<'a>(reviews: impl IntoIterator<Item = &'a Review>) -> Self {
        let (count, sum) = reviews
            .into_iter()
            .fold((0_u64, 0.0), |(count, sum), review| {
                (count + 1, sum + review.score_percent())
            });
        Self {
            reviews: count,
            score_percent_mean: (count > 0).then(|| sum / count as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn scores(points: &[(&str, u32)]) -> Vec<ItemScore> {
        points
            .iter()
            .map(|(item, points)| ItemScore {
                item: (*item).to_string(),
                points: *points,
            })
            .collect()
    }

    #[test]
    fn the_default_checklist_is_valid_and_weighted() {
        let checklist = default_checklist();
        validate_checklist(&checklist).unwrap();
        let full = scores(&[
            ("greeting", 5),
            ("identification", 5),
            ("drug_information", 10),
            ("order_correctness", 10),
        ]);
        validate_scores(&checklist, &full, "").unwrap();
        assert!((score_percent(&checklist, &full) - 100.0).abs() < 1e-9);
        // Drug information (weight 3 of 7) alone missed: 4/7.
        let no_drug = scores(&[
            ("greeting", 5),
            ("identification", 5),
            ("drug_information", 0),
            ("order_correctness", 10),
        ]);
        assert!((score_percent(&checklist, &no_drug) - 400.0 / 7.0).abs() < 1e-9);
    }

    #[test]
    fn checklists_and_scores_are_refused_with_the_field() {
        let item = |name: &str, max_points, weight| ChecklistItem {
            name: name.to_string(),
            max_points,
            weight,
        };
        let field = |result: Result<(), InvalidCommand>| result.unwrap_err().field;
        assert_eq!(field(validate_checklist(&[])), "checklist");
        assert_eq!(
            field(validate_checklist(&[item("Greeting", 5, 1)])),
            "checklist[0].name"
        );
        assert_eq!(
            field(validate_checklist(&[item("a", 5, 1), item("a", 5, 1)])),
            "checklist[1].name"
        );
        assert_eq!(
            field(validate_checklist(&[item("a", 0, 1)])),
            "checklist[0].max_points"
        );
        assert_eq!(
            field(validate_checklist(&[item("a", 5, 101)])),
            "checklist[0].weight"
        );
        let checklist = [item("a", 5, 1), item("b", 3, 1)];
        let check = |points: &[(&str, u32)], comment: &str| {
            validate_scores(&checklist, &scores(points), comment)
        };
        assert_eq!(field(check(&[("a", 5), ("c", 1)], "")), "scores.item");
        assert_eq!(field(check(&[("a", 5), ("a", 1)], "")), "scores.item");
        assert_eq!(field(check(&[("a", 6), ("b", 1)], "")), "scores.points");
        assert_eq!(field(check(&[("a", 5)], "")), "scores");
        assert_eq!(field(check(&[("a", 5), ("b", 3)], "\u{7}")), "comment");
        check(&[("b", 0), ("a", 5)], "fine\nthanks").unwrap();
    }
}
