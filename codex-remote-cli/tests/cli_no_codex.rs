//! A machine without Codex on its PATH (`--host local`): `doctor` and `run` say how to install
//! the supported version, offer the demo's copy when it works, show the authentication check as
//! skipped, and `run` pushes nothing and says so.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{stderr, stdout, Env};

/// This machine's PATH without any directory holding a `codex`.
fn path_without_codex() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|dir| !dir.join("codex").exists())
        .map(|dir| dir.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// An environment whose PATH has no codex, and whose cache holds the demo's copy when
/// `cached` (a stand-in answering `--version` as the pinned Codex does).
fn env_without_codex(cached: bool) -> Env {
    let env = Env::new();
    let cache = env.home.path().join("cache");
    if cached {
        let bin = cache.join("codex-remote/codex-0.169.0/node_modules/.bin");
        std::fs::create_dir_all(&bin).unwrap();
        let codex = bin.join("codex");
        std::fs::write(&codex, "#!/bin/sh\necho 'codex-cli 0.169.0'\n").unwrap();
        std::fs::set_permissions(&codex, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let cache = cache.display().to_string();
    env.var("PATH", path_without_codex())
        .var("XDG_CACHE_HOME", cache)
}

fn check(doctor: &serde_json::Value, name: &str) -> serde_json::Value {
    doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no check {name}: {doctor}"))
}

#[test]
fn doctor_names_the_install_command_and_skips_the_auth_check() {
    let env = env_without_codex(false);
    let out = env.run(&["doctor", "--host", "local", "--json"]);
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let found = check(&v, "codex found");
    assert_eq!(
        (&found["ok"], &found["status"]),
        (&false.into(), &"fail".into())
    );
    let fix = found["fix"].as_str().unwrap();
    assert!(
        fix.starts_with("install it on `local` with `npm install -g @openai/codex@0.169.0`"),
        "{fix}"
    );
    // No demo copy in the cache: nothing offered about it.
    assert!(!fix.contains("demo"), "{fix}");
    let auth = check(&v, "codex authenticated");
    assert_eq!(auth["status"], "skipped", "{auth}");
    assert_eq!(auth["ok"], false, "{auth}");
    assert_eq!(auth["fix"], serde_json::Value::Null, "{auth}");
    assert_eq!(check(&v, "host reachable")["status"], "pass");

    let text = stdout(&env.run(&["doctor", "--host", "local"]));
    assert!(
        text.lines().any(|l| l.starts_with("FAIL codex found")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("skip codex authenticated")
                && l.ends_with("skipped: codex not found")),
        "{text}"
    );
    assert!(
        text.contains(
            "     fix: install it on `local` with `npm install -g @openai/codex@0.169.0`"
        ),
        "{text}"
    );
}

#[test]
fn doctor_offers_the_demo_s_codex_and_its_line_works() {
    let env = env_without_codex(true);
    let out = env.run(&["doctor", "--host", "local", "--json"]);
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fix = check(&v, "codex found")["fix"]
        .as_str()
        .unwrap()
        .to_string();
    let bin = env
        .home
        .path()
        .join("cache/codex-remote/codex-0.169.0/node_modules/.bin");
    let line = format!("shell_init = 'export PATH=\"{}:$PATH\"'", bin.display());
    assert!(
        fix.contains(&format!(
            "; or the demo's Codex 0.169.0 works here: put it on PATH with `{line}` under [hosts.local]"
        )),
        "{fix}"
    );
    // The line, as given, makes the check pass.
    let config = env.home.path().join(".config/codex-remote/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, format!("[hosts.local]\n{line}\n")).unwrap();
    let out = env.run(&["doctor", "--host", "local", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(check(&v, "codex found")["status"], "pass", "{v}");
    assert_eq!(
        check(&v, "codex found")["detail"],
        "codex-cli 0.169.0",
        "{v}"
    );
}

#[test]
fn run_without_codex_pushes_nothing_says_so_and_gives_the_same_fix() {
    let env = env_without_codex(true);
    env.write("notes.txt", "notes\n");
    let out = env.run(&[
        "run",
        "--host",
        "local",
        "--prompt",
        "Fix it",
        "--type",
        "quick-fix",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "project to push once the host's checks pass: {} (",
            env.project.display()
        )),
        "{err}"
    );
    assert!(!err.contains("project to push:"), "{err}");
    assert!(err.contains("codex was not found on `local`"), "{err}");
    assert!(
        err.contains("hint: install it on `local` with `npm install -g @openai/codex@0.169.0`"),
        "{err}"
    );
    assert!(
        err.contains(
            "; or the demo's Codex 0.169.0 works here: put it on PATH with `shell_init = "
        ),
        "{err}"
    );
    // Nothing was pushed and no run was recorded.
    let workspace = env.home.path().join(".local/share/codex-remote/workspace");
    assert!(!workspace.join("myapp").exists(), "something was pushed");
    assert!(!env.project.join(".codex-remote/runs").exists());
    assert!(!Path::new(&workspace).join("myapp/notes.txt").exists());

    // The same error in --json carries the same fix as its hint.
    let out = env.run(&[
        "run",
        "--json",
        "--host",
        "local",
        "--prompt",
        "Fix it",
        "--type",
        "quick-fix",
    ]);
    assert_eq!(out.status.code(), Some(4));
    let text = stdout(&out);
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["error"]["kind"], "prerequisite", "{last}");
    assert!(
        last["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("npm install -g @openai/codex@0.169.0"),
        "{last}"
    );
}
