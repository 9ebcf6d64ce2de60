//! The prerequisite check against a fake host: one probe, then the cache; a host without codex
//! or without a way to authenticate is an exit-4 error before anything else runs.

use codex_remote_core::prerequisites::{ensure, CodexAuth, PrerequisiteCache};
use codex_remote_core::transport::script_names::PREREQUISITE_PROBE;
use codex_remote_core::transport::Transport;
use codex_remote_core::ErrorKind;
use codex_remote_testkit::{FakeOutput, FakeTransport};

#[tokio::test]
async fn one_probe_then_the_cache_answers() {
    let host = FakeTransport::default();
    let project = tempfile::tempdir().unwrap();
    let cache = PrerequisiteCache::new(project.path());
    let known = ensure(&host, &cache).await.unwrap();
    assert!(matches!(known.auth, CodexAuth::Login { .. }), "{known:?}");
    assert_eq!(host.log().len(), 1, "{:?}", host.log());
    assert!(
        host.log()[0].shell_init,
        "the probe runs after the shell init"
    );
    assert_eq!(ensure(&host, &cache).await.unwrap(), known);
    assert_eq!(host.log().len(), 1, "the second check asked the host again");
}

#[tokio::test]
async fn a_host_without_codex_or_login_fails_and_is_not_remembered() {
    let host = FakeTransport::default();
    let project = tempfile::tempdir().unwrap();
    let cache = PrerequisiteCache::new(project.path());
    let answer = std::sync::Arc::new(std::sync::Mutex::new(
        "version 127 sh: 1: codex: not found\n".to_string(),
    ));
    let said = answer.clone();
    host.on_script(PREREQUISITE_PROBE, move |_, _, _| {
        FakeOutput::ok(said.lock().unwrap().clone())
    });
    let err = ensure(&host, &cache).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Prerequisite);
    assert!(
        err.to_string().contains("codex was not found on `fake`"),
        "{err}"
    );
    // The fix names the exact install command of the supported version.
    assert!(
        err.hint()
            .unwrap()
            .contains("with `npm install -g @openai/codex@0.169.0`"),
        "{err}"
    );

    *answer.lock().unwrap() =
        "version 0 codex-cli 0.169.0\nlogin 1 Not logged in\nenv HOME\nenv OPENAI_API_KEY\n".into();
    let err = ensure(&host, &cache).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Prerequisite);
    assert!(
        err.to_string()
            .contains("codex cannot authenticate on `fake`"),
        "{err}"
    );
    // The fix is the error's hint, apart from its message.
    assert!(
        err.hint().unwrap().contains("codex login --with-api-key"),
        "{err}"
    );
    assert_eq!(cache.recall(host.host()), None);

    *answer.lock().unwrap() =
        "version 0 codex-cli 0.169.0\nlogin 1 Not logged in\nenv CODEX_API_KEY\n".into();
    let known = ensure(&host, &cache).await.unwrap();
    assert_eq!(known.auth.describe(), "API key in $CODEX_API_KEY");
    assert_eq!(cache.recall(host.host()), Some(known));
}

#[tokio::test]
async fn a_probe_cut_short_by_the_shell_init_is_a_prerequisite_failure() {
    let host = FakeTransport::default();
    host.on_script(PREREQUISITE_PROBE, |_, _, _| {
        FakeOutput::fail(1, "sh: 1: source: ~/.nvm/nvm.sh: not found\n")
    });
    let cache = PrerequisiteCache::new(tempfile::tempdir().unwrap().path());
    let err = ensure(&host, &cache).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Prerequisite);
    let message = err.to_string();
    assert!(message.contains("nvm.sh: not found"), "{message}");
    assert!(
        err.hint()
            .unwrap()
            .contains("check `shell_init` under [hosts.fake]"),
        "{message}"
    );
}

/// doctor on a host without codex: the install command of the supported version, and the
/// authentication check shown as skipped (neither passed nor failed, no fix of its own).
#[tokio::test]
async fn doctor_without_codex_names_the_install_command_and_skips_the_auth_check() {
    use codex_remote_core::doctor::{diagnose, CheckStatus};
    let host = FakeTransport::default();
    host.on_script(PREREQUISITE_PROBE, |_, _, _| {
        FakeOutput::ok("version 127 sh: 3: codex: not found\n")
    });
    let checks = diagnose(&host).await;
    let check = |name: &str| {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no check {name}: {checks:?}"))
            .clone()
    };
    let found = check("codex found");
    assert_eq!((found.ok, found.status), (false, CheckStatus::Fail));
    assert!(
        found
            .fix
            .as_deref()
            .unwrap()
            .starts_with("install it on `fake` with `npm install -g @openai/codex@0.169.0`"),
        "{found:?}"
    );
    let auth = check("codex authenticated");
    assert_eq!((auth.ok, auth.status), (false, CheckStatus::Skipped));
    assert_eq!(auth.detail, "skipped: codex not found");
    assert_eq!(auth.fix, None);
    let json = serde_json::to_value(&auth).unwrap();
    assert_eq!(json["status"], "skipped");
    assert_eq!(json["ok"], false);
    assert_eq!(serde_json::to_value(&found).unwrap()["status"], "fail");
    assert_eq!(
        serde_json::to_value(check("ssh reachable")).unwrap()["status"],
        "pass"
    );
}
