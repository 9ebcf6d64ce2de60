//! `init` keeps the project quiet in git: `.codex-remote/` goes into `.gitignore`.

mod common;

use common::{stderr, stdout, Env};

#[test]
fn init_ignores_the_records_directory_once_keeping_the_gitignore_bytes() {
    let env = Env::new();
    std::fs::remove_file(env.project.join("codex-remote.toml")).unwrap();
    env.write(".gitignore", "node_modules/\n# build\ndist");
    let out = env.run(&["init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("added .codex-remote/ to "),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::read_to_string(env.project.join(".gitignore")).unwrap(),
        "node_modules/\n# build\ndist\n.codex-remote/\n"
    );

    // A project that ignores it already (in any spelling) is left alone; none is created.
    let other = Env::new();
    std::fs::remove_file(other.project.join("codex-remote.toml")).unwrap();
    other.write(".gitignore", "/.codex-remote\n");
    let out = other.run(&["init", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["gitignore"].is_null(), "{v}");
    assert_eq!(
        std::fs::read_to_string(other.project.join(".gitignore")).unwrap(),
        "/.codex-remote\n"
    );
    let fresh = Env::new();
    std::fs::remove_file(fresh.project.join("codex-remote.toml")).unwrap();
    assert!(fresh.run(&["init"]).status.success());
    assert_eq!(
        std::fs::read_to_string(fresh.project.join(".gitignore")).unwrap(),
        ".codex-remote/\n"
    );
    // `init --user` writes no .gitignore anywhere.
    let user = Env::new();
    assert!(user.run(&["init", "--user"]).status.success());
    assert!(!user.project.join(".gitignore").exists());
}

#[test]
fn init_user_ignores_a_relative_xdg_config_home() {
    for relative in ["relconf", "~/.config"] {
        let env = Env::new().var("XDG_CONFIG_HOME", relative);
        let out = env.run(&["init", "--user"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(env
            .home
            .path()
            .join(".config/codex-remote/config.toml")
            .is_file());
        // Nothing under the working directory named after the relative value.
        let first = relative.split('/').next().unwrap();
        assert!(!env.project.join(first).exists(), "{relative}");
    }
}
