//! A real OpenSSH server on 127.0.0.1 for tests: a free port, throwaway host and user keys, its
//! own `known_hosts` and client config. Its config and log are printed when a test using it
//! fails. Debian's `openssh-server` provides `/usr/sbin/sshd`; CI installs it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use codex_remote_core::config::{Config, ConfigFile};
use codex_remote_core::host::HostSpec;
use codex_remote_core::transport::ssh::SshOptions;

/// Where Debian installs sshd.
pub const SSHD: &str = "/usr/sbin/sshd";
/// The ssh config alias the fixture defines.
pub const ALIAS: &str = "testhost";

/// A running sshd. Stopped on drop.
pub struct Sshd {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
    user: String,
    log: Arc<Mutex<String>>,
}

/// How to start the server.
#[derive(Debug, Clone, Default)]
pub struct SshdOptions {
    /// Log in as this user (default: the current user). The user must exist.
    pub user: Option<String>,
    /// Let bash source the user's `~/.bashrc` for ssh commands, as a real host does. Off by
    /// default: the fixture then sets `SHLVL=1` for sessions, which makes bash skip it, so a
    /// developer's own heavy rc (pyenv, nvm) neither slows the tests nor serialises them on its
    /// locks. Benchmarks that measure the rc's cost turn it on.
    pub source_bashrc: bool,
}

impl Sshd {
    /// Starts a server, or returns `None` (with a note on stderr) when sshd is not installed.
    /// Under CI (`CI=true`) a missing sshd panics instead: CI must test the real thing.
    pub fn start_or_skip() -> Option<Sshd> {
        Self::start_with_or_skip(SshdOptions::default())
    }

    /// [`Sshd::start_or_skip`] with options.
    pub fn start_with_or_skip(options: SshdOptions) -> Option<Sshd> {
        if !Path::new(SSHD).exists() {
            if crate::in_ci() {
                panic!("{SSHD} is missing: CI must install openssh-server (see .ci/run)");
            }
            eprintln!("skipping: {SSHD} is not installed (apt-get install openssh-server)");
            return None;
        }
        Some(Self::start(options).unwrap_or_else(|e| panic!("cannot start sshd: {e}")))
    }

    /// Starts a server.
    pub fn start(options: SshdOptions) -> std::io::Result<Sshd> {
        let user = match options.user {
            Some(user) => user,
            None => current_user()?,
        };
        let mut last_error = None;
        // A port found free can be taken before sshd binds it; try a few.
        for _ in 0..5 {
            match Self::try_start(&user, options.source_bashrc) {
                Ok(sshd) => return Ok(sshd),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    fn try_start(user: &str, source_bashrc: bool) -> std::io::Result<Sshd> {
        let dir = tempfile::Builder::new()
            .prefix("codex-remote-sshd")
            .tempdir()?;
        // Readable by the login user: sshd reads authorized_keys with the user's rights.
        set_mode(dir.path(), 0o755)?;
        std::fs::create_dir_all("/run/sshd").ok();
        keygen(&dir.path().join("host_key"))?;
        keygen(&dir.path().join("id_ed25519"))?;
        std::fs::copy(
            dir.path().join("id_ed25519.pub"),
            dir.path().join("authorized_keys"),
        )?;
        set_mode(&dir.path().join("authorized_keys"), 0o644)?;
        let port = free_port()?;
        let d = dir.path().display();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PidFile {d}/sshd.pid\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nMaxSessions 64\nMaxStartups 64:30:128\nPermitRootLogin prohibit-password\n\
             AllowUsers {user}\nSubsystem sftp internal-sftp\nLogLevel INFO\n{}",
            if source_bashrc { "" } else { "SetEnv SHLVL=1\n" }
        );
        std::fs::write(dir.path().join("sshd_config"), config)?;
        let host_pub = std::fs::read_to_string(dir.path().join("host_key.pub"))?;
        let key_fields: Vec<&str> = host_pub.split_whitespace().take(2).collect();
        std::fs::write(
            dir.path().join("known_hosts"),
            format!("[127.0.0.1]:{port} {}\n", key_fields.join(" ")),
        )?;
        std::fs::write(
            dir.path().join("ssh_config"),
            format!(
                "Host {ALIAS}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {d}/id_ed25519\n  \
                 IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n  GlobalKnownHostsFile /dev/null\n  \
                 StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n"
            ),
        )?;
        let mut child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(dir.path().join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        // Ready when sshd says it listens (an event, not a sleep); its log is kept for failures.
        let stderr = child.stderr.take().expect("piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let log_writer = log.clone();
        std::thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("Server listening on") {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(());
                    }
                }
                log_writer.lock().unwrap().push_str(&line);
                log_writer.lock().unwrap().push('\n');
            }
        });
        match ready_rx.recv_timeout(std::time::Duration::from_secs(20)) {
            Ok(()) => Ok(Sshd {
                dir,
                child,
                port,
                user: user.to_string(),
                log,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(std::io::Error::other(format!(
                    "sshd did not start: {}",
                    log.lock().unwrap()
                )))
            }
        }
    }

    /// The port it listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The login user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The client config file defining the [`ALIAS`] host.
    pub fn ssh_config(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }

    /// The fixture's directory (keys, configs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Transport options pointing at the fixture's client config.
    pub fn ssh_options(&self) -> SshOptions {
        SshOptions {
            config_file: Some(self.ssh_config()),
            ..SshOptions::default()
        }
    }

    /// A host spec for the fixture, from the config text given (may be empty), e.g.
    /// `"[hosts.testhost]\nshell_init = \"...\"\n"`.
    pub fn host_spec(&self, config_toml: &str) -> HostSpec {
        let file = ConfigFile::parse(config_toml, "<test config>").expect("valid test config");
        Config::from_files([file])
            .expect("valid")
            .host(Some(ALIAS))
            .expect("valid host")
    }

    /// A plain `ssh` command to the fixture (`ssh -F config testhost`), for comparisons.
    pub fn ssh_command(&self) -> Command {
        let mut command = Command::new("ssh");
        command.arg("-F").arg(self.ssh_config()).arg(ALIAS);
        command
    }

    /// Writes an extra file into the fixture directory (e.g. a shell init script).
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        let mut file = std::fs::File::create(&path).expect("write fixture file");
        file.write_all(contents.as_bytes())
            .expect("write fixture file");
        set_mode(&path, 0o755).expect("chmod fixture file");
        path
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let config =
                std::fs::read_to_string(self.dir.path().join("sshd_config")).unwrap_or_default();
            eprintln!(
                "--- sshd_config ---\n{config}--- sshd log ---\n{}",
                self.log()
            );
        }
    }
}

/// Creates `user` (a login shell of bash, account unlocked for key logins) if missing and writes
/// its `~/.bashrc`. Needs root; false when that is not possible. For benchmarks that must not
/// measure the developer's own rc files.
pub fn ensure_user(user: &str, bashrc: &str) -> bool {
    let exists = Command::new("id")
        .arg(user)
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        let created = Command::new("useradd")
            .args(["-m", "-s", "/bin/bash", user])
            .status()
            .is_ok_and(|s| s.success());
        if !created {
            return false;
        }
        // useradd leaves the account locked; sshd refuses locked accounts even for keys.
        let _ = Command::new("usermod").args(["-p", "*", user]).status();
    }
    std::fs::write(format!("/home/{user}/.bashrc"), bashrc).is_ok()
}

fn current_user() -> std::io::Result<String> {
    let out = Command::new("id").arg("-un").output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn keygen(path: &Path) -> std::io::Result<()> {
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "codex-remote-test",
            "-f",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "ssh-keygen failed for {}",
            path.display()
        )))
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}
