//! The operating system as the launcher and the helper's peer check use it: commands run to
//! completion, one program started in the background, file existence and our own uid. A trait
//! so that both are tested on Linux with scripted answers ([`System`]), and [`RealSystem`] for
//! the real thing.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What a command printed and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit status 0.
    pub success: bool,
    /// The exit code, `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A program started in the background.
pub trait Spawned: Send {
    fn pid(&self) -> u32;
    /// `Some(exit code)` once it has exited (`None` inside for a signal), `None` while it runs.
    fn try_wait(&mut self) -> io::Result<Option<Option<i32>>>;
}

/// The operating system, as far as this crate needs it.
pub trait System: Send + Sync {
    /// Runs `program` with `args` to completion. `Err` when it cannot be started (not found).
    fn run(&self, program: &str, args: &[String]) -> io::Result<CommandOutput>;
    /// Starts `program` with no arguments and these extra environment variables, detached from
    /// our standard streams.
    fn spawn(&self, program: &Path, env: &[(String, String)]) -> io::Result<Box<dyn Spawned>>;
    fn exists(&self, path: &Path) -> bool;
    /// Our own user id.
    fn uid(&self) -> u32;
}

/// The real operating system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealSystem;

struct RealChild(std::process::Child);

impl Spawned for RealChild {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn try_wait(&mut self) -> io::Result<Option<Option<i32>>> {
        Ok(self.0.try_wait()?.map(|status| status.code()))
    }
}

impl System for RealSystem {
    fn run(&self, program: &str, args: &[String]) -> io::Result<CommandOutput> {
        let output = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        Ok(CommandOutput {
            success: output.status.success(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    fn spawn(&self, program: &Path, env: &[(String, String)]) -> io::Result<Box<dyn Spawned>> {
        let child = Command::new(program)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Box::new(RealChild(child)))
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn uid(&self) -> u32 {
        rustix::process::getuid().as_raw()
    }
}

/// A process on the other end of a TCP connection, found with `lsof`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerProcess {
    pub pid: u32,
    pub uid: u32,
    /// The executable's path, when asked for.
    pub executable: Option<PathBuf>,
}

/// `lsof` is on every Mac (`/usr/sbin/lsof`) and most Linux systems; `-F` is its stable
/// machine-readable output: one field per line, the first letter naming it (`p` pid, `u` uid
/// with `-l`, `n` name).
pub(crate) fn lsof_args_for_connection(peer: std::net::SocketAddr) -> Vec<String> {
    vec![
        "-nP".into(),
        "-l".into(),
        "-w".into(),
        format!("-iTCP@{}:{}", lsof_host(peer.ip()), peer.port()),
        "-sTCP:ESTABLISHED".into(),
        "-Fpun".into(),
    ]
}

fn lsof_host(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The process whose socket goes from `peer` to `listener`, from `lsof -Fpun` output (both ends
/// of a loopback connection are listed; only the connecting end names `peer` first).
pub(crate) fn parse_lsof_connection(
    output: &str,
    peer: std::net::SocketAddr,
    listener: std::net::SocketAddr,
) -> Option<(u32, u32)> {
    let wanted = format!("{peer}->{listener}");
    let (mut pid, mut uid) = (None, None);
    for line in output.lines() {
        let (field, value) = line.split_at(line.len().min(1));
        match field {
            "p" => {
                pid = value.parse().ok();
                uid = None;
            }
            "u" => uid = value.parse().ok(),
            "n" if value == wanted => return Some((pid?, uid?)),
            _ => {}
        }
    }
    None
}

pub(crate) fn lsof_args_for_executable(pid: u32) -> Vec<String> {
    vec![
        "-nP".into(),
        "-w".into(),
        "-a".into(),
        "-p".into(),
        pid.to_string(),
        "-d".into(),
        "txt".into(),
        "-Fn".into(),
    ]
}

/// The first `txt` file of a process: its executable (later ones are libraries).
pub(crate) fn parse_lsof_executable(output: &str) -> Option<PathBuf> {
    output
        .lines()
        .filter_map(|line| line.strip_prefix('n'))
        .find(|path| path.starts_with('/'))
        .map(PathBuf::from)
}

/// Finds the process at the other end of a loopback connection to `listener` from `peer`.
pub fn peer_process(
    system: &dyn System,
    listener: std::net::SocketAddr,
    peer: std::net::SocketAddr,
    with_executable: bool,
) -> Result<PeerProcess, String> {
    let output = system
        .run("lsof", &lsof_args_for_connection(peer))
        .map_err(|e| format!("cannot run lsof to identify the connecting process: {e}"))?;
    let (pid, uid) = parse_lsof_connection(&output.stdout, peer, listener)
        .ok_or_else(|| format!("no process of this user owns the connection from {peer}"))?;
    let executable = if with_executable {
        let output = system
            .run("lsof", &lsof_args_for_executable(pid))
            .map_err(|e| format!("cannot run lsof to find process {pid}'s program: {e}"))?;
        Some(
            parse_lsof_executable(&output.stdout)
                .ok_or_else(|| format!("cannot tell which program process {pid} runs"))?,
        )
    } else {
        None
    };
    Ok(PeerProcess {
        pid,
        uid,
        executable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connecting_end_is_picked() {
        let peer: std::net::SocketAddr = "127.0.0.1:53314".parse().unwrap();
        let listener: std::net::SocketAddr = "127.0.0.1:45670".parse().unwrap();
        let out = "p100\nu501\nn127.0.0.1:45670->127.0.0.1:53314\np200\nu502\nn127.0.0.1:53314->127.0.0.1:45670\n";
        assert_eq!(parse_lsof_connection(out, peer, listener), Some((200, 502)));
        assert_eq!(parse_lsof_connection("p1\nu0\n", peer, listener), None);
        let v6: std::net::SocketAddr = "[::1]:5".parse().unwrap();
        assert_eq!(lsof_args_for_connection(v6)[3], "-iTCP@[::1]:5");
    }

    #[test]
    fn the_executable_is_the_first_txt_file() {
        let out =
            "p7\nn/System/Applications/Messages.app/Contents/MacOS/Messages\nn/usr/lib/dyld\n";
        assert_eq!(
            parse_lsof_executable(out).unwrap(),
            PathBuf::from("/System/Applications/Messages.app/Contents/MacOS/Messages")
        );
        assert_eq!(parse_lsof_executable("p7\n"), None);
    }
}
