//! The code location a process writes for (platform.md §2, "Deployment mode" and
//! "Identity"): runs, backfills and definitions snapshots carry it, so that several code
//! locations share one store and a daemon admits only its own location's runs.
//!
//! It comes from `RIVERS_CODE_LOCATION_ID`. Without one, a `dev` deployment (the default)
//! writes under [`LOCAL_CODE_LOCATION`]; a `cloud` one refuses to write per-location rows.

use crate::error::{Error, Result};

/// The identity variable (the operator sets it on code-location, run and step pods).
pub const CODE_LOCATION_VAR: &str = "RIVERS_CODE_LOCATION_ID";
/// The deployment-mode variable: `dev` (default) or `cloud`.
pub const DEPLOYMENT_VAR: &str = "RIVERS_DEPLOYMENT";
/// The identity of a dev process that sets none; rows written before identities existed are
/// migrated to it.
pub const LOCAL_CODE_LOCATION: &str = "local";

/// Where rivers runs (`RIVERS_DEPLOYMENT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    /// A laptop or CI (`rivers dev`, library use): a default identity is fine.
    Dev,
    /// Production (`serve`, `execute`, `execute-step`): an identity is mandatory.
    Cloud,
}

impl std::str::FromStr for Deployment {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "dev" => Ok(Deployment::Dev),
            "cloud" => Ok(Deployment::Cloud),
            other => Err(Error::InvalidArgument(format!(
                "{DEPLOYMENT_VAR} is {other:?}; it must be \"dev\" or \"cloud\" (or unset, meaning dev)"
            ))),
        }
    }
}

/// The code location a storage handle writes for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeLocationId {
    /// Rows are written under this identity.
    Known(String),
    /// A cloud deployment without `RIVERS_CODE_LOCATION_ID`: per-location writes fail.
    Missing,
}

impl CodeLocationId {
    /// The identity from the process environment.
    ///
    /// # Errors
    /// `InvalidArgument` for a `RIVERS_DEPLOYMENT` other than `dev` or `cloud`.
    pub fn from_env() -> Result<Self> {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// [`CodeLocationId::from_env`] with the environment given as a lookup function. Empty
    /// values count as unset.
    ///
    /// # Errors
    /// As [`CodeLocationId::from_env`].
    pub fn from_env_with(env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let set = |name: &str| env(name).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty());
        let deployment = set(DEPLOYMENT_VAR).map_or(Ok(Deployment::Dev), |text| text.parse())?;
        Ok(match (set(CODE_LOCATION_VAR), deployment) {
            (Some(identity), _) => CodeLocationId::Known(identity),
            (None, Deployment::Dev) => CodeLocationId::Known(LOCAL_CODE_LOCATION.into()),
            (None, Deployment::Cloud) => CodeLocationId::Missing,
        })
    }

    /// The identity to write something under; `what` names it in the error (built only then).
    ///
    /// # Errors
    /// `MissingCodeLocation` naming `what` when there is none.
    pub fn for_writing<S: Into<String>>(&self, what: impl FnOnce() -> S) -> Result<&str> {
        match self {
            CodeLocationId::Known(identity) => Ok(identity),
            CodeLocationId::Missing => Err(Error::MissingCodeLocation { what: what().into() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<CodeLocationId> {
        CodeLocationId::from_env_with(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn the_identity_comes_from_the_environment_with_a_local_default_only_in_dev() {
        let known = |id: &str| CodeLocationId::Known(id.into());
        assert_eq!(from(&[]).unwrap(), known(LOCAL_CODE_LOCATION));
        assert_eq!(from(&[(DEPLOYMENT_VAR, "dev")]).unwrap(), known(LOCAL_CODE_LOCATION));
        assert_eq!(from(&[(CODE_LOCATION_VAR, "7f3c")]).unwrap(), known("7f3c"));
        assert_eq!(from(&[(DEPLOYMENT_VAR, "cloud"), (CODE_LOCATION_VAR, "7f3c")]).unwrap(), known("7f3c"));
        assert_eq!(from(&[(DEPLOYMENT_VAR, "cloud"), (CODE_LOCATION_VAR, " ")]).unwrap(), CodeLocationId::Missing);

        let missing = from(&[(DEPLOYMENT_VAR, "cloud")]).unwrap().for_writing(|| "run 'r'").unwrap_err().to_string();
        assert!(missing.contains(CODE_LOCATION_VAR) && missing.contains("run 'r'"), "{missing}");
        let invalid = from(&[(DEPLOYMENT_VAR, "prod")]).unwrap_err().to_string();
        assert!(invalid.contains(DEPLOYMENT_VAR) && invalid.contains("\"prod\""), "{invalid}");
    }
}
