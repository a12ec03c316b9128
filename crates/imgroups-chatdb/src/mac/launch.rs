//! Starting Messages with the BlueBubbles helper loaded, as the BlueBubbles server does
//! (`packages/server/src/server/api/privateApi/modes/dylibPlugins/index.ts`, `injectPlugin`):
//! quit Messages, start its executable again with `DYLD_INSERT_LIBRARIES=<the helper's
//! dylib>`, and wait for the helper's `ping` on the helper port. A normal launch of Messages
//! (Dock, `open -a Messages`) loads nothing.
//!
//! Each way it can fail gets its own [`LaunchError`], with what to do:
//! - System Integrity Protection on: `csrutil status` does not end in `disabled.` (BB
//!   `fileSystem/index.ts` `isSipDisabled` reads the same line) — macOS strips
//!   `DYLD_INSERT_LIBRARIES` from platform binaries such as Messages;
//! - Messages exits at once with the library: library validation refused it (it is not signed
//!   by Apple);
//! - Messages runs but no `ping` comes within the timeout: the library was not loaded or is
//!   not the helper;
//! - the helper port is taken: the BlueBubbles server (or another imgroups) listens there
//!   already ([`port_holder`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::system::{CommandOutput, System};
use crate::actuator::{default_port, BlueBubblesHelper, MESSAGES_EXECUTABLES};

/// How [`launch_messages`] runs.
#[derive(Clone, Debug)]
pub struct LaunchOptions {
    /// The helper library (`BlueBubblesHelper.dylib`).
    pub dylib: PathBuf,
    /// How long to wait for the helper's `ping` once Messages runs (the helper waits 5 s after
    /// loading before it connects, `BlueBubblesHelper.m` `+load`).
    pub ping_timeout: Duration,
    /// How long Messages may take to quit.
    pub quit_timeout: Duration,
    /// Exiting sooner than this after the start counts as "exited at once".
    pub quick_exit: Duration,
    /// How often the Messages process is looked at while waiting.
    pub poll: Duration,
}

impl LaunchOptions {
    pub fn new(dylib: impl Into<PathBuf>) -> LaunchOptions {
        LaunchOptions {
            dylib: dylib.into(),
            ping_timeout: Duration::from_secs(30),
            quit_timeout: Duration::from_secs(10),
            quick_exit: Duration::from_secs(5),
            poll: Duration::from_millis(100),
        }
    }
}

/// Messages runs with the helper, and the helper greeted us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launched {
    pub pid: u32,
    pub executable: PathBuf,
}

/// Who listens on a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortHolder {
    pub pid: u32,
    /// The process's command name as `lsof` shows it (e.g. `BlueBubbles`).
    pub command: String,
}

/// Why Messages could not be started with the helper. The texts say what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    #[error("the helper library {0} does not exist: give the path of BlueBubblesHelper.dylib")]
    NoDylib(PathBuf),
    #[error(
        "Messages is not installed where macOS keeps it ({}): this command runs on a Mac only",
        MESSAGES_EXECUTABLES.join(" or ")
    )]
    NoMessages,
    #[error(
        "System Integrity Protection is on (`csrutil status`: {status:?}): macOS does not load \
         libraries into Messages while it is. Turn it off from Recovery (`csrutil disable`), \
         restart, and run this again"
    )]
    SipEnabled { status: String },
    #[error("the helper port {port} is taken: {message}")]
    PortTaken { port: u16, message: String },
    #[error(
        "the helper is awaited on port {actual}, but the helper of this user ({uid}) connects to \
         {expected} (45670 + uid - 501)"
    )]
    WrongPort {
        actual: u16,
        expected: u16,
        uid: u32,
    },
    #[error("cannot quit Messages: {0}")]
    Quit(String),
    #[error("cannot start {executable}: {reason}")]
    Start { executable: PathBuf, reason: String },
    #[error(
        "Messages exited {when} with the helper loaded ({status}): library validation refused \
         the library. Turn it off (`sudo defaults write \
         /Library/Preferences/com.apple.security.libraryvalidation.plist \
         DisableLibraryValidation -bool true`), check that SIP is off (`csrutil status`), and \
         run this again"
    )]
    MessagesExited { when: String, status: String },
    #[error(
        "Messages runs (pid {pid}) but the helper did not connect within {} s: the library was \
         not loaded into Messages (SIP or library validation), or {dylib} is not the BlueBubbles \
         helper",
        waited.as_secs()
    )]
    NoPing {
        pid: u32,
        waited: Duration,
        dylib: PathBuf,
    },
}

/// Who listens on TCP `port`, from `lsof` (`None` when it cannot tell).
pub fn port_holder(system: &dyn System, port: u16) -> Option<PortHolder> {
    let args = [
        "-nP".to_owned(),
        "-w".to_owned(),
        format!("-iTCP:{port}"),
        "-sTCP:LISTEN".to_owned(),
        "-Fpc".to_owned(),
    ];
    let output = system.run("lsof", &args).ok()?;
    let (mut pid, mut command) = (None, None);
    for line in output.stdout.lines() {
        if let Some(p) = line.strip_prefix('p') {
            pid = p.parse().ok();
        } else if let Some(c) = line.strip_prefix('c') {
            command = Some(c.to_owned());
        }
        if let (Some(pid), Some(command)) = (pid, command.clone()) {
            return Some(PortHolder { pid, command });
        }
    }
    None
}

/// The text for a taken helper port, naming the holder when known.
pub fn port_taken_message(port: u16, holder: Option<&PortHolder>) -> String {
    match holder {
        Some(h) if h.command.to_ascii_lowercase().contains("bluebubbles") => format!(
            "the BlueBubbles server (pid {}) listens on port {port} for its own helper; only one \
             of the two can drive Messages: quit BlueBubbles (and its launch agent) first",
            h.pid
        ),
        Some(h) if h.command.contains("imgroups") => format!(
            "another imgroups (pid {}) already listens on port {port} for the Messages helper",
            h.pid
        ),
        Some(h) => format!(
            "{} (pid {}) listens on port {port}, where the Messages helper connects",
            h.command, h.pid
        ),
        None => format!(
            "something already listens on port {port}, where the Messages helper connects (the \
             BlueBubbles server does): `lsof -nP -iTCP:{port} -sTCP:LISTEN` shows what"
        ),
    }
}

/// Binds the helper port of this user (`127.0.0.1:45670 + uid - 501`) with the default
/// options, naming the holder when it is taken.
pub async fn bind_helper_port(system: &dyn System) -> Result<BlueBubblesHelper, LaunchError> {
    let port = default_port(system.uid());
    BlueBubblesHelper::bind(("127.0.0.1", port))
        .await
        .map_err(|e| LaunchError::PortTaken {
            port,
            message: e.to_string(),
        })
}

/// Whether `csrutil status` says SIP is off; `None` when `csrutil` cannot be run.
fn sip_status(system: &dyn System) -> Option<(bool, String)> {
    let output: CommandOutput = system.run("csrutil", &["status".to_owned()]).ok()?;
    let text = format!("{}{}", output.stdout, output.stderr);
    let status = text.trim().to_owned();
    // BB's test: anything but a line ending in "enabled." lets the library load (a custom
    // configuration ending in "disabled." or listing "unknown" is taken as off).
    Some((!status.ends_with("enabled."), status))
}

fn messages_running(system: &dyn System) -> bool {
    system
        .run("pgrep", &["-x".to_owned(), "Messages".to_owned()])
        .map(|o| o.success)
        .unwrap_or(false)
}

/// Quits Messages, starts it again with the helper loaded, and waits until the helper greets
/// `helper` (which must listen on this user's helper port). Messages keeps running afterwards;
/// when `helper` is dropped, the helper reconnects every 5 s until a server listens again.
pub async fn launch_messages(
    options: &LaunchOptions,
    system: Arc<dyn System>,
    helper: &BlueBubblesHelper,
) -> Result<Launched, LaunchError> {
    if !system.exists(&options.dylib) {
        return Err(LaunchError::NoDylib(options.dylib.clone()));
    }
    let executable = MESSAGES_EXECUTABLES
        .iter()
        .map(Path::new)
        .find(|p| system.exists(p))
        .ok_or(LaunchError::NoMessages)?
        .to_owned();
    match sip_status(&*system) {
        Some((false, status)) => return Err(LaunchError::SipEnabled { status }),
        Some((true, status)) => tracing::debug!(%status, "System Integrity Protection"),
        None => tracing::warn!(
            "cannot run `csrutil status`: going on without knowing whether SIP is off"
        ),
    }
    let uid = system.uid();
    let expected = default_port(uid);
    let actual = helper.local_addr().port();
    if actual != expected {
        return Err(LaunchError::WrongPort {
            actual,
            expected,
            uid,
        });
    }

    // Quit Messages (BB `stopParentProcess`: `killall`; "no matching processes" is fine).
    let _ = system.run("killall", &["Messages".to_owned()]);
    let quit_by = Instant::now() + options.quit_timeout;
    while messages_running(&*system) {
        if Instant::now() >= quit_by {
            return Err(LaunchError::Quit(format!(
                "it still runs {} s after `killall Messages`",
                options.quit_timeout.as_secs()
            )));
        }
        tokio::time::sleep(options.poll).await;
    }

    let env = [(
        "DYLD_INSERT_LIBRARIES".to_owned(),
        options.dylib.to_string_lossy().into_owned(),
    )];
    let mut child = system
        .spawn(&executable, &env)
        .map_err(|e| LaunchError::Start {
            executable: executable.clone(),
            reason: e.to_string(),
        })?;
    let pid = child.pid();
    let started = Instant::now();
    let greeted = helper.connected();
    tokio::pin!(greeted);
    loop {
        tokio::select! {
            () = &mut greeted => return Ok(Launched { pid, executable }),
            () = tokio::time::sleep(options.poll) => {}
        }
        if let Ok(Some(code)) = child.try_wait() {
            let elapsed = started.elapsed();
            let when = if elapsed < options.quick_exit {
                "at once".to_owned()
            } else {
                format!("after {} s", elapsed.as_secs())
            };
            return Err(LaunchError::MessagesExited {
                when,
                status: ExitStatus(code).to_string(),
            });
        }
        if started.elapsed() >= options.ping_timeout {
            return Err(LaunchError::NoPing {
                pid,
                waited: options.ping_timeout,
                dylib: options.dylib.clone(),
            });
        }
    }
}

struct ExitStatus(Option<i32>);

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(code) => write!(f, "exit code {code}"),
            None => f.write_str("killed by a signal"),
        }
    }
}
