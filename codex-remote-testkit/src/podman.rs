//! A real podman container as a host: the image is built locally (no registry is reachable
//! here) by importing a near-empty root filesystem, and the container bind-mounts this machine's
//! `/usr`, `/lib`, `/lib64` and `/bin` read-only, with `--network host` so it reaches a scripted
//! model server on 127.0.0.1. Its PID 1 is `sleep infinity`, which never reaps orphans, and its
//! user is root with `$HOME` = `/`: the harsh host the container issue describes.
//!
//! Under CI (`CI=true`) a missing or unusable podman panics instead of skipping.

use std::path::Path;
use std::process::{Command, Stdio};

use codex_remote_core::config::Config;
use codex_remote_core::host::HostSpec;

/// The locally built test image.
pub const IMAGE: &str = "localhost/codex-remote-test:latest";

/// Read-only binds that give the container this machine's programs.
/// (`/etc/alternatives` too: Debian's `awk`, `editor` and the like are links through it.)
const SYSTEM_BINDS: [&str; 5] = ["/usr", "/lib", "/lib64", "/bin", "/etc/alternatives"];

/// A running container, removed on drop.
pub struct Podman {
    name: String,
}

fn podman(args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new("podman")
        .args(args)
        .stdin(Stdio::null())
        .output()
}

fn check(output: std::io::Result<std::process::Output>, what: &str) -> Result<(), String> {
    match output {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// `run_args` (for `podman run`) that make the locally built image usable: this machine's
/// programs read-only, host networking. `read_only` and `writable` bind more paths of this
/// machine at the same place in the container.
pub fn run_args(read_only: &[&Path], writable: &[&Path]) -> Vec<String> {
    let mut args = vec!["--network".to_string(), "host".to_string()];
    for path in SYSTEM_BINDS
        .iter()
        .map(Path::new)
        .filter(|p| p.exists())
        .chain(read_only.iter().copied())
    {
        args.push("-v".into());
        args.push(format!("{0}:{0}:ro", path.display()));
    }
    for path in writable {
        args.push("-v".into());
        args.push(format!("{0}:{0}", path.display()));
    }
    args
}

/// Builds [`IMAGE`] when it is missing: `podman import` of a root filesystem holding only empty
/// directories.
pub fn ensure_image() -> Result<(), String> {
    if podman(&["image", "exists", IMAGE]).is_ok_and(|o| o.status.success()) {
        return Ok(());
    }
    let root = tempfile::tempdir().map_err(|e| e.to_string())?;
    for dir in [
        "etc", "tmp", "root", "usr", "lib", "lib64", "bin", "proc", "sys", "dev", "run", "var/tmp",
    ] {
        std::fs::create_dir_all(root.path().join(dir)).map_err(|e| e.to_string())?;
    }
    // /etc/passwd so that tools asking for the user's name (git, ssh) find root.
    std::fs::write(
        root.path().join("etc/passwd"),
        "root:x:0:0:root:/:/bin/sh\n",
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(root.path().join("etc/group"), "root:x:0:\n").map_err(|e| e.to_string())?;
    let tarball = root.path().with_extension("tar");
    check(
        Command::new("tar")
            .arg("-C")
            .arg(root.path())
            .arg("-cf")
            .arg(&tarball)
            .arg(".")
            .output(),
        "tar of the test root filesystem",
    )?;
    let imported = podman(&["import", &tarball.display().to_string(), IMAGE]);
    let _ = std::fs::remove_file(&tarball);
    check(imported, "podman import")
}

impl Podman {
    /// Whether podman is installed and can run containers here.
    pub fn available() -> bool {
        podman(&["info", "--format", "{{.Host.OCIRuntime.Name}}"]).is_ok_and(|o| o.status.success())
    }

    /// Starts a container, or skips (`None`) when podman is not usable, except under CI.
    /// `read_only` paths of this machine are bound at the same place.
    pub fn start_or_skip(read_only: &[&Path]) -> Option<Podman> {
        Self::start_with_or_skip(read_only, &[])
    }

    /// [`Podman::start_or_skip`] with writable binds too.
    pub fn start_with_or_skip(read_only: &[&Path], writable: &[&Path]) -> Option<Podman> {
        if !Self::available() {
            if crate::in_ci() {
                panic!("podman is missing or unusable: CI must install it (see .ci/run)");
            }
            eprintln!("skipping: podman is not installed or cannot run containers");
            return None;
        }
        Some(
            Self::start(read_only, writable)
                .unwrap_or_else(|e| panic!("starting a container: {e}")),
        )
    }

    /// Starts a container from [`IMAGE`] whose PID 1 is `sleep infinity`.
    pub fn start(read_only: &[&Path], writable: &[&Path]) -> Result<Podman, String> {
        ensure_image()?;
        let name = crate::suite::unique("cr-test");
        let mut args = vec!["run", "-d", "--rm", "--name", &name];
        let binds = run_args(read_only, writable);
        args.extend(binds.iter().map(String::as_str));
        args.extend([IMAGE, "/bin/sleep", "infinity"]);
        check(podman(&args), "podman run")?;
        Ok(Podman { name })
    }

    /// The container's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `podman://NAME`.
    pub fn url(&self) -> String {
        format!("podman://{}", self.name)
    }

    /// The host, resolved as `--host podman://NAME` would be.
    pub fn host_spec(&self) -> HostSpec {
        Config::builtin()
            .host(Some(&self.url()))
            .expect("a podman URL resolves")
    }

    /// Runs `sh -c SCRIPT` in the container and returns its stdout (panics on failure).
    pub fn sh(&self, script: &str) -> String {
        let output = podman(&["exec", "-i", &self.name, "sh", "-c", script]).unwrap();
        assert!(
            output.status.success(),
            "`{script}` in {} failed: {}",
            self.name,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.name]);
    }
}
