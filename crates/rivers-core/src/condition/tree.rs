//! The condition tree: leaves with their parameters, operators, presets, and the rendering of a
//! tree as its `description`.
//!
//! A [`Condition`] is immutable and shares its children through `Arc`, so combining conditions
//! or handing one to every asset of a large repository copies pointers, not trees.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ConditionError;
use crate::schedule::CronSchedule;

/// An automation condition: a leaf or an operator over conditions, with an optional label.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Condition(pub(super) Arc<Node>);

#[derive(Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(super) struct Node {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) label: Option<String>,
    #[serde(flatten)]
    pub(super) kind: Kind,
    #[serde(skip)]
    pub(super) derived: Derived,
}

/// What is derived from a node, computed once: every pass asks every asset's tree for its
/// hash, its selected keys and each node's description, and a tree never changes. Not part of
/// the node's identity (equality and hashing ignore it).
#[derive(Debug, Default)]
pub(super) struct Derived {
    pub(super) tree_hash: std::sync::OnceLock<u64>,
    description: std::sync::OnceLock<String>,
    selected_keys: std::sync::OnceLock<Vec<String>>,
}

impl PartialEq for Derived {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Derived {}

impl Hash for Derived {
    fn hash<H: Hasher>(&self, _: &mut H) {}
}

/// What a node computes. Leaves read facts about the inspected asset; the rest combine.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Kind {
    Missing,
    InProgress,
    ExecutionFailed,
    NewlyUpdated,
    NewlyRequested,
    CodeVersionChanged,
    DataVersionChanged,
    CronTickPassed { cron: CronSpec },
    InLatestTimeWindow { lookback_delta: Option<Lookback> },
    InitialEvaluation,
    BackfillInProgress,
    WillBeRequested,
    LastRunIncludesTarget,
    LastExecutedWithTags { tags: TagFilter },
    HasRunWithTags { tags: TagFilter },
    AllRunsHaveTags { tags: TagFilter },
    And { operands: Vec<Condition> },
    Or { operands: Vec<Condition> },
    Not { operand: Condition },
    NewlyTrue { operand: Condition },
    Since { trigger: Condition, reset: Condition },
    SinceLastHandled { operand: Condition },
    OnSelected { operand: Condition, keys: Vec<String> },
    AnyDepsMatch { operand: Condition },
    AllDepsMatch { operand: Condition },
}

/// A validated cron expression in a zone; compared and serialised by expression and zone name.
#[derive(Clone, Debug)]
pub(super) struct CronSpec {
    pub(super) schedule: CronSchedule,
    timezone: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct CronFields {
    cron_schedule: String,
    #[serde(default)]
    timezone: Option<String>,
}

impl CronSpec {
    fn parse(factory: &'static str, expression: &str, timezone: Option<&str>) -> Result<Self, ConditionError> {
        let schedule = CronSchedule::parse(expression, timezone)
            .map_err(|source| ConditionError::InvalidCron { factory, source })?;
        Ok(CronSpec { schedule, timezone: timezone.map(str::to_owned) })
    }

    fn args(&self) -> String {
        match &self.timezone {
            Some(zone) => format!("'{}', '{zone}'", self.schedule.expression()),
            None => format!("'{}'", self.schedule.expression()),
        }
    }
}

impl PartialEq for CronSpec {
    fn eq(&self, other: &Self) -> bool {
        self.schedule.expression() == other.schedule.expression() && self.timezone == other.timezone
    }
}

impl Eq for CronSpec {}

impl Hash for CronSpec {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.schedule.expression().hash(state);
        self.timezone.hash(state);
    }
}

impl Serialize for CronSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        CronFields { cron_schedule: self.schedule.expression().to_owned(), timezone: self.timezone.clone() }
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CronSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = CronFields::deserialize(deserializer)?;
        CronSpec::parse("cron_tick_passed", &fields.cron_schedule, fields.timezone.as_deref())
            .map_err(serde::de::Error::custom)
    }
}

/// A positive, finite number of seconds (validated on construction), compared by value.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub(super) struct Lookback(pub(super) f64);

impl PartialEq for Lookback {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Lookback {}

impl Hash for Lookback {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

/// Which runs a tag leaf accepts: every key in `tag_keys` present (any value) and every pair in
/// `tag_values` present exactly. With neither given, any run matches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TagFilter {
    /// Keys the run must carry, with any value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_keys: Option<Vec<String>>,
    /// Exact `(key, value)` pairs the run must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_values: Option<Vec<(String, String)>>,
}

impl TagFilter {
    /// Whether a run with `tags` passes the filter.
    pub fn matches(&self, tags: &std::collections::BTreeMap<String, String>) -> bool {
        self.tag_keys.iter().flatten().all(|key| tags.contains_key(key))
            && self.tag_values.iter().flatten().all(|(key, value)| tags.get(key) == Some(value))
    }

    fn args(&self) -> String {
        let mut parts = Vec::new();
        if let Some(keys) = &self.tag_keys {
            let keys: Vec<String> = keys.iter().map(|k| format!("'{k}'")).collect();
            parts.push(format!("tag_keys=[{}]", keys.join(", ")));
        }
        if let Some(pairs) = &self.tag_values {
            let pairs: Vec<String> = pairs.iter().map(|(k, v)| format!("('{k}', '{v}')")).collect();
            parts.push(format!("tag_values=[{}]", pairs.join(", ")));
        }
        parts.join(", ")
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Node::deserialize(deserializer).map(|node| Condition(Arc::new(node)))
    }
}

/// Leaves.
impl Condition {
    fn leaf(kind: Kind) -> Self {
        Condition(Arc::new(Node { label: None, kind, derived: Derived::default() }))
    }

    fn labelled(kind: Kind, label: &str) -> Self {
        Condition(Arc::new(Node { label: Some(label.to_owned()), kind, derived: Derived::default() }))
    }

    /// The asset (partition) has never been materialized.
    pub fn missing() -> Self {
        Self::leaf(Kind::Missing)
    }

    /// The asset (partition) is part of a run that has not reached a terminal status.
    pub fn in_progress() -> Self {
        Self::leaf(Kind::InProgress)
    }

    /// The latest execution of the asset (partition) failed.
    pub fn execution_failed() -> Self {
        Self::leaf(Kind::ExecutionFailed)
    }

    /// Materialized (external assets: observed) since the previous evaluation.
    pub fn newly_updated() -> Self {
        Self::leaf(Kind::NewlyUpdated)
    }

    /// Requested by the daemon at the previous evaluation.
    pub fn newly_requested() -> Self {
        Self::leaf(Kind::NewlyRequested)
    }

    /// The declared code version differs from the last materialization's.
    pub fn code_version_changed() -> Self {
        Self::leaf(Kind::CodeVersionChanged)
    }

    /// The data version differs from the one seen at the previous evaluation.
    pub fn data_version_changed() -> Self {
        Self::leaf(Kind::DataVersionChanged)
    }

    /// A tick of `expression` in `timezone` lies between the previous and this evaluation.
    ///
    /// # Errors
    /// [`ConditionError::InvalidCron`] for an expression or zone [`CronSchedule`] refuses.
    pub fn cron_tick_passed(expression: &str, timezone: Option<&str>) -> Result<Self, ConditionError> {
        Ok(Self::leaf(Kind::CronTickPassed { cron: CronSpec::parse("cron_tick_passed", expression, timezone)? }))
    }

    /// The partition lies in the latest time window, or within `lookback_delta` seconds before
    /// its start.
    ///
    /// # Errors
    /// [`ConditionError::InvalidLookback`] for a lookback that is not positive and finite.
    pub fn in_latest_time_window(lookback_delta: Option<f64>) -> Result<Self, ConditionError> {
        if let Some(seconds) = lookback_delta
            && !(seconds.is_finite() && seconds > 0.0)
        {
            return Err(ConditionError::InvalidLookback(seconds));
        }
        Ok(Self::leaf(Kind::InLatestTimeWindow { lookback_delta: lookback_delta.map(Lookback) }))
    }

    /// The condition has not been evaluated before, or its tree changed since.
    pub fn initial_evaluation() -> Self {
        Self::leaf(Kind::InitialEvaluation)
    }

    /// The asset (partition) is targeted by an active backfill.
    pub fn backfill_in_progress() -> Self {
        Self::leaf(Kind::BackfillInProgress)
    }

    /// `in_progress() | backfill_in_progress()`, labelled `in_flight`.
    pub fn in_flight() -> Self {
        (Self::in_progress() | Self::backfill_in_progress()).with_label("in_flight")
    }

    /// The asset's own condition fired earlier in the current pass.
    pub fn will_be_requested() -> Self {
        Self::leaf(Kind::WillBeRequested)
    }

    /// The inspected asset's latest run also targeted the asset wearing the condition.
    pub fn last_run_includes_target() -> Self {
        Self::leaf(Kind::LastRunIncludesTarget)
    }

    /// The run that last materialized the asset (partition) passes `tags`.
    pub fn last_executed_with_tags(tags: TagFilter) -> Self {
        Self::leaf(Kind::LastExecutedWithTags { tags })
    }

    /// Some materialization new since the previous evaluation came from a run passing `tags`.
    pub fn has_run_with_tags(tags: TagFilter) -> Self {
        Self::leaf(Kind::HasRunWithTags { tags })
    }

    /// Every materialization new since the previous evaluation came from a run passing `tags`.
    pub fn all_runs_have_tags(tags: TagFilter) -> Self {
        Self::leaf(Kind::AllRunsHaveTags { tags })
    }
}

/// Dependency aggregates and presets.
impl Condition {
    /// Some dep (some mapped upstream partition) satisfies `condition`.
    pub fn any_deps_match(condition: Condition) -> Self {
        Self::leaf(Kind::AnyDepsMatch { operand: condition })
    }

    /// Every dep (every mapped upstream partition) satisfies `condition`.
    pub fn all_deps_match(condition: Condition) -> Self {
        Self::leaf(Kind::AllDepsMatch { operand: condition })
    }

    /// A dep is missing and not being requested in this pass.
    pub fn any_deps_missing() -> Self {
        Self::any_deps_match(Self::missing() & !Self::will_be_requested()).with_label("any_deps_missing")
    }

    /// A dep is in progress.
    pub fn any_deps_in_progress() -> Self {
        Self::any_deps_match(Self::in_progress()).with_label("any_deps_in_progress")
    }

    /// A dep updated in a run that did not also target this asset, or is requested in this pass.
    pub fn any_deps_updated() -> Self {
        let updated_elsewhere = Self::newly_updated() & !Self::last_run_includes_target();
        Self::any_deps_match(updated_elsewhere | Self::will_be_requested()).with_label("any_deps_updated")
    }

    /// Every dep updated since the latest tick of the cron, or is requested in this pass.
    ///
    /// # Errors
    /// [`ConditionError::InvalidCron`] for an expression or zone [`CronSchedule`] refuses.
    pub fn all_deps_updated_since_cron(expression: &str, timezone: Option<&str>) -> Result<Self, ConditionError> {
        let tick = Self::cron_leaf("all_deps_updated_since_cron", expression, timezone)?;
        let updated = Self::newly_updated().since(tick) | Self::will_be_requested();
        Ok(Self::all_deps_match(updated).with_label("all_deps_updated_since_cron"))
    }

    fn cron_leaf(factory: &'static str, expression: &str, timezone: Option<&str>) -> Result<Self, ConditionError> {
        Ok(Self::leaf(Kind::CronTickPassed { cron: CronSpec::parse(factory, expression, timezone)? }))
    }

    /// Fire when the asset becomes missing or a dep updated, never while a dep is missing or
    /// running, the asset is in flight, or its latest execution failed.
    pub fn eager() -> Self {
        let trigger = (Self::missing().newly_true() | Self::any_deps_updated()).since_last_handled();
        let operands = vec![
            trigger,
            !Self::any_deps_missing(),
            !Self::any_deps_in_progress(),
            !Self::in_flight(),
            !Self::execution_failed(),
        ];
        Self::labelled(Kind::And { operands }, "eager")
    }

    /// Fire at most once per cron period, once every dep updated since the period began.
    ///
    /// # Errors
    /// [`ConditionError::InvalidCron`] for an expression or zone [`CronSchedule`] refuses.
    pub fn on_cron(expression: &str, timezone: Option<&str>) -> Result<Self, ConditionError> {
        let tick = Self::cron_leaf("on_cron", expression, timezone)?;
        let handled = (Self::newly_requested() | Self::newly_updated()) & !tick.clone();
        let operands =
            vec![tick.since(handled), Self::all_deps_updated_since_cron(expression, timezone)?, !Self::in_flight()];
        Ok(Self::labelled(Kind::And { operands }, "on_cron"))
    }

    /// Fire once when the asset (partition) goes missing, never for a failed partition, never
    /// while in flight.
    pub fn on_missing() -> Self {
        let trigger = (Self::missing() & !Self::execution_failed()).newly_true().since_last_handled();
        Self::labelled(Kind::And { operands: vec![trigger, !Self::in_flight()] }, "on_missing")
    }
}

/// Operators.
impl Condition {
    /// Rising edge: true where `self` is true now and was false at the previous evaluation.
    pub fn newly_true(self) -> Self {
        Self::leaf(Kind::NewlyTrue { operand: self })
    }

    /// Latch: true from when `self` is true until `reset` is (reset wins ties).
    pub fn since(self, reset: Condition) -> Self {
        Self::leaf(Kind::Since { trigger: self, reset })
    }

    /// `self`, except where the daemon requested the asset at the previous evaluation.
    pub fn since_last_handled(self) -> Self {
        Self::leaf(Kind::SinceLastHandled { operand: self })
    }

    /// `self` evaluated against the named assets instead of the wearer.
    pub fn on_selected(self, keys: Vec<String>) -> Self {
        Self::leaf(Kind::OnSelected { operand: self, keys })
    }

    /// The same condition labelled `label` (its description becomes the label).
    pub fn with_label(self, label: impl Into<String>) -> Self {
        Self::from_parts(Some(label.into()), self.0.kind.clone())
    }

    /// `And` (`conjunction`) or `Or` of both sides, splicing in the operands of a side that is
    /// an unlabelled node of the same operator.
    fn combined(sides: [Self; 2], conjunction: bool) -> Self {
        let mut operands = Vec::new();
        for side in sides {
            let same_operator = match (&side.0.label, &side.0.kind) {
                (None, Kind::And { operands: inner }) if conjunction => Some(inner),
                (None, Kind::Or { operands: inner }) if !conjunction => Some(inner),
                _ => None,
            };
            if let Some(inner) = same_operator {
                operands.extend(inner.iter().cloned());
                continue;
            }
            operands.push(side);
        }
        Self::leaf(if conjunction { Kind::And { operands } } else { Kind::Or { operands } })
    }
}

impl std::ops::BitAnd for Condition {
    type Output = Condition;

    /// Both hold; unlabelled `And` operands are flattened into the result.
    fn bitand(self, other: Condition) -> Condition {
        Condition::combined([self, other], true)
    }
}

impl std::ops::BitOr for Condition {
    type Output = Condition;

    /// Either holds; unlabelled `Or` operands are flattened into the result.
    fn bitor(self, other: Condition) -> Condition {
        Condition::combined([self, other], false)
    }
}

impl std::ops::Not for Condition {
    type Output = Condition;

    fn not(self) -> Condition {
        Condition::leaf(Kind::Not { operand: self })
    }
}

impl Kind {
    /// The direct operands, in order.
    pub(super) fn children(&self) -> Vec<Condition> {
        match self {
            Kind::And { operands } | Kind::Or { operands } => operands.clone(),
            Kind::Not { operand }
            | Kind::NewlyTrue { operand }
            | Kind::SinceLastHandled { operand }
            | Kind::OnSelected { operand, .. }
            | Kind::AnyDepsMatch { operand }
            | Kind::AllDepsMatch { operand } => vec![operand.clone()],
            Kind::Since { trigger, reset } => vec![trigger.clone(), reset.clone()],
            _ => Vec::new(),
        }
    }

    /// The same node with every direct operand passed through `f`; a leaf is copied.
    pub(super) fn map_children(&self, mut f: impl FnMut(&Condition) -> Condition) -> Kind {
        match self {
            Kind::And { operands } => Kind::And { operands: operands.iter().map(f).collect() },
            Kind::Or { operands } => Kind::Or { operands: operands.iter().map(f).collect() },
            Kind::Not { operand } => Kind::Not { operand: f(operand) },
            Kind::NewlyTrue { operand } => Kind::NewlyTrue { operand: f(operand) },
            Kind::SinceLastHandled { operand } => Kind::SinceLastHandled { operand: f(operand) },
            Kind::OnSelected { operand, keys } => Kind::OnSelected { operand: f(operand), keys: keys.clone() },
            Kind::AnyDepsMatch { operand } => Kind::AnyDepsMatch { operand: f(operand) },
            Kind::AllDepsMatch { operand } => Kind::AllDepsMatch { operand: f(operand) },
            Kind::Since { trigger, reset } => {
                let trigger = f(trigger);
                Kind::Since { trigger, reset: f(reset) }
            }
            leaf => leaf.clone(),
        }
    }
}

/// Accessors and rendering.
impl Condition {
    /// The label, when one was given (presets and labelled composites carry one).
    pub fn label(&self) -> Option<&str> {
        self.0.label.as_deref()
    }

    /// The direct operands; empty for leaves.
    pub fn children(&self) -> Vec<Condition> {
        self.0.kind.children()
    }

    pub(super) fn kind(&self) -> &Kind {
        &self.0.kind
    }

    pub(super) fn from_parts(label: Option<String>, kind: Kind) -> Self {
        Condition(Arc::new(Node { label, kind, derived: Derived::default() }))
    }

    /// Every asset key named by an `on_selected` anywhere in the tree.
    pub fn selected_keys(&self) -> Vec<String> {
        self.0
            .derived
            .selected_keys
            .get_or_init(|| {
                let mut keys = match &self.0.kind {
                    Kind::OnSelected { keys, .. } => keys.clone(),
                    _ => Vec::new(),
                };
                keys.extend(self.children().iter().flat_map(Condition::selected_keys));
                keys
            })
            .clone()
    }

    /// The rendering of the whole tree: a labelled node as its label, a leaf as its factory
    /// name (with its arguments), `~x`, operands joined by ` & ` / ` | ` with composite
    /// operands in parentheses, and the structural methods as method calls.
    pub fn description(&self) -> String {
        self.0.derived.description.get_or_init(|| self.to_string()).clone()
    }

    /// An unlabelled `And`/`Or`, which needs parentheses inside another operator.
    fn is_composite(&self) -> bool {
        self.0.label.is_none() && matches!(self.0.kind, Kind::And { .. } | Kind::Or { .. })
    }

    /// Writes `self` as the receiver of a method call or the operand of `~`.
    fn fmt_operand(&self, f: &mut fmt::Formatter<'_>, parenthesise_not: bool) -> fmt::Result {
        let negation = self.0.label.is_none() && matches!(self.0.kind, Kind::Not { .. });
        if self.is_composite() || (parenthesise_not && negation) { write!(f, "({self})") } else { write!(f, "{self}") }
    }

    fn fmt_leaf(&self, f: &mut fmt::Formatter<'_>, name: &str, args: String) -> fmt::Result {
        if args.is_empty() { f.write_str(name) } else { write!(f, "{name}({args})") }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(label) = &self.0.label {
            return f.write_str(label);
        }
        match &self.0.kind {
            Kind::Missing => f.write_str("missing"),
            Kind::InProgress => f.write_str("in_progress"),
            Kind::ExecutionFailed => f.write_str("execution_failed"),
            Kind::NewlyUpdated => f.write_str("newly_updated"),
            Kind::NewlyRequested => f.write_str("newly_requested"),
            Kind::CodeVersionChanged => f.write_str("code_version_changed"),
            Kind::DataVersionChanged => f.write_str("data_version_changed"),
            Kind::CronTickPassed { cron } => self.fmt_leaf(f, "cron_tick_passed", cron.args()),
            Kind::InLatestTimeWindow { lookback_delta } => self.fmt_leaf(
                f,
                "in_latest_time_window",
                lookback_delta.map(|Lookback(seconds)| format!("lookback_delta={seconds}")).unwrap_or_default(),
            ),
            Kind::InitialEvaluation => f.write_str("initial_evaluation"),
            Kind::BackfillInProgress => f.write_str("backfill_in_progress"),
            Kind::WillBeRequested => f.write_str("will_be_requested"),
            Kind::LastRunIncludesTarget => f.write_str("last_run_includes_target"),
            Kind::LastExecutedWithTags { tags } => self.fmt_leaf(f, "last_executed_with_tags", tags.args()),
            Kind::HasRunWithTags { tags } => self.fmt_leaf(f, "has_run_with_tags", tags.args()),
            Kind::AllRunsHaveTags { tags } => self.fmt_leaf(f, "all_runs_have_tags", tags.args()),
            Kind::And { operands } | Kind::Or { operands } => {
                let separator = if matches!(self.0.kind, Kind::And { .. }) { " & " } else { " | " };
                for (i, operand) in operands.iter().enumerate() {
                    if i > 0 {
                        f.write_str(separator)?;
                    }
                    operand.fmt_operand(f, false)?;
                }
                Ok(())
            }
            Kind::Not { operand } => {
                f.write_str("~")?;
                operand.fmt_operand(f, false)
            }
            Kind::NewlyTrue { operand } => {
                operand.fmt_operand(f, true)?;
                f.write_str(".newly_true()")
            }
            Kind::Since { trigger, reset } => {
                trigger.fmt_operand(f, true)?;
                write!(f, ".since({reset})")
            }
            Kind::SinceLastHandled { operand } => {
                operand.fmt_operand(f, true)?;
                f.write_str(".since_last_handled()")
            }
            Kind::OnSelected { operand, keys } => {
                operand.fmt_operand(f, true)?;
                let keys: Vec<String> = keys.iter().map(|k| format!("'{k}'")).collect();
                write!(f, ".on_selected({})", keys.join(", "))
            }
            Kind::AnyDepsMatch { operand } => write!(f, "any_deps_match({operand})"),
            Kind::AllDepsMatch { operand } => write!(f, "all_deps_match({operand})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_node_derives_once_is_not_part_of_its_identity() {
        let asked = Condition::eager();
        let description = asked.description();
        let (hash, keys) = (asked.tree_hash(), asked.selected_keys());
        assert_eq!(asked, Condition::eager(), "a node that computed its derived values equals a fresh one");
        assert_eq!((asked.description(), asked.tree_hash(), asked.selected_keys()), (description, hash, keys));
        let selecting = Condition::missing().on_selected(vec!["orders".into()]);
        assert_eq!(selecting.selected_keys(), ["orders"]);
        assert_eq!(selecting.selected_keys(), ["orders"], "the cached keys are the computed ones");
    }

    #[test]
    fn presets_are_labelled_ands_of_their_top_level_operands() {
        let cron = Condition::on_cron("0 * * * *", None).unwrap();
        for (preset, label, operands) in
            [(Condition::eager(), "eager", 5), (cron, "on_cron", 3), (Condition::on_missing(), "on_missing", 2)]
        {
            assert_eq!(preset.label(), Some(label));
            assert_eq!(preset.description(), label);
            assert!(matches!(preset.kind(), Kind::And { .. }));
            assert_eq!(preset.children().len(), operands, "{label}");
        }
    }

    #[test]
    fn descriptions_render_leaves_operators_and_parentheses() {
        let eager_operands: Vec<String> = Condition::eager().children().iter().map(Condition::description).collect();
        assert_eq!(
            eager_operands,
            [
                "(missing.newly_true() | any_deps_updated).since_last_handled()",
                "~any_deps_missing",
                "~any_deps_in_progress",
                "~in_flight",
                "~execution_failed"
            ]
        );
        let on_cron = Condition::on_cron("0 * * * *", Some("Europe/Berlin")).unwrap();
        assert_eq!(
            on_cron.children()[0].description(),
            "cron_tick_passed('0 * * * *', 'Europe/Berlin').since((newly_requested | newly_updated) & \
             ~cron_tick_passed('0 * * * *', 'Europe/Berlin'))"
        );
        assert_eq!(Condition::in_flight().children()[0].description(), "in_progress");
        let filter =
            TagFilter { tag_keys: Some(vec!["owner".into()]), tag_values: Some(vec![("mode".into(), "dry".into())]) };
        assert_eq!(
            Condition::last_executed_with_tags(filter).description(),
            "last_executed_with_tags(tag_keys=['owner'], tag_values=[('mode', 'dry')])"
        );
        assert_eq!(Condition::has_run_with_tags(TagFilter::default()).description(), "has_run_with_tags");
        assert_eq!(Condition::in_latest_time_window(None).unwrap().description(), "in_latest_time_window");
        assert_eq!(
            Condition::in_latest_time_window(Some(21600.0)).unwrap().description(),
            "in_latest_time_window(lookback_delta=21600)"
        );
        let nested =
            !(Condition::missing() | Condition::in_progress()) & Condition::any_deps_match(Condition::missing());
        assert_eq!(nested.description(), "~(missing | in_progress) & any_deps_match(missing)");
        let selected = (!Condition::missing()).newly_true().on_selected(vec!["a".into(), "b".into()]);
        assert_eq!(selected.description(), "(~missing).newly_true().on_selected('a', 'b')");
        assert_eq!(Condition::missing().with_label("gone").description(), "gone");
    }

    #[test]
    fn unlabelled_operands_of_the_same_operator_are_flattened() {
        let (a, b, c) = (Condition::missing(), Condition::in_progress(), Condition::execution_failed());
        assert_eq!(((a.clone() & b.clone()) & c.clone()).children(), [a.clone(), b.clone(), c.clone()]);
        assert_eq!((a.clone() | (b.clone() | c.clone())).children(), [a.clone(), b.clone(), c.clone()]);
        let labelled = (a.clone() & b.clone()).with_label("both");
        assert_eq!((labelled.clone() & c.clone()).children(), [labelled, c.clone()]);
        assert_eq!(((a.clone() | b.clone()) & c.clone()).children().len(), 2, "an Or inside an And stays whole");
    }

    #[test]
    fn equality_and_hash_are_structural() {
        use std::collections::hash_map::DefaultHasher;
        let hash = |c: &Condition| {
            let mut h = DefaultHasher::new();
            c.hash(&mut h);
            h.finish()
        };
        assert_eq!(Condition::eager(), Condition::eager());
        assert_eq!(hash(&Condition::eager()), hash(&Condition::eager()));
        assert_ne!(Condition::missing(), Condition::missing().with_label("missing"));
        let cron = |tz| Condition::cron_tick_passed("0 * * * *", tz).unwrap();
        assert_ne!(cron(None), cron(Some("UTC")));
        assert_eq!(Condition::eager().tree_hash(), Condition::eager().tree_hash());
        assert_ne!(Condition::eager().tree_hash(), Condition::on_missing().tree_hash());
    }

    #[test]
    fn bad_parameters_are_refused_naming_the_factory() {
        for bad in ["* * * *", "61 * * * *", ""] {
            let err = Condition::on_cron(bad, None).unwrap_err();
            assert!(err.to_string().starts_with("AutomationCondition.on_cron: "), "{err}");
        }
        assert!(Condition::cron_tick_passed("0 3 * * *", Some("Mars/Olympus")).is_err());
        let err = Condition::all_deps_updated_since_cron("x", None).unwrap_err();
        assert!(err.to_string().contains("all_deps_updated_since_cron"), "{err}");
        assert!(Condition::cron_tick_passed("*/15 * * * * *", None).is_ok(), "six fields");
        for bad in [0.0, -1.0, f64::INFINITY, f64::NAN] {
            assert!(matches!(Condition::in_latest_time_window(Some(bad)), Err(ConditionError::InvalidLookback(_))));
        }
    }

    #[test]
    fn trees_round_trip_through_json_with_validated_crons() {
        let tree = Condition::on_cron("0 3 * * *", Some("Europe/Berlin")).unwrap()
            & Condition::in_latest_time_window(Some(3600.0)).unwrap()
            & Condition::newly_updated().on_selected(vec!["fx".into()]);
        let json = serde_json::to_value(&tree).unwrap();
        assert_eq!(serde_json::from_value::<Condition>(json.clone()).unwrap(), tree);
        assert_eq!(json["type"], "and");
        assert_eq!(json["operands"][0]["label"], "on_cron");
        let bad = serde_json::json!({"type": "cron_tick_passed", "cron": {"cron_schedule": "nope"}});
        assert!(serde_json::from_value::<Condition>(bad).is_err());
    }
}
