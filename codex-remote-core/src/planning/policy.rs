//! The restricted-file policy: files a run may neither see in its context nor change.
//!
//! The seed workflow's rule: `package.json` and `package-lock.json` are restricted, to keep
//! dependency changes in the npm CLI's hands. The same [`RestrictedFiles`] value is used when the
//! instruction is rendered (keep them out of context, tell the agent not to touch them) and when a
//! result is applied (refuse a patch that changes them).

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::input::InputError;

/// The default restricted patterns.
pub const DEFAULT_RESTRICTED: [&str; 2] = ["package.json", "package-lock.json"];

/// A set of restricted path patterns.
///
/// A pattern without a `/` matches a file of that name at any depth (as in `.gitignore`);
/// a pattern with a `/` is anchored at the project root. `*` does not cross `/`; `**` does.
///
/// ```
/// use codex_remote_core::policy::RestrictedFiles;
/// let policy = RestrictedFiles::default();
/// assert!(policy.is_restricted("package.json"));
/// assert!(policy.is_restricted("web/package.json"));
/// assert!(!policy.is_restricted("src/package.ts"));
/// ```
#[derive(Debug, Clone)]
pub struct RestrictedFiles {
    patterns: Vec<String>,
    set: GlobSet,
}

impl Default for RestrictedFiles {
    fn default() -> Self {
        Self::new(DEFAULT_RESTRICTED.iter().map(|s| s.to_string()))
            .expect("default patterns are valid")
    }
}

impl PartialEq for RestrictedFiles {
    fn eq(&self, other: &Self) -> bool {
        self.patterns == other.patterns
    }
}

impl RestrictedFiles {
    /// Builds a policy; an invalid glob is an error naming it.
    pub fn new(patterns: impl IntoIterator<Item = String>) -> Result<Self, globset::Error> {
        let patterns: Vec<String> = patterns.into_iter().collect();
        let mut builder = GlobSetBuilder::new();
        for pattern in &patterns {
            let anchored = pattern.trim_start_matches('/');
            let full = if anchored.contains('/') || pattern.starts_with("**") {
                anchored.to_string()
            } else {
                format!("**/{anchored}")
            };
            // Case-insensitive: on the file systems that fold case, `Package.JSON` is
            // `package.json`.
            builder.add(
                GlobBuilder::new(&full)
                    .literal_separator(true)
                    .case_insensitive(true)
                    .build()?,
            );
        }
        Ok(Self {
            patterns,
            set: builder.build()?,
        })
    }

    /// Builds a policy from configured patterns, reporting a bad one as an input error.
    pub fn from_config(
        patterns: &[String],
        source_name: &str,
        key: &str,
    ) -> Result<Self, InputError> {
        for (i, pattern) in patterns.iter().enumerate() {
            if let Err(e) = Glob::new(pattern) {
                return Err(InputError::new(
                    source_name,
                    format!("`{pattern}` is not a valid glob: {}", e.kind()),
                )
                .field(format!("{key}[{i}]")));
            }
        }
        Self::new(patterns.iter().cloned())
            .map_err(|e| InputError::new(source_name, e.to_string()).field(key))
    }

    /// The patterns, as configured.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether a project-relative path (`/`-separated) is restricted. Matched as written and
    /// with each component folded ([`fold_name`]), so invisible characters, case and trailing
    /// dots or spaces cannot disguise a restricted name (on HFS+ `package\u{200c}.json` is
    /// `package.json`).
    pub fn is_restricted(&self, path: &str) -> bool {
        let path = path.trim_start_matches("./");
        if self.set.is_match(path) {
            return true;
        }
        let folded: Vec<String> = path.split('/').map(fold_name).collect();
        self.set.is_match(folded.join("/"))
    }

    /// Splits scope or context entries into the kept ones and the excluded (restricted) ones.
    ///
    /// A glob entry such as `*.json` is kept (it names other files too); the agent's
    /// "do not modify" constraint covers the restricted files it would match.
    pub fn partition<'a>(&self, entries: &'a [String]) -> (Vec<&'a String>, Vec<&'a String>) {
        entries
            .iter()
            .partition(|entry| !self.is_restricted(entry.trim()))
    }
}

/// Paths a result may never change, whatever the config says: codex-remote's own state and the
/// config files it reads from the project.
///
/// Protected: any path with a `.codex-remote` or `.git` component, any file named
/// `codex-remote.toml` (the project file is looked for from the working directory upwards, so
/// one in a subdirectory is read too), and every config file that was actually loaded and lies
/// inside the project. Names are compared without regard to case, since a case-insensitive file
/// system maps `.Codex-Remote` onto `.codex-remote`.
///
/// ```
/// use codex_remote_core::policy::ProtectedPaths;
/// let protected = ProtectedPaths::default();
/// assert!(protected.is_protected(".codex-remote/runs/zz/run.json"));
/// assert!(protected.is_protected("sub/codex-remote.toml"));
/// assert!(protected.is_protected("a/.GIT/config"));
/// assert!(!protected.is_protected("src/codex-remote.rs"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtectedPaths {
    /// Loaded config files inside the project, project-relative with `/` separators.
    extra: Vec<String>,
}

/// Directory names a result may never write into, at any depth.
pub const PROTECTED_DIRS: [&str; 2] = [".codex-remote", ".git"];

impl ProtectedPaths {
    /// The fixed set plus every file of `config_sources` that lies under `root`.
    pub fn for_project(root: &std::path::Path, config_sources: &[std::path::PathBuf]) -> Self {
        let canonical_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        let extra = config_sources
            .iter()
            .filter_map(|source| {
                let source = source.canonicalize().unwrap_or_else(|_| source.clone());
                let relative = source.strip_prefix(&canonical_root).ok()?;
                let parts: Vec<String> = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                Some(parts.join("/"))
            })
            .collect();
        Self { extra }
    }

    /// Whether a project-relative path (`/`-separated) is protected. Each component is folded
    /// first ([`fold_name`]), so invisible characters, case and trailing dots or spaces cannot
    /// disguise a protected name.
    pub fn is_protected(&self, path: &str) -> bool {
        let path = path.trim_start_matches("./");
        let components: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .map(fold_name)
            .collect();
        let dir_hit = components
            .iter()
            .any(|c| PROTECTED_DIRS.iter().any(|d| c == d));
        let name_hit = components
            .last()
            .is_some_and(|name| name == crate::config::PROJECT_FILE);
        let joined = components.join("/");
        dir_hit
            || name_hit
            || self.extra.iter().any(|extra| {
                extra
                    .split('/')
                    .map(fold_name)
                    .collect::<Vec<_>>()
                    .join("/")
                    == joined
            })
    }
}

/// A path component as a file system may see it, for matching names that must not be
/// disguised: Unicode default-ignorable code points removed (zero-width joiners and spaces,
/// direction marks and overrides, word joiners, variation selectors, the byte-order mark: what
/// HFS+ ignores, as git's `core.protectHFS` knows), trailing dots and spaces removed (NTFS, as
/// `core.protectNTFS` knows), then lower-cased (case-insensitive file systems).
///
/// ```
/// use codex_remote_core::policy::fold_name;
/// assert_eq!(fold_name(".Codex-Remote\u{200c}"), ".codex-remote");
/// assert_eq!(fold_name("codex-remote.toml. "), "codex-remote.toml");
/// ```
pub fn fold_name(name: &str) -> String {
    let kept: String = name.chars().filter(|&c| !is_default_ignorable(c)).collect();
    kept.trim_end_matches(['.', ' ']).to_lowercase()
}

/// Unicode's `Default_Ignorable_Code_Point` property.
fn is_default_ignorable(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_match_at_any_depth_but_anchored_ones_do_not() {
        let policy =
            RestrictedFiles::new(["package.json".to_string(), "/config/*.yml".to_string()])
                .unwrap();
        assert!(policy.is_restricted("a/b/package.json"));
        assert!(policy.is_restricted("./package.json"));
        assert!(policy.is_restricted("config/app.yml"));
        assert!(!policy.is_restricted("x/config/app.yml"));
        assert!(!policy.is_restricted("config/deep/app.yml"));
        assert!(!policy.is_restricted("package.json.bak"));
    }

    #[test]
    fn partition_reports_exact_entries() {
        let policy = RestrictedFiles::default();
        let entries = vec![
            "src/a.ts".to_string(),
            "package.json".to_string(),
            "*.json".to_string(),
        ];
        let (kept, excluded) = policy.partition(&entries);
        assert_eq!(kept, vec!["src/a.ts", "*.json"]);
        assert_eq!(excluded, vec!["package.json"]);
    }

    #[test]
    fn protected_paths_cover_tool_state_and_loaded_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("conf")).unwrap();
        std::fs::write(dir.path().join("conf/user.toml"), "").unwrap();
        let protected = ProtectedPaths::for_project(
            dir.path(),
            &[
                dir.path().join("conf/user.toml"),
                std::path::PathBuf::from("/elsewhere/config.toml"),
            ],
        );
        for path in [
            ".codex-remote/runs/zz/run.json",
            "./.codex-remote",
            "codex-remote.toml",
            "deep/sub/Codex-Remote.TOML",
            ".git/hooks/pre-commit",
            "vendor/.git/config",
            "conf/user.toml",
        ] {
            assert!(protected.is_protected(path), "{path}");
        }
        for path in [
            "src/a.rs",
            "codex-remote.toml.bak",
            ".codex-remotes/x",
            "conf/other.toml",
        ] {
            assert!(!protected.is_protected(path), "{path}");
        }
    }

    #[test]
    fn invisible_characters_case_and_trailing_dots_do_not_disguise_protected_names() {
        let protected = ProtectedPaths::default();
        for path in [
            ".codex-remote\u{200c}/runs/zz/run.json",
            "codex-remote.toml\u{200d}",
            "\u{feff}.git/config",
            ".g\u{200b}it/hooks/pre-commit",
            "sub/\u{202e}codex-remote.toml",
            ".git\u{2060}/config",
            "codex-remote.toml.",
            ".GIT /config",
            "\u{fe0f}.Codex-Remote/x",
        ] {
            assert!(protected.is_protected(path), "{}", path.escape_unicode());
        }
        // Visible differences still differ.
        assert!(!protected.is_protected("codex-remote.tom1"));
        assert!(!protected.is_protected(".codex-remotes/x"));
    }

    #[test]
    fn invisible_characters_case_and_trailing_dots_do_not_disguise_restricted_names() {
        let restricted = RestrictedFiles::default();
        for path in [
            "package\u{200c}.json",
            "web/Package.JSON",
            "package-lock.json.",
            "\u{feff}package.json",
            "a/package.json \u{200b}",
        ] {
            assert!(restricted.is_restricted(path), "{}", path.escape_unicode());
        }
        assert!(!restricted.is_restricted("package.json5"));
        assert!(!restricted.is_restricted("src/package.ts"));
    }

    #[test]
    fn bad_globs_are_reported_with_their_key() {
        let e = RestrictedFiles::from_config(&["a[".to_string()], "c.toml", "restricted.files")
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("restricted.files[0]"));
    }
}
