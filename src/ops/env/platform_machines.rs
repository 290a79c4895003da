//! `bess platform up|halt`: `env up` or `env halt` on every environment
//! of a platform, in name order, each one whatever became of the others:
//! an operator bringing back a whole platform wants every environment
//! that can start started, and a list of those that could not.

use super::machines::{MachineOutcome, bring_up_env, env_halt, failures};
use super::{recover::recover, require_platform};
use crate::ops::{OpsError, Repo};
use serde::Serialize;

/// What `platform up` or `platform halt` did to one environment.
#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentOutcome {
    pub environment: String,
    /// Each machine's outcome; empty when the environment failed before
    /// any machine was touched (a missing host tool, a busy environment).
    pub machines: Vec<MachineOutcome>,
    /// Why the environment failed; `None` when it did what was asked.
    pub error: Option<String>,
}

/// Starts every environment of `platform` as `env up` does, in name order.
pub fn platform_up(repo: &mut Repo, platform: &str) -> Result<Vec<EnvironmentOutcome>, OpsError> {
    each_environment(repo, platform, |repo, env| {
        match bring_up_env(repo, platform, env, None, false) {
            Ok((row, machines)) => {
                let error = failures(&row, machines.clone()).err();
                (machines, error.map(|e| e.to_string()))
            }
            Err(e) => (Vec::new(), Some(e.to_string())),
        }
    })
}

/// Shuts every environment of `platform` down as `env halt` does, in name order.
pub fn platform_halt(repo: &mut Repo, platform: &str) -> Result<Vec<EnvironmentOutcome>, OpsError> {
    each_environment(repo, platform, |repo, env| {
        match env_halt(repo, platform, env, None) {
            Ok(machines) => (machines, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        }
    })
}

/// Runs `act` on each environment of the platform; an environment's
/// failure is recorded in its outcome and the next one goes on.
fn each_environment(
    repo: &mut Repo,
    platform: &str,
    mut act: impl FnMut(&mut Repo, &str) -> (Vec<MachineOutcome>, Option<String>),
) -> Result<Vec<EnvironmentOutcome>, OpsError> {
    recover(repo)?;
    require_platform(repo, platform)?;
    // Listed once: an environment made meanwhile waits for the next run,
    // one destroyed meanwhile is reported by `act` as not found.
    let names: Vec<String> = repo
        .catalog
        .reader()
        .environments(Some(platform))?
        .into_iter()
        .map(|e| e.name)
        .collect();
    let mut outcomes = Vec::new();
    for name in names {
        let (machines, error) = act(repo, &name);
        outcomes.push(EnvironmentOutcome {
            environment: name,
            machines,
            error,
        });
    }
    Ok(outcomes)
}

/// Nothing, or an error naming each environment that failed `verb`
/// (`come up`, `halt`) with its reason.
pub fn platform_verdict(
    platform: &str,
    verb: &str,
    outcomes: &[EnvironmentOutcome],
) -> Result<(), OpsError> {
    let failed: Vec<&EnvironmentOutcome> = outcomes.iter().filter(|o| o.error.is_some()).collect();
    if failed.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = failed.iter().map(|o| o.environment.as_str()).collect();
    let reasons: Vec<String> = failed
        .iter()
        .map(|o| {
            format!(
                "{}: {}",
                o.environment,
                o.error.as_deref().unwrap_or_default()
            )
        })
        .collect();
    Err(OpsError::Conflict(format!(
        "{} of {} environments of platform {platform} did not {verb}: {}\n{}",
        failed.len(),
        outcomes.len(),
        names.join(", "),
        reasons.join("\n")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(environment: &str, error: Option<&str>) -> EnvironmentOutcome {
        EnvironmentOutcome {
            environment: environment.into(),
            machines: Vec::new(),
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn the_verdict_names_every_failed_environment_and_why() {
        let outcomes = [
            outcome("1161", None),
            outcome("1162", Some("machine web: no box")),
            outcome("1163", Some("environment paas/1163 is creating")),
        ];
        let error = platform_verdict("paas", "come up", &outcomes)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("2 of 3 environments of platform paas did not come up: 1162, 1163\n"),
            "{error}"
        );
        assert!(error.contains("\n1162: machine web: no box"), "{error}");
        assert!(error.contains("\n1163: environment paas/1163"), "{error}");
        assert!(!error.contains("1161"), "{error}");
    }

    #[test]
    fn no_failure_and_no_environment_are_no_error() {
        assert!(platform_verdict("paas", "halt", &[outcome("1161", None)]).is_ok());
        assert!(platform_verdict("paas", "halt", &[]).is_ok());
    }
}
