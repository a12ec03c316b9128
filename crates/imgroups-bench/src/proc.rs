//! Child processes: the real server, the bare baselines, and what /proc says about them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// Where the server side and the client side run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placement {
    pub(crate) server_cpu: Option<usize>,
    pub(crate) client_cpu: Option<usize>,
}

impl Placement {
    pub(crate) fn describe(&self) -> String {
        match (self.server_cpu, self.client_cpu) {
            (Some(s), Some(c)) => format!(
                "every server (imgroups and baselines) pinned to CPU {s} with `taskset -c {s}`; the load generator pinned to CPU {c}"
            ),
            _ => "unpinned (taskset unavailable or --no-pin): server and client share all CPUs".into(),
        }
    }
}

/// A running server process and what it printed at start.
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    /// `http://127.0.0.1:PORT`
    pub(crate) url: String,
    /// The HTTP/JSON listener, `127.0.0.1:PORT`, when the process printed one.
    pub(crate) http: Option<String>,
    /// The account it created on first start and that account's token (first start only).
    pub(crate) account: Option<String>,
    pub(crate) token: Option<String>,
    /// From spawn to the `ready` line.
    pub(crate) ready_after: Duration,
}

/// Spawns `program args…` (pinned to `cpu`), stderr to `log`, and waits for `ready` on stdout.
/// How long a server may take from spawn to `ready` (a chatdb first start imports the whole
/// history before it).
const READY_TIMEOUT_SECS: u64 = 300;

pub(crate) async fn spawn(
    program: &Path,
    args: &[String],
    cpu: Option<usize>,
    log: &Path,
) -> Result<Proc> {
    let started = Instant::now();
    let mut cmd = match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(program);
            c
        }
        None => Command::new(program),
    };
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    cmd.args(args)
        // The real server's HTTP listener would default to a fixed port; any free one will do.
        .env("IMGROUPS_HTTP", "127.0.0.1:0")
        // A server meant for SQLite must not pick up a database from the environment; the
        // PostgreSQL runs pass `--database-url` explicitly.
        .env_remove("IMGROUPS_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let pid = child.id().ok_or("child exited at once")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let (mut url, mut http, mut account, mut token) = (None, None, None, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(READY_TIMEOUT_SECS);
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .map_err(|_| {
                format!(
                    "{} did not print `ready` within {READY_TIMEOUT_SECS} s; see {}",
                    program.display(),
                    log.display()
                )
            })??;
        let Some(line) = line else {
            return Err(format!(
                "{} exited before `ready`; see {}",
                program.display(),
                log.display()
            )
            .into());
        };
        if let Some(rest) = line.strip_prefix("grpc listening on ") {
            url = Some(format!("http://{}", rest.trim()));
        } else if let Some(rest) = line.strip_prefix("http listening on ") {
            http = Some(rest.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("token ") {
            token = Some(rest.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("account ") {
            account = Some(rest.trim().to_owned());
        } else if line.trim() == "ready" {
            break;
        }
    }
    let ready_after = started.elapsed();
    // Keep draining stdout so a late line never meets a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let url = url.ok_or("no `grpc listening on` line before `ready`")?;
    if !url.starts_with("http://127.0.0.1:") {
        return Err(format!("refusing non-loopback server address {url}").into());
    }
    Ok(Proc {
        child,
        pid,
        url,
        http,
        account,
        token,
        ready_after,
    })
}

impl Proc {
    /// User + system CPU seconds so far.
    pub(crate) fn cpu_secs(&self) -> f64 {
        cpu_secs(self.pid)
    }

    /// Peak resident set (VmHWM) in MiB.
    pub(crate) fn peak_rss_mib(&self) -> f64 {
        status_kib(self.pid, "VmHWM") as f64 / 1024.0
    }

    /// Current resident set (VmRSS) in KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        status_kib(self.pid, "VmRSS")
    }

    /// `kill -9` and reap.
    pub(crate) async fn kill9(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// SIGTERM (graceful shutdown) and reap; SIGKILL after 20 s.
    pub(crate) async fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            self.kill9().await;
        }
    }
}

fn clk_tck() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime from /proc/PID/stat, in seconds.
pub(crate) fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the parenthesised command name start at field 3 (state).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |field: usize| -> f64 {
        fields
            .get(field - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (get(14) + get(15)) / clk_tck()
}

/// A `kB` line of /proc/PID/status.
pub(crate) fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k == key).then(|| v.split_whitespace().next()?.parse().ok())?
            })
        })
        .unwrap_or(0)
}

/// Arguments to start the real server on `data`.
pub(crate) fn serve_args(data: &Path, durability: &str) -> Vec<String> {
    vec![
        "serve".into(),
        "--data".into(),
        data.display().to_string(),
        "--grpc".into(),
        "127.0.0.1:0".into(),
        // The HTTP side is unused here; port 0 keeps runs from colliding on 8080.
        "--http".into(),
        "127.0.0.1:0".into(),
        "--durability".into(),
        durability.into(),
    ]
}

/// Arguments to start the real server on the PostgreSQL database at `url` (`data` holds only
/// the token file).
pub(crate) fn serve_pg_args(data: &Path, url: &str) -> Vec<String> {
    vec![
        "serve".into(),
        "--data".into(),
        data.display().to_string(),
        "--database-url".into(),
        url.into(),
        "--grpc".into(),
        "127.0.0.1:0".into(),
        "--http".into(),
        "127.0.0.1:0".into(),
    ]
}

/// Seconds of every CPU so far (all states) and of them stolen by the hypervisor, from
/// /proc/stat: a noisy host shows as steal.
pub(crate) fn steal_secs() -> (f64, f64) {
    let fields: Vec<f64> = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| {
            stat.lines().find(|l| l.starts_with("cpu ")).map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_default();
    if fields.len() < 8 {
        return (f64::NAN, f64::NAN);
    }
    let total: f64 = fields.iter().take(8).sum();
    (total / clk_tck(), fields[7] / clk_tck())
}

/// Busy CPU seconds of the whole machine so far (every CPU: all but idle and iowait, from
/// /proc/stat).
pub(crate) fn machine_busy_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return f64::NAN;
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return f64::NAN;
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return f64::NAN;
    }
    // user nice system idle iowait irq softirq steal (guest time is counted in user).
    let total: f64 = v.iter().take(8).sum();
    (total - v[3] - v[4]) / clk_tck()
}

/// User + system CPU seconds so far of each local PostgreSQL backend serving one of the
/// benchmark's databases (its process title names the database, `imgroups_bench_…`), by pid.
/// Shared helpers (WAL writer, checkpointer) and other users' backends are left out.
fn postgres_cpu() -> HashMap<u32, f64> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        if comm.trim() != "postgres" {
            continue;
        }
        let Ok(title) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&title).contains(" imgroups_bench_") {
            let s = cpu_secs(pid);
            if !s.is_nan() {
                out.insert(pid, s);
            }
        }
    }
    out
}

/// CPU spent over a span: by one process, by PostgreSQL, and by the whole machine.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cpu {
    pub(crate) own: f64,
    /// Every benchmark backend alive at the end of the span: what it spent since the start
    /// (all of it, if it started meanwhile). A backend that exits within the span takes its
    /// seconds with it: a lower bound where connections close.
    pub(crate) postgres: f64,
    /// Every CPU, anything running (other users' work included).
    pub(crate) machine: f64,
}

/// Starts measuring [`Cpu`] for process `pid`.
pub(crate) struct Meter {
    pid: u32,
    own: f64,
    postgres: HashMap<u32, f64>,
    machine: f64,
}

impl Meter {
    pub(crate) fn start(pid: u32) -> Self {
        Meter {
            pid,
            own: cpu_secs(pid),
            postgres: postgres_cpu(),
            machine: machine_busy_secs(),
        }
    }

    pub(crate) fn stop(&self) -> Cpu {
        let postgres = postgres_cpu()
            .into_iter()
            .map(|(pid, s)| (s - self.postgres.get(&pid).copied().unwrap_or(0.0)).max(0.0))
            .sum();
        Cpu {
            own: cpu_secs(self.pid) - self.own,
            postgres,
            machine: machine_busy_secs() - self.machine,
        }
    }
}

/// This program, to start the bare baselines as separate (pinned) processes.
pub(crate) fn self_exe() -> Result<PathBuf> {
    Ok(std::env::current_exe()?)
}

/// Bytes of a file, 0 if absent.
pub(crate) fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The machine, for the report header.
pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("CPU: {cpu}; online CPUs: {online} (this process may use {nproc}); load average at start: {load}")
}

/// 1-minute load average now.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
