//! Property tests for the one shell-quoting module: whatever the string, a real POSIX shell
//! (dash, and bash as the usual login shell) reads back exactly the bytes we quoted.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use codex_remote_core::shell::{command_script, quote, quote_path, ScriptParts};
use proptest::prelude::*;

/// Runs `script` in `shell`, fed on stdin so its size is not bounded by argv limits.
fn run_shell(shell: &str, script: &str) -> Vec<u8> {
    let mut child = Command::new(shell)
        .arg("-s")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let script = script.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(script.as_bytes()).unwrap());
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        output.status.success(),
        "{shell} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn round_trip(shell: &str, words: &[String]) -> Vec<String> {
    let mut script = String::from("printf '%s\\0'");
    for word in words {
        script.push(' ');
        script.push_str(&quote(word));
    }
    script.push('\n');
    let out = run_shell(shell, &script);
    let mut parts: Vec<String> = out
        .split(|b| *b == 0)
        .map(|p| String::from_utf8(p.to_vec()).unwrap())
        .collect();
    assert_eq!(parts.pop().as_deref(), Some(""));
    parts
}

/// Characters that matter to shells, plus some unicode, weighted so they appear often.
fn hostile_string() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "'", "\"", "\\", "$", "`", "$(", ")", "${", "}", ";", "&&", "||", "|", "&", "\n", "\r",
        "\t", " ", "*", "?", "[", "]", "~", "-", "--", "!", "#", "<", ">", "%", "=", "a", "Z", "0",
        "é", "日本", "🚀", "\u{1e}", "\u{7f}",
    ]);
    prop::collection::vec(
        prop_oneof![pieces.prop_map(str::to_string), "[^\u{0}]{0,4}"],
        0..24,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_words_survive_dash(words in prop::collection::vec(hostile_string(), 1..6)) {
        prop_assert_eq!(round_trip("sh", &words), words);
    }

    #[test]
    fn any_words_survive_bash(words in prop::collection::vec(hostile_string(), 1..6)) {
        prop_assert_eq!(round_trip("bash", &words), words);
    }

    #[test]
    fn whole_command_scripts_survive(program_arg in hostile_string(), value in hostile_string(), dir_name in "[^\u{0}/]{1,12}".prop_filter("not . or ..", |d| d != "." && d != "..")) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(&dir_name);
        std::fs::create_dir_all(&dir).unwrap();
        let env = BTreeMap::from([("CODEX_REMOTE_VALUE".to_string(), value.clone())]);
        let args = vec!["-c".to_string(), "printf '%s\\0%s\\0%s\\0' \"$1\" \"$CODEX_REMOTE_VALUE\" \"$PWD\"".to_string(), "sh".to_string(), program_arg.clone()];
        let dir_text = dir.to_str().unwrap().to_string();
        let script = command_script(&ScriptParts {
            program: "sh", args: &args, env: &env, cwd: Some(&dir_text), shell_init: Some("# init"), announce_pid: false,
        }).unwrap();
        let out = run_shell("bash", &script);
        let parts: Vec<&[u8]> = out.split(|b| *b == 0).collect();
        prop_assert_eq!(parts[0], program_arg.as_bytes());
        prop_assert_eq!(parts[1], value.as_bytes());
        prop_assert_eq!(parts[2], dir_text.as_bytes());
    }
}

#[test]
fn a_mebibyte_of_hostile_text_survives() {
    let unit = "'\"$(touch /tmp/pwned)`x`;&&|\n\\~*?ü🚀";
    let text: String = unit.chars().cycle().take(1 << 20).collect();
    assert!(text.len() >= 1 << 20);
    assert_eq!(round_trip("sh", std::slice::from_ref(&text)), vec![text]);
}

#[test]
fn injection_payload_creates_nothing() {
    let marker = tempfile::tempdir().unwrap().path().join("pwned");
    let payload = format!("'; touch {}; '", marker.display());
    assert_eq!(
        round_trip("sh", std::slice::from_ref(&payload)),
        vec![payload.clone()]
    );
    assert_eq!(
        round_trip("bash", std::slice::from_ref(&payload)),
        vec![payload]
    );
    assert!(!marker.exists());
}

#[test]
fn tilde_paths_expand_only_at_the_start() {
    let home = std::env::var("HOME").unwrap();
    let out = run_shell(
        "sh",
        &format!(
            "printf '%s\\0' {} {}\n",
            quote_path("~/a b"),
            quote_path("x/~/y")
        ),
    );
    assert_eq!(out, format!("{home}/a b\0x/~/y\0").into_bytes());
}
