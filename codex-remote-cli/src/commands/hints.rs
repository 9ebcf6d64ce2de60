//! Next steps that name the run, added to an error by a command that knows which run failed.

use codex_remote_core::ApplyError;

use crate::error::CliError;

/// The hint for an error of run `run_id`, when there is one worth giving.
pub fn for_run(error: &CliError, run_id: &str) -> Option<String> {
    let CliError::Core(codex_remote_core::Error::Apply(apply)) = error else {
        return None;
    };
    match apply {
        ApplyError::Restricted(_) => Some(format!(
            "review it with `codex-remote diff {run_id}`; apply the rest without the restricted files with `codex-remote pull {run_id} --apply --skip-restricted`, or all of it anyway with `codex-remote pull {run_id} --apply --allow-restricted`"
        )),
        ApplyError::Conflicts(_) | ApplyError::Refused(_) => Some(format!(
            "the result is kept: review it with `codex-remote diff {run_id}`, settle the local edits, then `codex-remote pull {run_id} --apply`"
        )),
        _ => None,
    }
}

/// The error, with the hint naming run `run_id` when there is one.
pub fn name_run(error: CliError, run_id: Option<&str>) -> CliError {
    match run_id.and_then(|id| for_run(&error, id)) {
        Some(hint) => CliError::Hinted {
            source: Box::new(error),
            hint,
        },
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_refusals_name_the_run() {
        let e = CliError::Core(ApplyError::Restricted(vec!["package.json".into()]).into());
        let hint = for_run(&e, "fix-it-20260101-000000-abcd").unwrap();
        assert!(
            hint.contains("codex-remote diff fix-it-20260101-000000-abcd"),
            "{hint}"
        );
        assert!(hint.contains("pull fix-it-20260101-000000-abcd --apply --allow-restricted"));
        assert!(hint.contains("pull fix-it-20260101-000000-abcd --apply --skip-restricted"));
        assert_eq!(for_run(&CliError::Usage("x".into()), "r"), None);
    }
}
