//! Node definitions as plain data: what the authoring layer hands to the graph builder.

use crate::retry::RetrySpec;
use crate::vocab::ExecutorKind;

/// What kind of node a definition describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// An asset computed by a function (one step).
    Asset,
    /// An asset produced outside rivers: a graph source, never a step.
    External,
}

/// How the authoring layer classified a function parameter from its annotation and position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamRole {
    /// First parameter annotated with the context type.
    Context,
    /// First parameter named `context` without a context annotation: the context unless an
    /// asset named `context` exists.
    ContextByName,
    /// A context annotation in a non-first position: the step fails at run time.
    MisplacedContext,
    /// `self: SelfDependency[T]`: loads the asset's own previous value, no graph edge.
    SelfDependency,
    /// Anything else: bound to an upstream asset or a resource by name.
    Named,
}

/// One parameter of a node's function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamDef {
    /// Parameter name.
    pub name: String,
    /// Classification.
    pub role: ParamRole,
    /// Whether the parameter has a Python default value.
    pub has_default: bool,
}

/// An explicit dependency (`AssetDef.input` / `AssetDef.dep`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepDef {
    /// Upstream asset key.
    pub name: String,
    /// `true` for a data edge (`input`), `false` for a lineage-only edge (`dep`).
    pub is_input: bool,
}

/// A node of the asset graph.
#[derive(Debug, Clone)]
pub struct NodeDef {
    /// Node (asset) name.
    pub name: String,
    /// Node kind.
    pub kind: NodeKind,
    /// Function parameters, in signature order.
    pub params: Vec<ParamDef>,
    /// Explicit dependencies.
    pub deps: Vec<DepDef>,
    /// Raw `rivers/executor` metadata value, validated when the graph is built.
    pub executor_override: Option<String>,
    /// The step must run in the calling process whatever the executor (its values live in an
    /// in-memory handler that cannot cross a process boundary).
    pub pinned_in_process: bool,
    /// The function is `async def`.
    pub is_async: bool,
    /// The node's own retry policy.
    pub retry: Option<RetrySpec>,
}

impl NodeDef {
    /// A node with no parameters, dependencies or options; convenient for tests and builders.
    pub fn asset(name: impl Into<String>) -> Self {
        NodeDef {
            name: name.into(),
            kind: NodeKind::Asset,
            params: Vec::new(),
            deps: Vec::new(),
            executor_override: None,
            pinned_in_process: false,
            is_async: false,
            retry: None,
        }
    }

    /// Adds a named parameter (builder style).
    pub fn with_param(mut self, name: impl Into<String>) -> Self {
        self.params.push(ParamDef { name: name.into(), role: ParamRole::Named, has_default: false });
        self
    }

    /// Adds a lineage-only dependency (builder style).
    pub fn with_dep(mut self, name: impl Into<String>) -> Self {
        self.deps.push(DepDef { name: name.into(), is_input: false });
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
