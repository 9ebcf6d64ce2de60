//! Run references on the command line: a run id, `last` (the newest run of the project) or
//! `last~N` (the N-th before it), as git's `HEAD~N`.

use codex_remote_core::RunStore;

use crate::error::CliError;

/// The run id a reference names.
pub fn resolve(store: &RunStore, reference: &str) -> Result<String, CliError> {
    let back = match reference.strip_prefix("last") {
        Some("") => 0,
        Some(rest) => match rest.strip_prefix('~').map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => return Ok(reference.to_string()),
        },
        None => return Ok(reference.to_string()),
    };
    let runs = store.list()?;
    if runs.is_empty() {
        return Err(CliError::Usage(format!(
            "`{reference}` names no run: no runs are recorded in this project"
        )));
    }
    runs.iter()
        .rev()
        .nth(back)
        .map(|r| r.id.clone())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "`{reference}` names no run: this project has {} run(s), so `last~{}` is the oldest (see `codex-remote runs`)",
                runs.len(),
                runs.len() - 1
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use codex_remote_core::RunRecord;

    fn record(id: &str, created_at: &str) -> RunRecord {
        serde_json::from_value(serde_json::json!({
            "id": id, "task_id": "t", "host": "local", "project": "p", "remote_mirror": "m",
            "tree": null, "phase": "completed", "created_at": created_at, "updated_at": created_at,
        }))
        .unwrap()
    }

    #[test]
    fn last_and_last_tilde_n_count_back_from_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        assert!(resolve(&store, "last")
            .unwrap_err()
            .to_string()
            .contains("no runs are recorded"));
        for (id, at) in [
            ("b-run", "2026-01-02T00:00:00Z"),
            ("a-run", "2026-01-03T00:00:00Z"),
            ("c-run", "2026-01-01T00:00:00Z"),
        ] {
            store.save(&record(id, at)).unwrap();
        }
        assert_eq!(resolve(&store, "last").unwrap(), "a-run");
        assert_eq!(resolve(&store, "last~0").unwrap(), "a-run");
        assert_eq!(resolve(&store, "last~1").unwrap(), "b-run");
        assert_eq!(resolve(&store, "last~2").unwrap(), "c-run");
        let e = resolve(&store, "last~3").unwrap_err().to_string();
        assert!(
            e.contains("3 run(s)") && e.contains("`last~2` is the oldest"),
            "{e}"
        );
        // Anything else is an id, taken as written (a task may be called `last-thing`).
        assert_eq!(resolve(&store, "last-thing").unwrap(), "last-thing");
        assert_eq!(resolve(&store, "last~x").unwrap(), "last~x");
        assert_eq!(resolve(&store, "b-run").unwrap(), "b-run");
    }
}
