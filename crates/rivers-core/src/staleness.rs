//! Staleness: whether each asset's last materialization still reflects its code and inputs.

use std::collections::HashMap;

/// What staleness needs to know about one asset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetVersionState {
    /// Asset key.
    pub asset_key: String,
    /// External assets are never stale or missing themselves.
    pub is_external: bool,
    /// Currently declared code version.
    pub code_version: Option<String>,
    /// Whether the asset has ever been materialized.
    pub materialized: bool,
    /// Code version in effect at the last materialization.
    pub last_materialization_code_version: Option<String>,
    /// Current data version (last materialization, or last observation for externals).
    pub current_data_version: Option<String>,
    /// `(upstream, data_version)` pairs recorded at the last materialization.
    pub last_input_data_versions: Vec<(String, String)>,
    /// Upstream asset keys.
    pub upstreams: Vec<String>,
}

/// The three staleness statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StalenessStatus {
    /// Materialized and no cause applies.
    UpToDate,
    /// At least one cause applies.
    Stale,
    /// Never materialized.
    Missing,
}

impl StalenessStatus {
    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StalenessStatus::UpToDate => "UpToDate",
            StalenessStatus::Stale => "Stale",
            StalenessStatus::Missing => "Missing",
        }
    }
}

/// Why an asset is stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleCause {
    /// The stale asset.
    pub asset_key: String,
    /// `"Code"`, `"Data"` or `"Dependencies"`.
    pub category: &'static str,
    /// Human-readable explanation.
    pub reason: String,
    /// Upstream involved, if any.
    pub dependency: Option<String>,
}

/// Status plus causes of one asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staleness {
    /// Status.
    pub status: StalenessStatus,
    /// Causes (empty unless stale).
    pub causes: Vec<StaleCause>,
}

/// Computes staleness for every asset, in input order.
pub fn compute_staleness(states: &[AssetVersionState]) -> Vec<(String, Staleness)> {
    let index: HashMap<&str, usize> = states.iter().enumerate().map(|(i, s)| (s.asset_key.as_str(), i)).collect();
    let mut memo: Vec<Option<StalenessStatus>> = vec![None; states.len()];
    let mut out = Vec::with_capacity(states.len());
    for id in 0..states.len() {
        let staleness = evaluate(id, states, &index, &mut memo);
        out.push((states[id].asset_key.clone(), staleness));
    }
    out
}

fn status_of(
    id: usize,
    states: &[AssetVersionState],
    index: &HashMap<&str, usize>,
    memo: &mut Vec<Option<StalenessStatus>>,
) -> StalenessStatus {
    if let Some(status) = memo[id] {
        return status;
    }
    // Guard against malformed (cyclic) stored topology: treat an in-progress node as up to date.
    memo[id] = Some(StalenessStatus::UpToDate);
    let status = evaluate(id, states, index, memo).status;
    memo[id] = Some(status);
    status
}

fn evaluate(
    id: usize,
    states: &[AssetVersionState],
    index: &HashMap<&str, usize>,
    memo: &mut Vec<Option<StalenessStatus>>,
) -> Staleness {
    let state = &states[id];
    let up_to_date = Staleness { status: StalenessStatus::UpToDate, causes: Vec::new() };
    if state.is_external {
        return up_to_date;
    }
    if !state.materialized {
        return Staleness { status: StalenessStatus::Missing, causes: Vec::new() };
    }
    let mut causes = Vec::new();
    let cause = |category, reason: String, dependency: Option<String>| StaleCause {
        asset_key: state.asset_key.clone(),
        category,
        reason,
        dependency,
    };
    if state.code_version != state.last_materialization_code_version {
        causes.push(cause(
            "Code",
            format!(
                "code version changed from {:?} to {:?} since the last materialization",
                state.last_materialization_code_version, state.code_version
            ),
            None,
        ));
    }
    for upstream in &state.upstreams {
        let Some(&up) = index.get(upstream.as_str()) else { continue };
        let current = states[up].current_data_version.as_deref();
        let recorded = state.last_input_data_versions.iter().find(|(k, _)| k == upstream).map(|(_, v)| v.as_str());
        if current.is_some() && current != recorded {
            causes.push(cause(
                "Data",
                format!("upstream '{upstream}' has a new data version since the last materialization"),
                Some(upstream.clone()),
            ));
        }
        match status_of(up, states, index, memo) {
            StalenessStatus::UpToDate => {}
            status => causes.push(cause(
                "Dependencies",
                format!("upstream '{upstream}' is {}", status.as_str()),
                Some(upstream.clone()),
            )),
        }
    }
    if causes.is_empty() { up_to_date } else { Staleness { status: StalenessStatus::Stale, causes } }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(key: &str, ups: &[&str]) -> AssetVersionState {
        AssetVersionState {
            asset_key: key.into(),
            materialized: true,
            current_data_version: Some(format!("{key}-v1")),
            upstreams: ups.iter().map(|u| u.to_string()).collect(),
            last_input_data_versions: ups.iter().map(|u| (u.to_string(), format!("{u}-v1"))).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn fresh_chain_is_up_to_date() {
        let result = compute_staleness(&[state("a", &[]), state("b", &["a"])]);
        assert!(result.iter().all(|(_, s)| s.status == StalenessStatus::UpToDate));
    }

    #[test]
    fn code_change_propagates_as_dependency_cause() {
        let mut a = state("a", &[]);
        a.code_version = Some("2".into());
        let result = compute_staleness(&[a, state("b", &["a"])]);
        assert_eq!(result[0].1.causes[0].category, "Code");
        assert_eq!(result[1].1.causes[0].category, "Dependencies");
    }

    #[test]
    fn new_upstream_data_is_a_data_cause() {
        let mut a = state("a", &[]);
        a.current_data_version = Some("a-v2".into());
        let result = compute_staleness(&[a, state("b", &["a"])]);
        assert_eq!(result[1].1.status, StalenessStatus::Stale);
        assert_eq!(result[1].1.causes[0].dependency.as_deref(), Some("a"));
    }

    #[test]
    fn never_materialized_is_missing() {
        let mut a = state("a", &[]);
        a.materialized = false;
        assert_eq!(compute_staleness(&[a])[0].1.status, StalenessStatus::Missing);
    }
}
