//! Definitions as plain data: every field of every node the authoring layer declares, in one
//! serde-serialisable form. The graph builder reads it, storage registers assets from it, and
//! [`DefinitionsSnapshot`] hands the whole repository to readers that never run Python (the
//! daemon, the gRPC service, the UI).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::partitions::{BackfillStrategy, PartitionMapping, Partitions};
use crate::retry::{RetryPolicy, RetrySpec};
use crate::vocab::{AutomationStatus, ExecutorKind};

/// What kind of node a definition describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// An asset computed by a function (one step).
    Asset,
    /// One function producing several assets, its [`NodeDef::outputs`] (one step).
    Multi,
    /// A graph asset's own step: the dual write of its final internal node's value under the
    /// graph's name, after every member ([`NodeDef::members`]) succeeded.
    Graph,
    /// A task: standalone (a node of the outer graph under its bare name) or a graph asset's
    /// internal node (`graph/task`, [`NodeDef::graph`] set). Tasks write no materializations.
    Task,
    /// An asset produced outside rivers: a graph source, never a step.
    External,
}

impl NodeKind {
    /// Whether the node's value is an asset (it has asset records and materializations).
    pub fn is_asset(self) -> bool {
        !matches!(self, NodeKind::Task)
    }
}

/// How the authoring layer classified a function parameter from its annotation and position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamRole {
    /// First parameter annotated with the context type.
    Context,
    /// First parameter named `context` without a context annotation: the context unless an
    /// asset named `context` exists.
    ContextByName,
    /// A context annotation in a non-first position: the step fails at run time.
    MisplacedContext,
    /// `self: SelfDependency[T]`: loads the asset's own previous value, no graph edge.
    #[serde(rename = "self")]
    SelfDependency,
    /// Anything else: bound to an upstream asset or a resource by name.
    Named,
    /// A graph-internal task parameter wired to a handle: loads [`ParamDef::source`].
    Wired,
    /// A graph-internal task parameter bound to a constant recorded in the composition.
    Constant,
}

impl std::str::FromStr for ParamRole {
    type Err = crate::Error;

    fn from_str(text: &str) -> crate::Result<Self> {
        Ok(match text {
            "context" => ParamRole::Context,
            "context_by_name" => ParamRole::ContextByName,
            "misplaced_context" => ParamRole::MisplacedContext,
            "self" => ParamRole::SelfDependency,
            "named" => ParamRole::Named,
            "wired" => ParamRole::Wired,
            "constant" => ParamRole::Constant,
            other => {
                return Err(crate::Error::InvalidValue(format!(
                    "unknown parameter role {other:?}; expected context, context_by_name, misplaced_context, \
                     self, named, wired or constant"
                )));
            }
        })
    }
}

/// How a parameter wired to a fan-out (`MappedOutput.collect()` / `collect_stream()` in a graph
/// body) receives the instances' outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gather {
    /// `collect()`: a list in element order; the step waits for every instance to succeed.
    Collect,
    /// `collect_stream()`: an iterator in completion order.
    Stream,
    /// `collect_stream(ordered=True)`: an iterator in element order.
    StreamOrdered,
}

impl Gather {
    /// The spelling the authoring layer uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Gather::Collect => "collect",
            Gather::Stream => "stream",
            Gather::StreamOrdered => "stream_ordered",
        }
    }

    /// `collect_stream()`, ordered or not.
    pub fn is_stream(self) -> bool {
        matches!(self, Gather::Stream | Gather::StreamOrdered)
    }
}

impl std::str::FromStr for Gather {
    type Err = crate::Error;

    fn from_str(text: &str) -> crate::Result<Self> {
        Ok(match text {
            "collect" => Gather::Collect,
            "stream" => Gather::Stream,
            "stream_ordered" => Gather::StreamOrdered,
            other => {
                return Err(crate::Error::InvalidValue(format!(
                    "unknown gather mode {other:?}; expected collect, stream or stream_ordered"
                )));
            }
        })
    }
}

/// One parameter of a node's function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamDef {
    /// Parameter name.
    pub name: String,
    /// Classification.
    pub role: ParamRole,
    /// Whether the parameter has a Python default value.
    pub has_default: bool,
    /// [`ParamRole::Wired`]: the node whose value the parameter loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// [`ParamRole::Wired`] to a fan-out template: how the instances' outputs are gathered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gather: Option<Gather>,
}

impl ParamDef {
    /// A parameter bound by name (to an upstream node or a resource).
    pub fn named(name: impl Into<String>) -> Self {
        ParamDef { name: name.into(), role: ParamRole::Named, has_default: false, source: None, gather: None }
    }
}

/// Where a node's values are written and read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum IoHandlerRef {
    /// The repository's default handler.
    #[default]
    Default,
    /// A handler registered as a resource under `key`.
    Resource {
        /// Resource key.
        key: String,
    },
    /// A handler object given inline, by the qualified name of its class.
    Object {
        /// `module.QualifiedName` of the handler's class.
        class: String,
    },
}

/// An explicit dependency (`AssetDef.input` / `AssetDef.dep`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepDef {
    /// Upstream asset key.
    pub name: String,
    /// `true` for a data edge (`input`), `false` for a lineage-only edge (`dep`).
    pub is_input: bool,
    /// The handler this input is loaded with, when it overrides the upstream's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_handler: Option<IoHandlerRef>,
}

/// One claim on a concurrency pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolClaim {
    /// Pool name.
    pub pool: String,
    /// Slots the step holds while it runs.
    pub slots: i64,
}

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookType {
    /// After the step succeeded.
    Success,
    /// After the step's final attempt failed.
    Failure,
}

impl std::str::FromStr for HookType {
    type Err = crate::Error;

    fn from_str(text: &str) -> crate::Result<Self> {
        match text {
            "success" => Ok(HookType::Success),
            "failure" => Ok(HookType::Failure),
            other => {
                Err(crate::Error::InvalidValue(format!("unknown hook type {other:?}; expected success or failure")))
            }
        }
    }
}

/// A hook attached to a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookDef {
    /// Hook name.
    pub name: String,
    /// When it runs.
    pub hook_type: HookType,
}

/// One output of a multi-asset: an asset key of the graph with its own attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputDef {
    /// Output name: the asset key.
    pub name: String,
    /// Tags (the multi-asset's when the output sets none).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Kinds (the multi-asset's when the output sets none).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Asset group (the multi-asset's when the output sets none).
    #[serde(default)]
    pub group: Option<String>,
    /// Code version (the multi-asset's when the output sets none).
    #[serde(default)]
    pub code_version: Option<String>,
    /// The handler that writes this output.
    #[serde(default)]
    pub io_handler: IoHandlerRef,
    /// Static metadata of this output.
    #[serde(default)]
    pub metadata: Vec<(String, String)>,
    /// Lineage-only dependencies of this output alone.
    #[serde(default)]
    pub deps: Vec<String>,
    /// This output's own partitions (used when the multi-asset declares none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<PartitionsDecl>,
}

impl OutputDef {
    /// An output with no attributes of its own.
    pub fn named(name: impl Into<String>) -> Self {
        OutputDef {
            name: name.into(),
            tags: Vec::new(),
            kinds: Vec::new(),
            group: None,
            code_version: None,
            io_handler: IoHandlerRef::Default,
            metadata: Vec::new(),
            deps: Vec::new(),
            partitions: None,
        }
    }
}

/// How a node declares its partitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionsDecl {
    /// A definition registered on the repository (`partition_defs=`) under this name.
    Named(String),
    /// A definition given inline.
    Defined(#[serde(serialize_with = "shared_out", deserialize_with = "shared_in")] Arc<Partitions>),
}

fn shared_out<S: Serializer>(partitions: &Arc<Partitions>, serializer: S) -> Result<S::Ok, S::Error> {
    partitions.as_ref().serialize(serializer)
}

fn shared_in<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Arc<Partitions>, D::Error> {
    Partitions::deserialize(deserializer).map(Arc::new)
}

/// A fan-out template (`handle.map(task)` in a graph body): at run time its step reads the
/// producer's value and the engine adds one instance step per element, `node[key]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapDef {
    /// At most this many instances of the map run at once; `None`: only the executor's caps.
    #[serde(default)]
    pub max_concurrency: Option<u32>,
}

/// A node of the asset graph, with every field its declaration carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeDef {
    /// Node (asset) name.
    pub name: String,
    /// Node kind.
    pub kind: NodeKind,
    /// Function parameters, in signature order.
    pub params: Vec<ParamDef>,
    /// Explicit dependencies.
    pub deps: Vec<DepDef>,
    /// Definition metadata, values rendered as strings.
    #[serde(default)]
    pub metadata: Vec<(String, String)>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Kinds (compute / storage labels).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Asset group.
    #[serde(default)]
    pub group: Option<String>,
    /// Code version.
    #[serde(default)]
    pub code_version: Option<String>,
    /// Output handler.
    #[serde(default)]
    pub io_handler: IoHandlerRef,
    /// Raw `rivers/executor` metadata value, validated when the graph is built.
    #[serde(default)]
    pub executor_override: Option<String>,
    /// The step must run in the calling process whatever the executor (its values live in an
    /// in-memory handler that cannot cross a process boundary). Derived from the repository's
    /// handlers when the graph is validated, so not part of the declared definition.
    #[serde(skip)]
    pub pinned_in_process: bool,
    /// The function is `async def`.
    #[serde(default)]
    pub is_async: bool,
    /// The node's own retry policy.
    #[serde(default)]
    pub retry: Option<RetrySpec>,
    /// Concurrency pool claims.
    #[serde(default)]
    pub pools: Vec<PoolClaim>,
    /// Hooks, in run order.
    #[serde(default)]
    pub hooks: Vec<HookDef>,
    /// External assets: whether an observation function is attached.
    #[serde(default)]
    pub observable: bool,
    /// The partitions definition, inline or by registered name.
    #[serde(default)]
    pub partitions: Option<PartitionsDecl>,
    /// Partition mappings by upstream key (edges without one use the default mapping).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_mappings: Vec<(String, PartitionMapping)>,
    /// The automation condition the daemon evaluates for this asset.
    #[serde(default)]
    pub automation_condition: Option<crate::condition::Condition>,
    /// [`NodeKind::Multi`]: the outputs, in declaration order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputDef>,
    /// A multi-asset whose body yields its outputs: each is persisted as it is yielded, so the
    /// step is never retried (a second attempt would write earlier outputs twice).
    #[serde(default)]
    pub never_retried: bool,
    /// A graph-internal task: the graph asset it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<String>,
    /// [`NodeKind::Graph`]: its internal nodes, in composition order; the final node first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// A graph-internal task mapped over a producer's elements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<MapDef>,
    /// Resources each step of the node requests (the Kubernetes executor's pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute: Option<ComputeDef>,
    /// How backfills of this asset group its partitions into runs, when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill_strategy: Option<BackfillStrategy>,
}

/// A step's resource request as Kubernetes quantities (`"500m"`, `"8Gi"`), each optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputeDef {
    /// CPU request.
    #[serde(default)]
    pub cpu: Option<String>,
    /// Memory request.
    #[serde(default)]
    pub memory: Option<String>,
    /// GPU count.
    #[serde(default)]
    pub gpu: Option<String>,
}

impl NodeDef {
    /// A node with no parameters, dependencies or options; convenient for tests and builders.
    pub fn asset(name: impl Into<String>) -> Self {
        NodeDef {
            name: name.into(),
            kind: NodeKind::Asset,
            params: Vec::new(),
            deps: Vec::new(),
            metadata: Vec::new(),
            tags: Vec::new(),
            kinds: Vec::new(),
            group: None,
            code_version: None,
            io_handler: IoHandlerRef::Default,
            executor_override: None,
            pinned_in_process: false,
            is_async: false,
            retry: None,
            pools: Vec::new(),
            hooks: Vec::new(),
            observable: false,
            partitions: None,
            partition_mappings: Vec::new(),
            automation_condition: None,
            outputs: Vec::new(),
            never_retried: false,
            graph: None,
            members: Vec::new(),
            map: None,
            compute: None,
            backfill_strategy: None,
        }
    }

    /// A standalone task node with no parameters.
    pub fn task(name: impl Into<String>) -> Self {
        NodeDef { kind: NodeKind::Task, ..NodeDef::asset(name) }
    }

    /// A multi-asset node producing `outputs`.
    pub fn multi(name: impl Into<String>, outputs: &[&str]) -> Self {
        NodeDef {
            kind: NodeKind::Multi,
            outputs: outputs.iter().map(|o| OutputDef::named(*o)).collect(),
            ..NodeDef::asset(name)
        }
    }

    /// Adds a named parameter (builder style).
    pub fn with_param(mut self, name: impl Into<String>) -> Self {
        self.params.push(ParamDef::named(name));
        self
    }

    /// The asset keys this node's step writes: a multi-asset's outputs, else the node itself.
    pub fn output_names(&self) -> impl Iterator<Item = &str> {
        let own = if self.kind == NodeKind::Multi { None } else { Some(self.name.as_str()) };
        own.into_iter().chain(self.outputs.iter().map(|o| o.name.as_str()))
    }

    /// Adds a lineage-only dependency (builder style).
    pub fn with_dep(mut self, name: impl Into<String>) -> Self {
        self.deps.push(DepDef { name: name.into(), is_input: false, io_handler: None });
        self
    }

    pub(crate) fn parsed_executor(&self) -> crate::Result<Option<ExecutorKind>> {
        match &self.executor_override {
            None => Ok(None),
            Some(raw) => raw.parse().map(Some).map_err(|_| {
                crate::Error::Configuration(format!(
                    "asset '{}' has metadata rivers/executor={raw:?}; valid values are \
                     \"in_process\", \"parallel\" and \"kubernetes\"",
                    self.name
                ))
            }),
        }
    }
}

/// A job: a named selection of nodes with its own executor and retry default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDef {
    /// Job name.
    pub name: String,
    /// Node names, as listed.
    pub nodes: Vec<String>,
    /// The job's executor, when it overrides the repository default.
    #[serde(default)]
    pub executor: Option<ExecutorKind>,
    /// Whether the job may leave upstreams of its nodes out.
    #[serde(default)]
    pub allow_incomplete_deps: bool,
    /// The job's retry default.
    #[serde(default)]
    pub retry: Option<RetrySpec>,
}

/// Everything a repository declares, as data: what the daemon, the gRPC service and the UI
/// read instead of importing user code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefinitionsSnapshot {
    /// Nodes in registration order.
    pub nodes: Vec<NodeDef>,
    /// Jobs in registration order.
    pub jobs: Vec<JobDef>,
    /// Registered resource keys.
    pub resources: Vec<String>,
    /// The repository's default executor.
    pub default_executor: ExecutorKind,
    /// The repository's default retry policy.
    #[serde(default)]
    pub default_retry: Option<RetrySpec>,
    /// Retry policies registered by name.
    #[serde(default)]
    pub retries: BTreeMap<String, RetryPolicy>,
    /// Partitions definitions registered by name (`partition_defs=`), which nodes may name.
    #[serde(default)]
    pub partitions: BTreeMap<String, Partitions>,
    /// Schedules.
    #[serde(default)]
    pub schedules: Vec<ScheduleDef>,
    /// Sensors.
    #[serde(default)]
    pub sensors: Vec<SensorDef>,
    /// Concurrency pool limits the repository declares.
    #[serde(default)]
    pub pool_limits: Vec<PoolLimitDef>,
}

/// How the daemon runs a schedule's or sensor's evaluation function (`EvalMode`); serialised
/// as the Python member's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum EvalMode {
    /// Decided when the daemon starts: a coroutine function on the event loop, any other on a
    /// blocking thread.
    #[default]
    Auto,
    /// In the daemon's process; today the same as `Auto`.
    InProcess,
    /// In a worker process, without resources or config.
    Subprocess,
}

impl EvalMode {
    /// Every member, in declaration order.
    pub const ALL: &'static [EvalMode] = &[EvalMode::Auto, EvalMode::InProcess, EvalMode::Subprocess];

    /// The Python member's name.
    pub fn as_str(self) -> &'static str {
        match self {
            EvalMode::Auto => "Auto",
            EvalMode::InProcess => "InProcess",
            EvalMode::Subprocess => "Subprocess",
        }
    }
}

impl std::str::FromStr for EvalMode {
    type Err = crate::Error;

    fn from_str(text: &str) -> crate::Result<Self> {
        EvalMode::ALL.iter().copied().find(|mode| mode.as_str() == text).ok_or_else(|| {
            let names: Vec<&str> = EvalMode::ALL.iter().map(|mode| mode.as_str()).collect();
            crate::Error::InvalidValue(format!("unknown EvalMode {text:?}; expected one of: {}", names.join(", ")))
        })
    }
}

/// A schedule: everything the daemon needs to tick it without importing user code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleDef {
    /// Schedule name.
    pub name: String,
    /// Cron expression (5 or 6 fields), as given.
    pub cron: String,
    /// IANA timezone the cron fields are matched in; `None` is UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    /// The job its requests launch unless a request names another.
    pub job: String,
    /// Whether the daemon ticks it until its status is changed at runtime.
    pub default_status: AutomationStatus,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Tags of the runs it launches.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// Per-tick evaluation timeout in seconds; `None` waits for as long as the evaluation takes.
    #[serde(default)]
    pub eval_timeout_secs: Option<f64>,
    /// How its evaluation function runs.
    #[serde(default)]
    pub eval_mode: EvalMode,
    /// Whether it has an evaluation function; without one every tick requests one run of `job`.
    pub has_evaluation_fn: bool,
}

/// A sensor: everything the daemon needs to tick it without importing user code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorDef {
    /// Sensor name.
    pub name: String,
    /// The job its requests launch unless a request names another.
    #[serde(default)]
    pub job: Option<String>,
    /// The assets it watches (empty when it names none); with no job, its requests launch an
    /// ad-hoc run over them.
    #[serde(default)]
    pub asset_selection: Vec<String>,
    /// Least time between two evaluations, in seconds (30 when the sensor sets none).
    pub minimum_interval_secs: f64,
    /// Whether the daemon ticks it until its status is changed at runtime.
    pub default_status: AutomationStatus,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Tags of the runs it launches.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// Per-tick evaluation timeout in seconds; `None` waits for as long as the evaluation takes.
    #[serde(default)]
    pub eval_timeout_secs: Option<f64>,
    /// How its evaluation function runs.
    #[serde(default)]
    pub eval_mode: EvalMode,
    /// Whether it has an evaluation function; without one every tick requests one run.
    pub has_evaluation_fn: bool,
}

impl SensorDef {
    /// The interval of a sensor that sets no `minimum_interval`, in seconds.
    pub const DEFAULT_MINIMUM_INTERVAL_SECS: f64 = 30.0;
}

/// A concurrency pool's limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolLimitDef {
    /// Pool key.
    pub pool: String,
    /// Slots that may be held at once.
    pub slot_limit: u32,
}

impl DefinitionsSnapshot {
    /// The snapshot as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("definitions serialise: keys are strings, floats are finite")
    }

    /// Reads a snapshot written by [`DefinitionsSnapshot::to_json`].
    ///
    /// # Errors
    /// `InvalidValue` naming what does not parse.
    pub fn from_json(text: &str) -> crate::Result<Self> {
        serde_json::from_str(text).map_err(|err| crate::Error::InvalidValue(format!("definitions snapshot: {err}")))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::graph::AssetGraph;
    use crate::retry::{Backoff, RetryOn};
    use crate::vocab::FailureReason;

    #[test]
    fn a_snapshot_round_trips_through_json_with_every_field() {
        let mut orders = NodeDef::asset("orders");
        orders.tags = vec!["finance".into()];
        orders.kinds = vec!["python".into()];
        orders.group = Some("sales".into());
        orders.code_version = Some("v2".into());
        orders.metadata = vec![("owner".into(), "team-a".into())];
        orders.io_handler = IoHandlerRef::Resource { key: "warehouse".into() };
        orders.pools = vec![PoolClaim { pool: "db".into(), slots: 2 }];
        orders.hooks = vec![HookDef { name: "notify".into(), hook_type: HookType::Failure }];
        orders.retry = Some(RetrySpec::Policy(RetryPolicy {
            max_retries: 3,
            backoff: Some(Backoff::Exponential { initial: 1.0, factor: 2.0, jitter: 0.1, max_delay: Some(30.0) }),
            retry_on: RetryOn::List {
                reasons: vec![FailureReason::Timeout],
                classes: vec!["builtins.ConnectionError".into()],
                class_filter: Some(4),
            },
            escalate_on: vec![],
        }));
        let mut report = NodeDef::asset("report").with_param("orders");
        report.params.push(ParamDef { role: ParamRole::ContextByName, ..ParamDef::named("context") });
        report.deps.push(DepDef {
            name: "orders".into(),
            is_input: true,
            io_handler: Some(IoHandlerRef::Object { class: "my.Handler".into() }),
        });
        report.retry = Some(RetrySpec::Named("patient".into()));
        let patient = RetryPolicy { max_retries: 5, backoff: None, retry_on: RetryOn::Transient, escalate_on: vec![] };
        let registered = HashMap::from([("patient".to_string(), patient)]);
        let graph = AssetGraph::build(vec![orders, report], &["warehouse".into()], registered).unwrap();
        let job = JobDef {
            name: "daily".into(),
            nodes: vec!["orders".into(), "report".into()],
            executor: Some(ExecutorKind::InProcess),
            allow_incomplete_deps: false,
            retry: None,
        };
        let snapshot = graph.snapshot(vec![job], ExecutorKind::Parallel, Some(RetrySpec::Named("patient".into())));
        let json = snapshot.to_json();
        assert!(json.contains(r#""role":"context_by_name""#), "{json}");
        assert!(json.contains(r#""io_handler":{"type":"resource","key":"warehouse"}"#), "{json}");
        assert!(json.contains(r#""classes":["builtins.ConnectionError"]"#), "{json}");
        assert!(json.contains(r#""default_executor":"parallel""#), "{json}");
        assert!(!json.contains("class_filter"), "process-local ids stay out: {json}");
        let back = DefinitionsSnapshot::from_json(&json).unwrap();
        // Everything but the process-local filter id survives.
        let mut expected = snapshot.clone();
        if let Some(RetrySpec::Policy(RetryPolicy { retry_on: RetryOn::List { class_filter, .. }, .. })) =
            &mut expected.nodes[0].retry
        {
            *class_filter = None;
        }
        assert_eq!(back, expected);
        assert!(DefinitionsSnapshot::from_json("{}").unwrap_err().to_string().contains("definitions snapshot"));
    }

    #[test]
    fn eval_modes_are_spelled_as_the_python_members() {
        for mode in EvalMode::ALL {
            assert_eq!(mode.as_str().parse::<EvalMode>().unwrap(), *mode);
            assert_eq!(serde_json::to_string(mode).unwrap(), format!("\"{}\"", mode.as_str()));
        }
        let unknown = "subprocess".parse::<EvalMode>().unwrap_err().to_string();
        assert!(unknown.contains("Auto, InProcess, Subprocess"), "{unknown}");
    }

    #[test]
    fn schedules_and_sensors_round_trip_and_optional_fields_default() {
        let schedule = ScheduleDef {
            name: "nightly".into(),
            cron: "0 3 * * *".into(),
            timezone: Some("Europe/Berlin".into()),
            job: "orders".into(),
            default_status: AutomationStatus::Running,
            description: None,
            tags: vec![("team".into(), "sales".into())],
            eval_timeout_secs: Some(0.25),
            eval_mode: EvalMode::Subprocess,
            has_evaluation_fn: true,
        };
        let json = serde_json::to_string(&schedule).unwrap();
        assert!(
            json.contains(r#""default_status":"Running""#) && json.contains(r#""eval_mode":"Subprocess""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<ScheduleDef>(&json).unwrap(), schedule);

        let minimal =
            r#"{"name":"inbox","minimum_interval_secs":30.0,"default_status":"Stopped","has_evaluation_fn":false}"#;
        let sensor: SensorDef = serde_json::from_str(minimal).unwrap();
        assert_eq!((sensor.job, sensor.asset_selection, sensor.eval_mode), (None, vec![], EvalMode::Auto));
        assert_eq!(sensor.eval_timeout_secs, None);
        assert_eq!(SensorDef::DEFAULT_MINIMUM_INTERVAL_SECS, 30.0);
    }
}
