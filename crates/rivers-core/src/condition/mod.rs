//! Automation conditions: the immutable condition tree users attach to assets, and the pure
//! evaluator the daemon runs over it once per pass.
//!
//! Evaluation works on position ranges ([`RangeSet`](crate::partitions::RangeSet)) rather than
//! on partition keys: the value of a node for an asset is the set of positions where it holds,
//! and every operator is a set operation. An asset with a million partitions of which ten just
//! changed upstream is evaluated in a handful of range merges. The facts come from a
//! [`ConditionFacts`] implementation (the daemon's, backed by storage's range-encoded state),
//! and what a pass must remember is returned as a [`ConditionState`] per asset for the caller
//! to persist.

mod edit;
mod evaluate;
mod facts;
mod tree;

#[cfg(test)]
mod tests;

pub use edit::ConditionMatcher;
pub use evaluate::{AssetEvaluation, ConditionState, Explanation, evaluate_pass};
pub use facts::{ConditionFacts, EvaluationClock, RunPositions};
pub use tree::{Condition, TagFilter};

use crate::definition::NodeDef;
use crate::schedule::ScheduleError;

/// Why a condition cannot be built or edited.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConditionError {
    /// A cron factory got an expression or zone that is not usable.
    #[error("AutomationCondition.{factory}: {source}")]
    InvalidCron {
        /// The factory called.
        factory: &'static str,
        /// Why the cron was refused.
        #[source]
        source: ScheduleError,
    },
    /// `in_latest_time_window` got a lookback that is not a positive, finite number.
    #[error(
        "AutomationCondition.in_latest_time_window: lookback_delta must be a positive, finite number of seconds \
         (or None for the latest window only), not {0}"
    )]
    InvalidLookback(f64),
    /// `without` was called on a condition that is not an `And`.
    #[error("without() removes operands of an And condition, and {description:?} is not one")]
    WithoutOnNonAnd {
        /// The receiver's description.
        description: String,
    },
    /// `without` found no operand to remove.
    #[error("without({target}): no operand matches; the operands are {operands:?}")]
    NothingToRemove {
        /// What was to be removed, as given.
        target: String,
        /// The descriptions of the operands.
        operands: Vec<String>,
    },
}

impl From<ConditionError> for crate::Error {
    fn from(err: ConditionError) -> Self {
        crate::Error::InvalidValue(err.to_string())
    }
}

impl Condition {
    /// A hash of the tree's structure, stable across processes and builds (FNV-1a over the
    /// serialised form): persisted with the evaluation state so that a changed tree starts over.
    pub fn tree_hash(&self) -> u64 {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        *self.0.derived.tree_hash.get_or_init(|| {
            let text = serde_json::to_string(self).unwrap_or_default();
            text.bytes().fold(OFFSET, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME))
        })
    }
}

/// Checks that every `on_selected` key of every node's condition names a node of `nodes`.
///
/// # Errors
/// [`crate::Error::AssetNotFound`] naming the key and the asset wearing the condition.
pub fn check_selected_assets(nodes: &[NodeDef]) -> crate::Result<()> {
    let names: std::collections::HashSet<&str> = nodes
        .iter()
        .flat_map(|node| std::iter::once(node.name.as_str()).chain(node.outputs.iter().map(|o| o.name.as_str())))
        .collect();
    for node in nodes {
        let Some(condition) = &node.automation_condition else { continue };
        if let Some(unknown) = condition.selected_keys().into_iter().find(|key| !names.contains(key.as_str())) {
            return Err(crate::Error::AssetNotFound(format!(
                "the automation_condition of asset '{}' selects '{unknown}' with on_selected(), which is not a \
                 registered asset; register it or fix the key",
                node.name
            )));
        }
    }
    Ok(())
}
