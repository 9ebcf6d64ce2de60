//! The fixed host-side scripts of the agent's life: launch, supervise (with usage-limit parking
//! and resume), follow, probe and cancel. Constant text; data arrives as positional arguments.

use crate::transport::CommandSpec;

/// Starts the supervisor detached (systemd-run --user where the user manager runs, so that
/// logind's KillUserProcesses does not end it at logout; else setsid nohup). The supervisor
/// ([`SUPERVISE_SCRIPT`]) marks its environment with the attempt's random marker (inherited by
/// the agent and everything it starts, whatever process group or session they move to, so
/// `cancel` can find them all). Args: agent dir, agent script, resume script, resume-at script,
/// max wait (s), thread to resume first (or empty), its prompt, the prompt after a usage limit,
/// the supervisor's own script, the sandbox mode, then the names of the environment variables
/// the agent inherits from this command (their values are in its environment, never in an
/// argument); stdin: the instruction. Prints the supervisor's pid.
pub(super) const LAUNCH_SCRIPT: &str = r#"set -e
dir=$1; script=$2; resume=$3; at_script=$4; max_wait=$5; first=$6; prompt=$7; limit_prompt=$8; supervise=$9; sandbox=${10}; shift 10
mkdir -p -- "$dir"
if ! err=$(mkdir -- "$dir/launched" 2>&1); then
  [ -d "$dir/launched" ] || { printf '%s\n' "$err" >&2; exit 1; }
  echo "codex-remote: this run's agent was already launched; attach to it instead" >&2; exit 75
fi
cat > "$dir/instruction"
: > "$dir/events.jsonl"
od -An -N12 -tx1 /dev/urandom | tr -d ' \n' > "$dir/marker"
# The agent script runs in the login shell, like every ssh command: the user's shell_init is
# written for it (`source` is not POSIX).
shell=${SHELL:-/bin/sh}
if command -v systemd-run >/dev/null 2>&1 && systemctl --user is-system-running >/dev/null 2>&1; then
  unit="codex-remote-$(date +%s)-$$"
  printf '%s\n' "$unit" > "$dir/unit"
  # The user manager does not inherit this environment: hand over each variable by name
  # (systemd-run takes the value from its own environment, so no value is on its command line).
  n=$#; for name do set -- "$@" "--setenv=$name"; done; shift "$n"
  systemd-run --user --quiet --collect --unit="$unit" "$@" sh -c "$supervise" supervise "$dir" "$script" "$resume" "$at_script" "$shell" "$max_wait" "$first" "$prompt" "$limit_prompt" "$sandbox"
else
  setsid nohup sh -c "$supervise" supervise "$dir" "$script" "$resume" "$at_script" "$shell" "$max_wait" "$first" "$prompt" "$limit_prompt" "$sandbox" >/dev/null 2>&1 < /dev/null &
fi
i=0
while [ ! -s "$dir/pid" ] && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
cat "$dir/pid"
"#;

/// The host-side supervisor: records its pid, runs the agent (or resumes the thread `$7`), and
/// while the agent ends at a usage limit, parks: works out when the limit resets (the resume-at
/// script), appends a `codex-remote.parked` line to the event log, sleeps until then and
/// resumes the same thread with `codex exec resume` (a `codex-remote.resumed` line) — all on
/// the host, with no client connected. A reset past `max_wait` (counted from the first park)
/// appends `codex-remote.gave_up` instead. A Codex that was killed or crashed mid-thread is
/// resumed the same way (at most twice; its leftover processes ended first). Finally records
/// Codex's exit status.
pub(super) const SUPERVISE_SCRIPT: &str = r#"dir=$1; script=$2; resume=$3; at_script=$4; shell=$5; max_wait=$6; thread=$7; prompt=$8; limit_prompt=$9; sandbox=${10}
cat /proc/sys/kernel/random/boot_id > "$dir/boot_id" 2>/dev/null || rm -f "$dir/boot_id"
echo $$ > "$dir/pid.tmp"; mv -f "$dir/pid.tmp" "$dir/pid"
# The attempt's marker, inherited by Codex and everything it starts (see CANCEL_SCRIPT).
CODEX_REMOTE_AGENT=$(cat "$dir/marker"); export CODEX_REMOTE_AGENT
log=$dir/events.jsonl
valid_thread() { case $1 in ''|*[!A-Za-z0-9-]*) return 1 ;; esac; }
# Resumes thread $1 with the prompt $2, then checks in the thread's session file that every turn
# ran under the run's sandbox (exit status 97 and a policy_changed line otherwise).
resume_thread() {
  start=$(wc -c < "$log")
  printf '%s\n' "$2" | "$shell" -c "$resume" sh "$1" - >> "$log" 2>> "$dir/stderr.log"
  rc=$?
  seen=$(CODEX_REMOTE_THREAD=$1 CODEX_REMOTE_SANDBOXES=1 "$shell" -c "$at_script" 2>> "$dir/stderr.log" | sed -n 's/^codex-remote-sandboxes: //p' | tail -n 1)
  case $seen in
    ''|"$sandbox") ;;
    *[!a-z,-]*) rc=97 ;;
    *) printf '{"type":"codex-remote.policy_changed","expected":"%s","seen":"%s"}\n' "$sandbox" "$seen" >> "$log"; rc=97 ;;
  esac
}
start=$(wc -c < "$log")
if valid_thread "$thread"; then
  printf '{"type":"codex-remote.resumed","thread_id":"%s","reason":"interrupted"}\n' "$thread" >> "$log"
  resume_thread "$thread" "$prompt"
else
  "$shell" -c "$script" < "$dir/instruction" >> "$log" 2>> "$dir/stderr.log"
  rc=$?
fi
parked=; crashes=0
while [ "$rc" -ne 0 ] && [ "$rc" -ne 97 ]; do
  thread=$(sed -n 's/^{"type":"thread.started","thread_id":"\([A-Za-z0-9-]*\)"}$/\1/p' "$log" | head -n 1)
  valid_thread "$thread" || break
  # Codex killed (OOM killer, a signal) or crashed (a Rust panic exits 101): what it left
  # running goes, then the same thread resumes; at most twice.
  if [ "$rc" -gt 128 ] || [ "$rc" -eq 101 ]; then
    crashes=$((crashes + 1)); [ "$crashes" -le 2 ] || break
    others=$(ps -eo pid=,pgid= 2>/dev/null | awk -v g="$$" '$2 == g && $1 != g { print $1 }')
    for p in $others; do kill -s KILL "$p" 2>/dev/null; done
    printf '{"type":"codex-remote.resumed","thread_id":"%s","reason":"interrupted"}\n' "$thread" >> "$log"
    resume_thread "$thread" "$prompt"
    continue
  fi
  # Only a usage limit parks: the last turn.failed of this attempt says so.
  tail -c +"$((start + 1))" "$log" | grep '^{"type":"turn.failed"' | tail -n 1 | grep -qi 'usage.limit' || break
  now=$(date +%s)
  [ -n "$parked" ] || parked=$now
  out=$(CODEX_REMOTE_LOG=$log CODEX_REMOTE_FROM=$start CODEX_REMOTE_THREAD=$thread "$shell" -c "$at_script" 2>> "$dir/stderr.log" | sed -n 's/^codex-remote-resume-at: //p' | tail -n 1)
  at=${out%% *}; source=${out#* }
  case $at in ''|*[!0-9]*) at=$((now + 600)); source=fallback ;; esac
  case $source in session|message|fallback) ;; *) source=fallback ;; esac
  # Never a hot loop of resumes against a limit that has not reset yet.
  [ "$at" -ge $((now + 2)) ] || at=$((now + 2))
  if [ "$at" -gt $((parked + max_wait)) ]; then
    printf '{"type":"codex-remote.gave_up","resume_at":%s,"max_wait_secs":%s}\n' "$at" "$max_wait" >> "$log"
    break
  fi
  printf '%s %s\n' "$at" "$thread" > "$dir/waiting.tmp"; mv -f "$dir/waiting.tmp" "$dir/waiting"
  printf '{"type":"codex-remote.parked","thread_id":"%s","resume_at":%s,"source":"%s"}\n' "$thread" "$at" "$source" >> "$log"
  while now=$(date +%s); [ "$now" -lt "$at" ]; do
    left=$((at - now)); [ "$left" -gt 60 ] && left=60
    sleep "$left"
  done
  rm -f "$dir/waiting"
  printf '{"type":"codex-remote.resumed","thread_id":"%s","reason":"usage-limit"}\n' "$thread" >> "$log"
  resume_thread "$thread" "$limit_prompt"
done
echo "$rc" > "$dir/status.tmp"; mv -f "$dir/status.tmp" "$dir/status"
"#;

/// Works out when a usage limit resets; prints `codex-remote-resume-at: EPOCH SOURCE` (with
/// `CODEX_REMOTE_SANDBOXES` set instead: `codex-remote-sandboxes: ` and the sandbox modes the
/// thread's turns ran under, comma-separated; nothing when its session file is not found). The
/// prefix tells the answer from whatever the user's shell init prints. Runs in the user's shell after
/// the shell init and the host's environment (for `CODEX_HOME`), with the event log, the byte
/// where the failed attempt began and the thread in `CODEX_REMOTE_LOG`, `CODEX_REMOTE_FROM`
/// and `CODEX_REMOTE_THREAD`. The rule (docs/cli.md, "Usage limits"): (1) the rate-limit
/// snapshot Codex recorded in the thread's session file (`token_count.rate_limits`): the latest
/// `resets_at` of a window at 100 %, if still ahead; (2) the time in Codex's message ("try again
/// at 9:01 AM" / "at Sep 15th, 2026 7:59 PM", host's time zone, GNU or busybox `date -d`), plus
/// one minute as Codex shows only the minute, a bare time already past meaning tomorrow;
/// (3) ten minutes from now.
pub(super) const RESUME_AT_SCRIPT: &str = r#"now=$(date +%s)
home=${CODEX_HOME:-$HOME/.codex}
file=$(find "$home/sessions" -type f -name "rollout-*-$CODEX_REMOTE_THREAD.jsonl" 2>/dev/null | head -n 1)
if [ -n "$CODEX_REMOTE_SANDBOXES" ]; then
  # The other question: the sandbox modes the thread's turns ran under, comma-separated.
  [ -n "$file" ] || exit 0
  printf 'codex-remote-sandboxes: %s\n' "$(grep '"type":"turn_context"' "$file" \
    | sed -n 's/.*"sandbox_policy":{"type":"\([a-z-]*\)".*/\1/p' | sort -u | paste -s -d , -)"
  exit 0
fi
if [ -n "$file" ]; then
  at=$(grep '"type":"token_count"' "$file" | grep '"rate_limits"' | tail -n 1 | awk '{
    n = split($0, parts, "{"); best = 0
    for (i = 1; i <= n; i++) {
      p = parts[i]
      if (!match(p, /"used_percent":[0-9.]+/)) continue
      u = substr(p, RSTART + 15, RLENGTH - 15) + 0
      if (!match(p, /"resets_at":[0-9]+/)) continue
      r = substr(p, RSTART + 12, RLENGTH - 12) + 0
      if (u >= 100 && r > best) best = r
    }
    if (best > 0) printf "%d\n", best
  }')
  case $at in ''|*[!0-9]*) ;; *) if [ "$at" -gt "$now" ]; then echo "codex-remote-resume-at: $at session"; exit 0; fi ;; esac
fi
when=$(tail -c +"$((CODEX_REMOTE_FROM + 1))" "$CODEX_REMOTE_LOG" | grep '^{"type":"turn.failed"' | tail -n 1 \
  | sed -n 's/.*try again at \([A-Za-z0-9:, ]*[AP]M\)\..*/\1/p' \
  | sed -e 's/\([0-9]\)st,/\1,/' -e 's/\([0-9]\)nd,/\1,/' -e 's/\([0-9]\)rd,/\1,/' -e 's/\([0-9]\)th,/\1,/')
if [ -n "$when" ] && t=$(date -d "$when" +%s 2>/dev/null); then
  t=$((t + 60))
  case $when in *,*) ;; *) if [ "$t" -le "$now" ]; then t=$((t + 86400)); fi ;; esac
  echo "codex-remote-resume-at: $t message"; exit 0
fi
echo "codex-remote-resume-at: $((now + 600)) fallback"
"#;

/// Shell functions shared by the follow, probe and cancel scripts. They expect `dir` (the agent
/// dir) to be set, and set `pid` (the supervisor's) and `token` (the attempt's marker).
///
/// The agent has ended when its supervisor recorded a status: that is read first. Liveness is
/// only the fallback, and a zombie counts as dead (it has exited; only its parent, often a PID 1
/// that reaps late or never, has not collected it yet).
pub(super) const AGENT_FUNCTIONS: &str = r#"pid=$(cat "$dir/pid" 2>/dev/null || true)
token=$(cat "$dir/marker" 2>/dev/null || true)
# The agent dir is the agent's to write under danger-full-access: only a pid above 1 is a
# supervisor (never `kill -- -1`, every process of the user), only hex is a marker (never a
# pattern that matches other processes).
case $pid in ''|*[!0-9]*) pid= ;; esac
if [ -n "$pid" ] && [ "$pid" -le 1 ]; then pid=; fi
case $token in *[!0-9a-f]*) token= ;; esac
# same_boot: the host has not rebooted since the launch (where it has a boot id). After a reboot
# nothing of the attempt runs, and its recorded pid may name an unrelated process by now: it is
# never taken as alive nor signalled.
# (Both read once: the follow's watcher asks every 20 ms, and this boot cannot change under it.)
booted=$(cat "$dir/boot_id" 2>/dev/null || true)
boot=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || true)
same_boot() { [ -z "$booted" ] || [ "$booted" = "$boot" ]; }
# alive PID: the process exists and is not a zombie.
alive() {
  case $1 in ''|*[!0-9]*) return 1 ;; esac
  [ "$1" -gt 0 ] || return 1
  if [ -r /proc/self/stat ]; then
    s=
    { read -r s < "/proc/$1/stat"; } 2>/dev/null || return 1
    s=${s##*) }
    case $s in Z*|X*|x*) return 1 ;; esac
    return 0
  fi
  kill -s 0 "$1" 2>/dev/null || return 1
  case $(ps -o stat= -p "$1" 2>/dev/null) in Z*) return 1 ;; esac
  return 0
}
# marked: the pids of the live processes carrying this attempt's marker, wherever they moved.
marked() {
  [ -n "$token" ] && [ -r /proc/self/environ ] || return 0
  grep -lzxF -e "CODEX_REMOTE_AGENT=$token" /proc/[0-9]*/environ 2>/dev/null | sed -n 's|^/proc/\([0-9]*\)/environ$|\1|p'
}
# agent_alive: the supervisor, or a process of its group (Codex itself), still runs.
agent_alive() {
  same_boot || return 1
  alive "$pid" && return 0
  for p in $(marked); do
    s=
    { read -r s < "/proc/$p/stat"; } 2>/dev/null || continue
    set -- ${s##*) }
    [ "$3" = "$pid" ] && [ "$1" != Z ] && return 0
  done
  return 1
}
# live: no status recorded and the agent still runs.
live() { [ ! -e "$dir/status" ] && agent_alive; }
"#;

/// Prints events.jsonl from byte $2 on, following it while the agent lives; then a marker line,
/// how the agent stands (its exit status, `running` when only the stream stopped, or
/// `vanished`) and the end of its stderr, all on stdout so one ordered stream says where the
/// events end. The follow ends as soon as the status is recorded (a watcher polls it; `tail`
/// stops when the watcher does, after reading the file to its end).
pub(super) const FOLLOW_SCRIPT: &str = r#"
from=$(($2 + 1))
if live; then
  ( while live; do sleep 0.02; done ) & watcher=$!
  tail -c +"$from" -s 0.01 --pid="$watcher" -f "$dir/events.jsonl"
  kill "$watcher" 2>/dev/null
else
  tail -c +"$from" "$dir/events.jsonl"
fi
printf '\n\036codex-remote-follow-end\n'
if [ -e "$dir/status" ]; then cat "$dir/status"
elif agent_alive; then echo running
elif [ -e "$dir/status" ]; then cat "$dir/status"
else echo vanished; fi
tail -c 4000 "$dir/stderr.log" 2>/dev/null || true
"#;

/// The line that ends the event stream of a follow.
pub(super) const FOLLOW_END: &str = "\u{1e}codex-remote-follow-end";

/// Prints `running PID`, `waiting PID RESUME_AT THREAD`, `finished CODE`, `vanished` or
/// `not-started`.
pub(super) const PROBE_SCRIPT: &str = r#"
if [ -e "$dir/status" ]; then echo "finished $(cat "$dir/status")"
elif agent_alive; then
  if [ -s "$dir/waiting" ]; then echo "waiting $pid $(cat "$dir/waiting")"; else echo "running $pid"; fi
elif [ -e "$dir/status" ]; then echo "finished $(cat "$dir/status")"
elif [ -n "$pid" ]; then echo vanished
else echo not-started; fi
"#;

/// Ends every process of the attempt: the supervisor's process group, its systemd unit (its
/// cgroup) when it runs under `systemd-run --user`, and every process that carries the attempt's
/// marker (children that left the group or the session: `setsid`, `nohup cmd &`, daemons).
/// TERM, up to 2 s, then KILL until none is left; fails, naming the survivors, if any remain.
pub(super) const CANCEL_SCRIPT: &str = r#"
unit=$(cat "$dir/unit" 2>/dev/null || true)
case $unit in codex-remote-[0-9]*) ;; *) unit= ;; esac
same_boot || { pid=; unit=; }
signal() {
  if [ -n "$pid" ]; then kill -s "$1" -- "-$pid" 2>/dev/null || true; fi
  if [ -n "$unit" ]; then systemctl --user kill --signal="$1" -- "$unit" >/dev/null 2>&1 || true; fi
  for p in $(marked); do kill -s "$1" "$p" 2>/dev/null || true; done
}
remaining() { alive "$pid" || [ -n "$(marked)" ]; }
signal TERM
i=0
while remaining && [ "$i" -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
i=0
while remaining && [ "$i" -lt 40 ]; do signal KILL; sleep 0.05; i=$((i + 1)); done
if remaining; then
  echo "processes of the agent survived SIGKILL: $pid $(marked)" >&2
  exit 1
fi
"#;

/// One of the scripts above with the shared functions first; `$1` is the agent dir.
pub(super) fn agent_dir_script(
    name: &'static str,
    body: &str,
    dir: &str,
    args: &[&str],
) -> CommandSpec {
    let script = format!("dir=$1\n{AGENT_FUNCTIONS}{body}");
    let mut all = vec![dir];
    all.extend_from_slice(args);
    agent_script(name, &script, &all)
}

pub(super) fn agent_script(name: &'static str, body: &str, args: &[&str]) -> CommandSpec {
    CommandSpec::script(body, args).named(name).cwd("~")
}
