//! Names that become paths: the one type every project name, task id and run id goes through
//! before it is joined into a local or remote path.
//!
//! A [`Name`] is 1 to [`Name::MAX_LEN`] ASCII characters from `A-Z a-z 0-9 . _ -`, starting with
//! a letter, a digit or `_` (so never `.`, `..`, a hidden directory such as `.codex-remote`, or
//! something a command could take for an option), and never containing `/`. Anything else is
//! refused with an error that says which name, where it came from and how to fix it.
//!
//! Where names enter: the task file's `project` and `id`, `--project`, task ids in
//! `task_plan.json`, run ids given on the command line and run records read from disk. A name
//! derived from the local directory (the default project name) is made valid with
//! [`Name::derive`] instead of being refused.

use std::fmt;

/// A validated name: safe as one path component, locally and on any host.
///
/// ```
/// use codex_remote_core::names::Name;
/// assert_eq!(Name::parse("my-app_2.0").unwrap().as_str(), "my-app_2.0");
/// for bad in ["", ".", "..", ".codex-remote", "../victim", "a/b", "-rf", "a b", "café"] {
///     assert!(Name::parse(bad).is_err(), "{bad}");
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Name(String);

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{}` is not a valid name: {reason}", .name.escape_debug())]
pub struct NameError {
    /// The refused text.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl NameError {
    /// The advice shown with every refused name.
    pub const HINT: &'static str =
        "use 1 to 128 letters, digits, `.`, `_` and `-`, starting with a letter, a digit or `_`";

    /// This error as located user input: `source_name` (a file, `<command line>`), `field`.
    pub fn input(&self, source_name: &str, field: &str) -> crate::input::InputError {
        crate::input::InputError::new(source_name, self.to_string())
            .field(field)
            .hint(Self::HINT)
    }
}

impl Name {
    /// The longest name accepted.
    pub const MAX_LEN: usize = 128;

    /// Validates `text` as a name.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let refuse = |reason| {
            Err(NameError {
                name: text.to_string(),
                reason,
            })
        };
        let Some(first) = text.chars().next() else {
            return refuse("it is empty");
        };
        if text.len() > Self::MAX_LEN {
            return refuse("it is longer than 128 characters");
        }
        if text.contains('/') {
            return refuse("it contains `/`");
        }
        if first == '.' {
            return refuse("it starts with `.`");
        }
        if first == '-' {
            return refuse("it starts with `-`");
        }
        if !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return refuse("only letters, digits, `.`, `_` and `-` are allowed");
        }
        Ok(Self(text.to_string()))
    }

    /// A valid name made from any text (a directory's name): characters outside the set become
    /// `-`, leading `.` and `-` are dropped, the length is capped; `fallback` when nothing is
    /// left.
    ///
    /// ```
    /// use codex_remote_core::names::Name;
    /// assert_eq!(Name::derive("my app", "project").as_str(), "my-app");
    /// assert_eq!(Name::derive(".codex-remote", "project").as_str(), "codex-remote");
    /// assert_eq!(Name::derive("..", "project").as_str(), "project");
    /// ```
    pub fn derive(text: &str, fallback: &str) -> Self {
        let mapped: String = text
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let trimmed: String = mapped
            .trim_start_matches(['.', '-'])
            .chars()
            .take(Self::MAX_LEN)
            .collect();
        Self::parse(&trimmed)
            .or_else(|_| Self::parse(fallback))
            .unwrap_or_else(|_| Self("project".into()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::path::Path> for Name {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&self.0)
    }
}

impl std::str::FromStr for Name {
    type Err = NameError;
    fn from_str(text: &str) -> Result<Self, NameError> {
        Self::parse(text)
    }
}

impl TryFrom<String> for Name {
    type Error = NameError;
    fn try_from(text: String) -> Result<Self, NameError> {
        Self::parse(&text)
    }
}

impl<'de> serde::Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused_with_a_reason() {
        for (bad, reason) in [
            ("", "empty"),
            (".", "starts with `.`"),
            ("..", "starts with `.`"),
            (".codex-remote", "starts with `.`"),
            ("../../../../escaped-run", "`/`"),
            ("../victim2", "`/`"),
            ("a/b", "`/`"),
            ("/abs", "`/`"),
            ("-rf", "starts with `-`"),
            ("a\nb", "only letters"),
            ("a\\b", "only letters"),
            ("tab\there", "only letters"),
            ("sp ace", "only letters"),
            ("ü", "only letters"),
        ] {
            let e = Name::parse(bad).unwrap_err();
            assert!(e.reason.contains(reason), "{bad:?}: {}", e.reason);
        }
        let long = "a".repeat(129);
        assert!(Name::parse(&long).is_err());
        assert!(Name::parse(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn ordinary_names_pass_and_round_trip_through_serde() {
        for good in ["app", "my-app", "v1.2_fix", "_x", "9lives", "a..b"] {
            let name = Name::parse(good).unwrap();
            let json = serde_json::to_string(&name).unwrap();
            assert_eq!(serde_json::from_str::<Name>(&json).unwrap(), name);
        }
        assert!(serde_json::from_str::<Name>("\"../x\"").is_err());
    }

    #[test]
    fn derived_names_are_always_valid() {
        for text in [
            "",
            ".",
            "..",
            "...",
            "---",
            "a b/c",
            ".hidden",
            "ünï",
            &"x".repeat(300),
        ] {
            let name = Name::derive(text, "project");
            assert!(Name::parse(&name).is_ok(), "{text:?} -> {name}");
        }
    }
}
