//! Evaluation semantics of every factory, operator and preset, against in-memory facts.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};

use super::*;
use crate::partitions::RangeSet;

/// How a dep's positions map onto the downstream's.
#[derive(Clone)]
enum Mapping {
    /// Position p reads upstream position p.
    Identity,
    /// Position p reads upstream position p + offset.
    Shift(i64),
    /// Every position reads every upstream position.
    All,
}

#[derive(Clone, Default)]
struct FakeAsset {
    candidates: RangeSet,
    materialized: RangeSet,
    failed: RangeSet,
    in_progress: RangeSet,
    backfill: RangeSet,
    updated: RangeSet,
    data_changed: RangeSet,
    code_changed: RangeSet,
    deps: Vec<(String, Mapping)>,
    window_starts: Option<Vec<NaiveDateTime>>,
    latest_runs: Vec<RunPositions>,
    new_runs: Vec<RunPositions>,
    runs_including: BTreeMap<String, RangeSet>,
}

#[derive(Default)]
struct FakeFacts {
    assets: BTreeMap<String, FakeAsset>,
}

fn set(positions: &[u128]) -> RangeSet {
    RangeSet::from_positions(positions.iter().copied())
}

fn single() -> RangeSet {
    set(&[0])
}

impl FakeFacts {
    /// An unpartitioned asset, materialized, reading `deps` whole.
    fn asset(&mut self, name: &str, deps: &[&str]) -> &mut FakeAsset {
        self.partitioned(name, single(), deps.iter().map(|d| (*d, Mapping::Identity)).collect())
    }

    fn partitioned(&mut self, name: &str, candidates: RangeSet, deps: Vec<(&str, Mapping)>) -> &mut FakeAsset {
        let asset = FakeAsset {
            materialized: candidates.clone(),
            candidates,
            deps: deps.into_iter().map(|(d, m)| (d.to_owned(), m)).collect(),
            ..FakeAsset::default()
        };
        self.assets.insert(name.to_owned(), asset);
        self.get(name)
    }

    fn get(&mut self, name: &str) -> &mut FakeAsset {
        self.assets.get_mut(name).expect("asset declared in the test")
    }

    fn of(&self, name: &str) -> &FakeAsset {
        &self.assets[name]
    }
}

impl ConditionFacts for FakeFacts {
    fn candidates(&self, asset: &str) -> RangeSet {
        self.of(asset).candidates.clone()
    }
    fn materialized(&self, asset: &str) -> RangeSet {
        self.of(asset).materialized.clone()
    }
    fn execution_failed(&self, asset: &str) -> RangeSet {
        self.of(asset).failed.clone()
    }
    fn in_progress(&self, asset: &str) -> RangeSet {
        self.of(asset).in_progress.clone()
    }
    fn backfill_in_progress(&self, asset: &str) -> RangeSet {
        self.of(asset).backfill.clone()
    }
    fn updated_since_previous_evaluation(&self, asset: &str) -> RangeSet {
        self.of(asset).updated.clone()
    }
    fn data_version_changed(&self, asset: &str) -> RangeSet {
        self.of(asset).data_changed.clone()
    }
    fn code_version_changed(&self, asset: &str) -> RangeSet {
        self.of(asset).code_changed.clone()
    }
    fn latest_time_window_start(&self, asset: &str) -> Option<NaiveDateTime> {
        self.of(asset).window_starts.as_ref()?.last().copied()
    }
    fn positions_starting_from(&self, asset: &str, start: NaiveDateTime) -> RangeSet {
        let starts = self.of(asset).window_starts.as_deref().unwrap_or_default();
        let first = starts.partition_point(|s| *s < start) as u128;
        RangeSet::span(first, starts.len() as u128 - 1)
    }
    fn deps(&self, asset: &str) -> Vec<String> {
        self.of(asset).deps.iter().map(|(d, _)| d.clone()).collect()
    }
    fn downstream_positions(&self, asset: &str, dep: &str, dep_positions: &RangeSet) -> RangeSet {
        let mapping = &self.of(asset).deps.iter().find(|(d, _)| d == dep).expect("a declared dep").1;
        let own = self.candidates(asset);
        match mapping {
            Mapping::Identity if own.len() == 1 && self.candidates(dep).len() == 1 => dep_positions.clone(),
            Mapping::Identity => dep_positions.intersection(&own),
            Mapping::Shift(offset) => {
                let shifted = dep_positions.ranges().iter().filter_map(|&(s, e)| {
                    let (s, e) = (s as i128 - *offset as i128, e as i128 - *offset as i128);
                    (e >= 0).then(|| RangeSet::span(s.max(0) as u128, e as u128))
                });
                shifted.fold(RangeSet::new(), |acc, r| acc.union(&r)).intersection(&own)
            }
            Mapping::All if dep_positions.is_empty() => RangeSet::new(),
            Mapping::All => own,
        }
    }
    fn latest_materialization_runs(&self, asset: &str) -> Vec<RunPositions> {
        self.of(asset).latest_runs.clone()
    }
    fn new_materialization_runs(&self, asset: &str) -> Vec<RunPositions> {
        self.of(asset).new_runs.clone()
    }
    fn latest_run_includes(&self, dep: &str, target: &str) -> RangeSet {
        self.of(dep).runs_including.get(target).cloned().unwrap_or_default()
    }
}

fn at(minute: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-06-01T00:00:30Z").unwrap().with_timezone(&Utc) + TimeDelta::minutes(minute)
}

/// A daemon in miniature: conditions, persisted states and the pass clock.
struct Daemon {
    conditions: BTreeMap<String, Condition>,
    states: BTreeMap<String, ConditionState>,
    last_pass: Option<DateTime<Utc>>,
    minute: i64,
}

impl Daemon {
    fn new(conditions: &[(&str, Condition)]) -> Self {
        let conditions = conditions.iter().map(|(k, c)| (k.to_string(), c.clone())).collect();
        Daemon { conditions, states: BTreeMap::new(), last_pass: None, minute: 0 }
    }

    /// Runs a pass one minute after the previous one; returns the requested positions per asset.
    fn pass(&mut self, facts: &FakeFacts) -> BTreeMap<String, RangeSet> {
        self.pass_full(facts).into_iter().map(|e| (e.asset, e.requested)).collect()
    }

    fn pass_full(&mut self, facts: &FakeFacts) -> Vec<AssetEvaluation> {
        let now = at(self.minute);
        self.minute += 1;
        let clock = EvaluationClock { now, previous: self.last_pass };
        let evaluations = evaluate_pass(&self.conditions, &self.states, facts, clock);
        for evaluation in &evaluations {
            self.states.insert(evaluation.asset.clone(), evaluation.state.clone());
        }
        self.last_pass = Some(now);
        evaluations
    }

    /// Whether the single (unpartitioned) position of `asset` fired.
    fn fires(&mut self, facts: &FakeFacts, asset: &str) -> bool {
        !self.pass(facts)[asset].is_empty()
    }
}

fn wearer(condition: Condition) -> (FakeFacts, Daemon) {
    let mut facts = FakeFacts::default();
    facts.asset("a", &[]);
    (facts, Daemon::new(&[("a", condition)]))
}

#[test]
fn leaves_read_their_facts() {
    type Setter = fn(&mut FakeAsset);
    let cases: Vec<(Condition, Setter)> = vec![
        (Condition::missing(), |a| a.materialized = RangeSet::new()),
        (Condition::in_progress(), |a| a.in_progress = single()),
        (Condition::execution_failed(), |a| a.failed = single()),
        (Condition::code_version_changed(), |a| a.code_changed = single()),
        (Condition::data_version_changed(), |a| a.data_changed = single()),
        (Condition::backfill_in_progress(), |a| a.backfill = single()),
        (Condition::in_flight(), |a| a.in_progress = single()),
        (Condition::in_flight(), |a| a.backfill = single()),
    ];
    for (condition, set_fact) in cases {
        let (mut facts, mut daemon) = wearer(condition.clone());
        assert!(!daemon.fires(&facts, "a"), "{condition} without its fact");
        set_fact(facts.get("a"));
        assert!(daemon.fires(&facts, "a"), "{condition} with its fact");
    }
}

#[test]
fn newly_updated_is_false_on_the_first_evaluation_and_then_follows_updates() {
    let (mut facts, mut daemon) = wearer(Condition::newly_updated());
    facts.get("a").updated = single();
    assert!(!daemon.fires(&facts, "a"), "nothing is new at the first evaluation");
    assert!(daemon.fires(&facts, "a"));
    facts.get("a").updated = RangeSet::new();
    assert!(!daemon.fires(&facts, "a"));
}

#[test]
fn newly_requested_and_will_be_requested_follow_the_daemon() {
    let mut facts = FakeFacts::default();
    facts.asset("up", &[]).updated = single();
    facts.asset("down", &[]);
    let mut daemon = Daemon::new(&[
        ("up", Condition::initial_evaluation()),
        ("down", Condition::will_be_requested().on_selected(vec!["up".into()])),
    ]);
    let first = daemon.pass(&facts);
    assert!(!first["up"].is_empty() && !first["down"].is_empty(), "down saw up fire earlier in the same pass");
    daemon.conditions.insert("down".into(), Condition::newly_requested().on_selected(vec!["up".into()]));
    daemon.states.remove("down");
    assert!(!daemon.pass(&facts)["down"].is_empty(), "up was requested at the previous evaluation");
    assert!(daemon.pass(&facts)["down"].is_empty(), "up was not requested at the previous evaluation");
}

#[test]
fn cron_tick_passed_holds_when_a_tick_lies_between_two_passes() {
    // Passes run at second 30 of each minute; the cron fires every second minute at second 0.
    let (facts, mut daemon) = wearer(Condition::cron_tick_passed("*/2 * * * *", None).unwrap());
    let fired: Vec<bool> = (0..5).map(|_| daemon.fires(&facts, "a")).collect();
    assert_eq!(fired, [false, false, true, false, true], "false at the first evaluation, then once per tick");
    let six_fields = Condition::cron_tick_passed("15 * * * * *", Some("Europe/Berlin")).unwrap();
    let (facts, mut daemon) = wearer(six_fields);
    assert_eq!((0..3).map(|_| daemon.fires(&facts, "a")).collect::<Vec<_>>(), [false, true, true]);
}

#[test]
fn in_latest_time_window_counts_back_from_the_latest_window() {
    let mut facts = FakeFacts::default();
    let day = |d: u32| NaiveDate::from_ymd_opt(2025, 1, d).unwrap().and_hms_opt(0, 0, 0).unwrap();
    facts.partitioned("daily", RangeSet::span(0, 9), vec![]).window_starts = Some((1..=10).map(day).collect());
    facts.asset("plain", &[]);
    let mut daemon = Daemon::new(&[
        ("daily", Condition::in_latest_time_window(None).unwrap()),
        ("plain", Condition::in_latest_time_window(Some(60.0)).unwrap()),
    ]);
    let result = daemon.pass(&facts);
    assert_eq!(result["daily"], set(&[9]));
    assert_eq!(result["plain"], single(), "always true without time windows");
    daemon.conditions.insert("daily".into(), Condition::in_latest_time_window(Some(2.0 * 86_400.0)).unwrap());
    assert_eq!(daemon.pass(&facts)["daily"], set(&[7, 8, 9]), "two periods reach two windows back");
}

#[test]
fn initial_evaluation_holds_first_and_again_after_the_tree_changes() {
    let (facts, mut daemon) = wearer(Condition::initial_evaluation());
    assert!(daemon.fires(&facts, "a"));
    assert!(!daemon.fires(&facts, "a"), "a restart with intact state is not initial");
    daemon.conditions.insert("a".into(), Condition::initial_evaluation() | Condition::in_progress());
    assert!(daemon.fires(&facts, "a"), "a changed tree starts over");
}

#[test]
fn last_run_includes_target_reads_the_dep_runs() {
    let mut facts = FakeFacts::default();
    facts.asset("up", &[]);
    facts.asset("down", &["up"]);
    let mut daemon = Daemon::new(&[("down", Condition::any_deps_match(Condition::last_run_includes_target()))]);
    assert!(!daemon.fires(&facts, "down"));
    facts.get("up").runs_including.insert("down".into(), single());
    assert!(daemon.fires(&facts, "down"));
}

fn run(positions: RangeSet, tags: &[(&str, &str)]) -> RunPositions {
    RunPositions { positions, tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
}

#[test]
fn tag_leaves_match_keys_and_exact_pairs() {
    let dry = TagFilter { tag_keys: None, tag_values: Some(vec![("mode".into(), "dry".into())]) };
    let owned = TagFilter { tag_keys: Some(vec!["owner".into()]), tag_values: None };
    let mut facts = FakeFacts::default();
    let a = facts.partitioned("a", RangeSet::span(0, 3), vec![]);
    a.latest_runs = vec![run(set(&[0, 1]), &[("mode", "dry")]), run(set(&[2, 3]), &[("owner", "x")])];
    a.new_runs = vec![run(set(&[0]), &[("mode", "dry")]), run(set(&[1]), &[("mode", "wet")])];
    let mut daemon = Daemon::new(&[("a", Condition::last_executed_with_tags(dry.clone()))]);
    assert_eq!(daemon.pass(&facts)["a"], set(&[0, 1]));
    daemon.conditions.insert("a".into(), Condition::last_executed_with_tags(owned));
    assert_eq!(daemon.pass(&facts)["a"], set(&[2, 3]));
    daemon.conditions.insert("a".into(), Condition::last_executed_with_tags(TagFilter::default()));
    assert_eq!(daemon.pass(&facts)["a"], RangeSet::span(0, 3), "no filter: any run matches");
    daemon.conditions.insert("a".into(), Condition::has_run_with_tags(dry.clone()));
    assert_eq!(daemon.pass(&facts)["a"], set(&[0]));
    daemon.conditions.insert("a".into(), Condition::all_runs_have_tags(dry));
    assert_eq!(daemon.pass(&facts)["a"], set(&[0, 2, 3]), "vacuously true where nothing is new");
}

#[test]
fn and_or_not_combine_position_sets() {
    let mut facts = FakeFacts::default();
    let a = facts.partitioned("a", RangeSet::span(0, 9), vec![]);
    a.failed = RangeSet::span(0, 5);
    a.in_progress = RangeSet::span(4, 9);
    let mut daemon = Daemon::new(&[("a", Condition::execution_failed() & Condition::in_progress())]);
    assert_eq!(daemon.pass(&facts)["a"], RangeSet::span(4, 5));
    daemon.conditions.insert("a".into(), Condition::execution_failed() | Condition::in_progress());
    assert_eq!(daemon.pass(&facts)["a"], RangeSet::span(0, 9));
    daemon.conditions.insert("a".into(), !Condition::execution_failed());
    assert_eq!(daemon.pass(&facts)["a"], RangeSet::span(6, 9));
}

#[test]
fn newly_true_is_a_rising_edge() {
    let (mut facts, mut daemon) = wearer(Condition::in_progress().newly_true());
    facts.get("a").in_progress = single();
    assert!(daemon.fires(&facts, "a"), "a missing previous value counts as false");
    assert!(!daemon.fires(&facts, "a"));
    facts.get("a").in_progress = RangeSet::new();
    assert!(!daemon.fires(&facts, "a"));
    facts.get("a").in_progress = single();
    assert!(daemon.fires(&facts, "a"));
}

#[test]
fn since_latches_until_reset_and_reset_wins_ties() {
    let (mut facts, mut daemon) = wearer(Condition::code_version_changed().since(Condition::in_progress()));
    let a = facts.get("a");
    a.code_changed = single();
    assert!(daemon.fires(&facts, "a"));
    facts.get("a").code_changed = RangeSet::new();
    assert!(daemon.fires(&facts, "a"), "latched");
    facts.get("a").in_progress = single();
    assert!(!daemon.fires(&facts, "a"), "reset");
    facts.get("a").code_changed = single();
    assert!(!daemon.fires(&facts, "a"), "reset wins a tie");
    facts.get("a").in_progress = RangeSet::new();
    facts.get("a").code_changed = RangeSet::new();
    assert!(!daemon.fires(&facts, "a"), "a tie leaves the latch open");
}

#[test]
fn since_last_handled_is_false_right_after_a_request() {
    let (mut facts, mut daemon) = wearer(Condition::code_version_changed().since_last_handled());
    facts.get("a").code_changed = single();
    assert_eq!((0..4).map(|_| daemon.fires(&facts, "a")).collect::<Vec<_>>(), [true, false, true, false]);
}

#[test]
fn on_selected_evaluates_the_named_assets() {
    let mut facts = FakeFacts::default();
    facts.asset("a", &[]);
    facts.partitioned("feed", RangeSet::span(0, 9), vec![]).failed = set(&[7]);
    facts.asset("other", &[]);
    let selected = Condition::execution_failed().on_selected(vec!["other".into(), "feed".into()]);
    let mut daemon = Daemon::new(&[("a", selected)]);
    let evaluation = daemon.pass_full(&facts).remove(0);
    assert_eq!(evaluation.requested, single(), "true when it holds for any partition of any selected asset");
    assert_eq!(evaluation.explanation.children.len(), 2);
    assert_eq!(evaluation.explanation.children[1].facts, ["`feed` latest execution failed"]);
}

#[test]
fn deps_aggregates_map_partitions_and_treat_no_deps_as_vacuous() {
    let mut facts = FakeFacts::default();
    facts.partitioned("up", RangeSet::span(0, 9), vec![]).failed = set(&[3, 8]);
    facts.partitioned("whole", single(), vec![]);
    facts.partitioned("shifted", RangeSet::span(0, 9), vec![("up", Mapping::Shift(-1))]);
    facts.partitioned("down", RangeSet::span(0, 9), vec![("up", Mapping::Identity), ("whole", Mapping::All)]);
    facts.asset("lonely", &[]);
    let failed = || Condition::execution_failed();
    let mut daemon = Daemon::new(&[
        ("down", Condition::any_deps_match(failed())),
        ("shifted", Condition::any_deps_match(failed())),
        ("lonely", Condition::any_deps_match(failed())),
    ]);
    let result = daemon.pass(&facts);
    assert_eq!(result["down"], set(&[3, 8]));
    assert_eq!(result["shifted"], set(&[4, 9]), "position p reads upstream p - 1");
    assert!(result["lonely"].is_empty(), "R58: any_deps_match is false without deps");
    daemon.conditions = [
        ("down".to_string(), Condition::all_deps_match(!failed())),
        ("lonely".to_string(), Condition::all_deps_match(failed())),
        ("shifted".to_string(), Condition::all_deps_match(!failed())),
    ]
    .into();
    let result = daemon.pass(&facts);
    assert_eq!(result["down"], RangeSet::span(0, 9).difference(&set(&[3, 8])));
    assert_eq!(result["lonely"], single(), "R58: all_deps_match is true without deps");
    assert_eq!(result["shifted"], set(&[0, 1, 2, 3, 5, 6, 7, 8]), "position 0 reads nothing: vacuous");
    facts.get("whole").failed = single();
    assert_eq!(daemon.pass(&facts)["down"], RangeSet::new(), "an unpartitioned dep covers every position");
}

/// An asset `down` reading `up`, both materialized, `down` wearing `condition`, after one
/// quiet pass so that later passes are not initial.
fn pair(condition: Condition) -> (FakeFacts, Daemon) {
    let mut facts = FakeFacts::default();
    facts.asset("up", &[]);
    facts.asset("down", &["up"]);
    let mut daemon = Daemon::new(&[("down", condition)]);
    assert!(!daemon.fires(&facts, "down"), "quiet first pass");
    (facts, daemon)
}

#[test]
fn eager_fires_once_when_a_dep_updates() {
    let (mut facts, mut daemon) = pair(Condition::eager());
    facts.get("up").updated = single();
    assert!(daemon.fires(&facts, "down"));
    facts.get("up").updated = RangeSet::new();
    assert!(!daemon.fires(&facts, "down"));
}

#[test]
fn eager_fires_for_a_missing_asset_once() {
    let (mut facts, mut daemon) = wearer(Condition::eager());
    facts.get("a").materialized = RangeSet::new();
    assert!(daemon.fires(&facts, "a"));
    assert!(!daemon.fires(&facts, "a"), "still missing, but already handled");
}

#[test]
fn eager_does_not_fire_while_in_flight_failed_or_blocked_by_deps() {
    type Setter = fn(&mut FakeFacts);
    let blockers: [(&str, Setter); 5] = [
        ("R54 in a run", |f| f.get("down").in_progress = single()),
        ("R54 in a backfill", |f| f.get("down").backfill = single()),
        ("R55 latest execution failed", |f| f.get("down").failed = single()),
        ("R55 dep missing", |f| f.get("up").materialized = RangeSet::new()),
        ("R55 dep in progress", |f| f.get("up").in_progress = single()),
    ];
    for (why, block) in blockers {
        let (mut facts, mut daemon) = pair(Condition::eager());
        facts.get("up").updated = single();
        block(&mut facts);
        assert!(!daemon.fires(&facts, "down"), "{why}");
    }
}

#[test]
fn eager_ignores_a_dep_updated_by_a_joint_run() {
    let (mut facts, mut daemon) = pair(Condition::eager());
    facts.get("up").updated = single();
    facts.get("up").runs_including.insert("down".into(), single());
    assert!(!daemon.fires(&facts, "down"));
}

#[test]
fn eager_fires_downstream_in_the_same_pass_as_its_upstream() {
    let mut facts = FakeFacts::default();
    facts.asset("up", &[]).materialized = RangeSet::new();
    facts.asset("down", &["up"]).materialized = RangeSet::new();
    let mut daemon = Daemon::new(&[("down", Condition::eager()), ("up", Condition::eager())]);
    let first = daemon.pass_full(&facts);
    assert_eq!(first.iter().map(|e| e.asset.as_str()).collect::<Vec<_>>(), ["up", "down"], "topological order");
    assert!(first.iter().all(|e| e.requested == single()), "R57: will_be_requested cascades");
    facts.get("up").in_progress = single();
    facts.get("down").in_progress = single();
    assert!(daemon.pass(&facts).values().all(RangeSet::is_empty), "no re-dispatch while in flight");
}

#[test]
fn a_custom_condition_without_in_flight_fires_again_while_running() {
    let (mut facts, mut daemon) = wearer(Condition::code_version_changed());
    facts.get("a").code_changed = single();
    facts.get("a").in_progress = single();
    assert!(daemon.fires(&facts, "a") && daemon.fires(&facts, "a"), "R62: the daemon adds no guard");
}

#[test]
fn on_cron_fires_once_per_period_after_every_dep_updated() {
    // Passes at second 30 of minutes 0, 1, 2, ...; the cron ticks at minutes 2, 4, 6, ...
    let (mut facts, mut daemon) = pair(Condition::on_cron("*/2 * * * *", None).unwrap());
    assert!(!daemon.fires(&facts, "down"), "minute 1: no tick yet");
    assert!(!daemon.fires(&facts, "down"), "minute 2: ticked, but the dep has not updated since");
    facts.get("up").updated = single();
    assert!(daemon.fires(&facts, "down"), "minute 3: every dep updated since the tick");
    facts.get("down").in_progress = single();
    facts.get("up").updated = RangeSet::new();
    assert!(!daemon.fires(&facts, "down"), "minute 4: a new period, but in flight and no dep update since");
    facts.get("down").in_progress = RangeSet::new();
    facts.get("down").updated = single();
    facts.get("up").updated = single();
    assert!(!daemon.fires(&facts, "down"), "minute 5: the run's update handled this period");
    facts.get("down").updated = RangeSet::new();
    facts.get("up").updated = RangeSet::new();
    assert!(!daemon.fires(&facts, "down"), "minute 6: ticked, the dep has not updated since");
    facts.get("up").updated = single();
    assert!(daemon.fires(&facts, "down"), "minute 7: every dep updated since the tick");
    facts.get("up").updated = RangeSet::new();
    assert!(!daemon.fires(&facts, "down"), "minute 8: a new period, no dep update yet");
}

#[test]
fn on_missing_fires_once_and_leaves_failed_partitions_alone() {
    let mut facts = FakeFacts::default();
    let a = facts.partitioned("a", RangeSet::span(0, 4), vec![]);
    a.materialized = set(&[0]);
    a.failed = set(&[1]);
    a.in_progress = set(&[2]);
    let mut daemon = Daemon::new(&[("a", Condition::on_missing())]);
    assert_eq!(daemon.pass(&facts)["a"], set(&[3, 4]), "missing, not failed, not in flight");
    assert!(daemon.pass(&facts)["a"].is_empty(), "fired once");
}

#[test]
fn a_million_partitions_with_ten_updated_upstream_request_exactly_those_ten() {
    let all = RangeSet::span(0, 999_999);
    let updated: Vec<u128> = (0..10).map(|i| 1_000 + i * 99_991).collect();
    let mut facts = FakeFacts::default();
    facts.partitioned("up", all.clone(), vec![]);
    facts.partitioned("down", all, vec![("up", Mapping::Identity)]);
    let mut daemon = Daemon::new(&[("down", Condition::eager())]);
    assert!(daemon.pass(&facts)["down"].is_empty());
    facts.get("up").updated = set(&updated);
    assert_eq!(daemon.pass(&facts)["down"], set(&updated));
    facts.get("up").updated = RangeSet::new();
    assert!(daemon.pass(&facts)["down"].is_empty());
}

#[test]
fn state_survives_serialisation_and_the_explanation_names_its_facts() {
    let (mut facts, mut daemon) = pair(Condition::eager());
    facts.get("up").updated = single();
    let evaluation = daemon.pass_full(&facts).remove(0);
    let state: ConditionState = serde_json::from_str(&serde_json::to_string(&evaluation.state).unwrap()).unwrap();
    assert_eq!(state, evaluation.state);
    assert_eq!(state.requested, single());
    let explanation = evaluation.explanation;
    assert_eq!((explanation.description.as_str(), explanation.true_count()), ("eager", 1));
    assert_eq!(explanation.children.len(), 5);
    let text = explanation.to_string();
    assert!(text.contains("upstream `up` updated"), "{text}");
    assert!(text.starts_with("eager [down]: true for 1 partition\n"), "{text}");
}

#[test]
fn on_selected_keys_must_name_registered_assets() {
    let mut follower = crate::NodeDef::asset("follower");
    follower.automation_condition = Some(Condition::newly_updated().on_selected(vec!["fx".into()]));
    let err = check_selected_assets(std::slice::from_ref(&follower)).unwrap_err();
    assert!(matches!(&err, crate::Error::AssetNotFound(m) if m.contains("'follower'") && m.contains("'fx'")), "{err}");
    assert_eq!(check_selected_assets(&[follower, crate::NodeDef::asset("fx")]), Ok(()));
}

#[test]
fn conditions_and_states_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Condition>();
    send_sync::<ConditionState>();
    send_sync::<AssetEvaluation>();
}
