//! `replace` and `without`: copies of a tree with matching sub-conditions swapped or removed.
//!
//! A node whose operands changed loses its label: a label names the exact tree it was given to
//! (`eager`), and a modified tree is no longer that tree, so its description shows what it is.

use super::ConditionError;
use super::tree::{Condition, Kind};

/// What `replace` / `without` look for: a description (labels render as themselves) or a
/// structurally equal condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConditionMatcher {
    /// A node whose description (its label, when labelled) equals the text.
    Description(String),
    /// A structurally equal node.
    Condition(Condition),
}

impl ConditionMatcher {
    fn matches(&self, node: &Condition) -> bool {
        match self {
            ConditionMatcher::Description(text) => node.description() == *text,
            ConditionMatcher::Condition(condition) => node == condition,
        }
    }

    /// `without` also removes `~X` when the text names `X`.
    fn matches_operand(&self, operand: &Condition) -> bool {
        if self.matches(operand) {
            return true;
        }
        match (self, operand.kind()) {
            (ConditionMatcher::Description(text), Kind::Not { operand: inner }) => inner.description() == *text,
            _ => false,
        }
    }

    fn shown(&self) -> String {
        match self {
            ConditionMatcher::Description(text) => format!("{text:?}"),
            ConditionMatcher::Condition(condition) => format!("{:?}", condition.description()),
        }
    }
}

impl Condition {
    /// A copy with every sub-condition matching `old` replaced by `new`, recursively (an
    /// unchanged copy when nothing matches).
    pub fn replace(&self, old: &ConditionMatcher, new: &Condition) -> Condition {
        if old.matches(self) {
            return new.clone();
        }
        let replaced = self.kind().map_children(|child| child.replace(old, new));
        if replaced == *self.kind() {
            return self.clone();
        }
        Condition::from_parts(None, replaced)
    }

    /// A copy of this `And` without the operands matching `target`.
    ///
    /// # Errors
    /// [`ConditionError::WithoutOnNonAnd`] when `self` is not an `And`;
    /// [`ConditionError::NothingToRemove`] when no operand matches.
    pub fn without(&self, target: &ConditionMatcher) -> Result<Condition, ConditionError> {
        let Kind::And { operands } = self.kind() else {
            return Err(ConditionError::WithoutOnNonAnd { description: self.description() });
        };
        let kept: Vec<Condition> = operands.iter().filter(|op| !target.matches_operand(op)).cloned().collect();
        if kept.len() == operands.len() {
            return Err(ConditionError::NothingToRemove {
                target: target.shown(),
                operands: operands.iter().map(Condition::description).collect(),
            });
        }
        Ok(Condition::from_parts(None, Kind::And { operands: kept }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> ConditionMatcher {
        ConditionMatcher::Description(s.into())
    }

    #[test]
    fn without_removes_a_guard_by_description_label_or_structure() {
        let eager = Condition::eager();
        let by_structure = ConditionMatcher::Condition(!Condition::any_deps_missing());
        for target in [text("~any_deps_missing"), text("any_deps_missing"), by_structure] {
            let relaxed = eager.without(&target).unwrap();
            assert_eq!(relaxed.children().len(), 4);
            assert!(!relaxed.description().contains("any_deps_missing"), "{}", relaxed.description());
            assert_eq!(relaxed.label(), None, "a modified preset is no longer the preset");
        }
        assert_eq!(eager, Condition::eager(), "the original is untouched");
        let err = eager.without(&text("nothing")).unwrap_err();
        assert!(matches!(&err, ConditionError::NothingToRemove { operands, .. } if operands.len() == 5), "{err}");
        let err = Condition::missing().without(&text("missing")).unwrap_err();
        assert!(matches!(err, ConditionError::WithoutOnNonAnd { .. }));
    }

    #[test]
    fn replace_swaps_every_match_and_leaves_the_rest_shared() {
        let tree = Condition::missing() & !Condition::missing() & Condition::in_progress();
        let replaced = tree.replace(&text("missing"), &Condition::execution_failed());
        assert_eq!(replaced.description(), "execution_failed & ~execution_failed & in_progress");
        assert_eq!(tree.description(), "missing & ~missing & in_progress");
        let by_structure = ConditionMatcher::Condition(!Condition::missing());
        assert_eq!(
            tree.replace(&by_structure, &Condition::in_progress()).description(),
            "missing & in_progress & in_progress"
        );
        assert_eq!(tree.replace(&text("absent"), &Condition::missing()), tree, "no match: an equal copy");
        let eager = Condition::eager().replace(&text("in_flight"), &Condition::in_progress());
        assert!(eager.description().contains("~in_progress"), "{}", eager.description());
        let labelled = Condition::eager().replace(&text("eager"), &Condition::on_missing());
        assert_eq!(labelled, Condition::on_missing(), "the root itself matches by label");
    }
}
