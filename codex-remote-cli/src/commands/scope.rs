//! `--file` paths of a `--prompt` task, as the user typed them: relative to the current
//! directory (which may be a subdirectory of the project), made relative to the project root,
//! and checked to exist when they are plain paths rather than globs.

use std::path::{Component, Path, PathBuf};

use codex_remote_core::InputError;

use crate::error::CliError;

fn is_glob(file: &str) -> bool {
    file.contains(['*', '?', '[', '{'])
}

/// Lexically normalises `a/./b/../c` to `a/c` (no symlinks followed).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The scope entries relative to `root`, given as typed in `cwd`.
pub fn resolve(root: &Path, cwd: &Path, files: &[String]) -> Result<Vec<String>, CliError> {
    let root = normalise(root);
    files
        .iter()
        .map(|file| {
            let absolute = normalise(&cwd.join(file));
            let relative = absolute.strip_prefix(&root).map_err(|_| {
                InputError::new("--file", format!("`{file}` is outside the project"))
                    .hint(format!(
                        "name files inside the project ({}), relative to the current directory",
                        root.display()
                    ))
            })?;
            if relative.as_os_str().is_empty() {
                return Err(InputError::new(
                    "--file",
                    format!("`{file}` is the project root itself"),
                )
                .hint("name the files or folders the task is about")
                .into());
            }
            if !is_glob(file) && !absolute.exists() {
                let shown = relative.display();
                return Err(InputError::new(
                    "--file",
                    format!("`{file}` does not exist (looked for {shown} in the project)"),
                )
                .hint("--file paths are relative to the current directory; check the spelling, or quote a glob")
                .into());
            }
            Ok(relative.to_string_lossy().into_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_from_a_subdirectory_are_made_relative_to_the_root_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/auth")).unwrap();
        std::fs::write(root.join("src/app.ts"), "").unwrap();
        let src = root.join("src");
        let ok = |f: &str| resolve(root, &src, &[f.to_string()]).unwrap().remove(0);
        assert_eq!(ok("app.ts"), "src/app.ts");
        assert_eq!(ok("./auth"), "src/auth");
        assert_eq!(ok("../src/app.ts"), "src/app.ts");
        assert_eq!(ok("**/*.ts"), "src/**/*.ts");
        let err = |f: &str| {
            resolve(root, &src, &[f.to_string()])
                .unwrap_err()
                .to_string()
        };
        assert!(
            err("ap.ts").contains("`ap.ts` does not exist (looked for src/ap.ts"),
            "{}",
            err("ap.ts")
        );
        assert!(
            err("../../x").contains("outside the project"),
            "{}",
            err("../../x")
        );
        assert!(err("..").contains("project root itself"));
    }
}
