//! `imgroups-bench`: starts the real `imgroups` server on loopback with a fresh data directory
//! (or, with `--database-url`, a fresh PostgreSQL database), drives it with a Rust gRPC load
//! generator, and compares it with baselines measured in the same invocation (a bare tonic
//! server with the same messages, raw SQLite or PostgreSQL commits), rounds alternating
//! A B A B. See BENCHMARKS.md.

mod bare;
mod big_dataset;
mod chatdb;
mod client;
mod cross_node;
mod m1;
mod m23;
mod pg;
mod proc;
mod reset;
mod seed;
mod stats;
mod w1;
mod w1pg;
mod w2;
mod w3;
mod w4pg;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use crate::proc::{Placement, Proc, Result};

#[derive(Parser)]
#[command(
    name = "imgroups-bench",
    about = "Benchmarks the imgroups server against baselines measured in the same run"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Sub>,
    /// Every workload at tiny sizes, correctness checks only (for CI).
    #[arg(long)]
    smoke: bool,
    /// Measured rounds per figure (each figure is the median; min–max shown). Default 3, 1 with --smoke.
    #[arg(long)]
    rounds: Option<usize>,
    /// Comma-separated: w1,w2,w3,w4,w5, m1,m2,m3,m4 (messages; msg for the four), reset (R1: a simulator reset of 10,000 groups and 100,000 messages), chatdb (the Mac backend on a fixture chat.db), the PostgreSQL ones w1pg,xnode,w4pg (or pg for the
    /// three), or all (the PostgreSQL ones only with --database-url).
    #[arg(long, default_value = "all")]
    workload: String,
    /// PostgreSQL admin URL for w1pg, xnode and w4pg (a user that may create databases): each
    /// workload runs on a database of its own created there and dropped afterwards.
    #[arg(long, env = pg::TEST_URL_VAR)]
    database_url: Option<String>,
    /// The server binary [default: target/release/imgroups].
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Seconds per measured round of the throughput workloads. Default 2, 0.1 with --smoke.
    #[arg(long)]
    secs: Option<f64>,
    /// Do not pin processes to CPUs.
    #[arg(long)]
    no_pin: bool,
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
    #[arg(long, default_value_t = 1)]
    client_cpu: usize,
    /// Events in the W4/W5 log (one account). Default 1,000,000 (1,000 with --smoke).
    #[arg(long)]
    events: Option<u64>,
    /// Groups in the W5 dataset. Default 100,000 (100 with --smoke).
    #[arg(long)]
    groups: Option<u64>,
    /// Idle subscribers for W5. Default 10,000 (100 with --smoke).
    #[arg(long)]
    idle_subscribers: Option<usize>,
    /// `imgroups serve` processes on one database in xnode (node A takes the writes).
    #[arg(long, default_value_t = 2, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..=8))]
    xnode_nodes: usize,
    /// Messages in the chatdb workload's chat.db. Default 1,000,000 (2,000 with --smoke).
    #[arg(long)]
    chatdb_messages: Option<u64>,
    /// Of those, group changes. Default 50,000 (100 with --smoke).
    #[arg(long)]
    chatdb_changes: Option<u64>,
    /// Rows committed one at a time for the chatdb ingest latency. Default 300 (20 with --smoke).
    #[arg(long)]
    chatdb_samples: Option<usize>,
    /// Messages in M2's chat. Default 1,000,000 (200 with --smoke).
    #[arg(long)]
    m2_messages: Option<u64>,
    /// Events in M3's mixed log. Default 1,000,000 (1,000 with --smoke).
    #[arg(long)]
    m3_events: Option<u64>,
    /// Sends measured by M4. Default 20,000 (50 with --smoke).
    #[arg(long)]
    m4_sends: Option<u64>,
    /// Also write the report (markdown) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Sub {
    /// (internal) the bare tonic baseline server.
    #[command(hide = true)]
    BareServer,
    /// (internal) the raw PostgreSQL commit baseline.
    #[command(hide = true)]
    PgCommit {
        #[arg(long, env = "IMGROUPS_BENCH_PG_URL")]
        url: String,
        #[arg(long)]
        concurrency: usize,
        #[arg(long)]
        secs: f64,
    },
    /// (internal) the raw SQLite commit baseline.
    #[command(hide = true)]
    SqliteCommit {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        durability: String,
        #[arg(long)]
        secs: f64,
    },
    /// (internal) the chatdb workload's writer: commits renames to a fixture chat.db one at a
    /// time, as Messages does, printing `committed <i> <unix ns>` after each.
    #[command(hide = true)]
    ChatdbWriter {
        #[arg(long)]
        db: PathBuf,
        #[arg(long)]
        chat: i64,
        #[arg(long)]
        handle: i64,
        #[arg(long)]
        n: usize,
        #[arg(long, default_value_t = 20)]
        min_gap_ms: u64,
        #[arg(long, default_value_t = 80)]
        max_gap_ms: u64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Drive a running server with the W1 load (renames on distinct groups) and print one
    /// line of figures: for profiling the write path (`perf record -p <server pid>` meanwhile).
    Load {
        /// The server's gRPC address.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        url: String,
        /// A bearer token for an account on that server.
        #[arg(long)]
        token: String,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// How long to write; with `--writes`, an upper bound.
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        /// Stop after this many writes in all (spread evenly over the workers), e.g. for
        /// instruction counts of a fixed amount of work under `valgrind --tool=callgrind`.
        #[arg(long)]
        writes: Option<u64>,
        /// Rename one group only (the hot-group case).
        #[arg(long)]
        one_group: bool,
    },
}

/// Sizes for one invocation.
#[derive(Debug, Clone)]
pub(crate) struct Scale {
    pub(crate) secs: f64,
    pub(crate) w1_groups: usize,
    pub(crate) w2_groups: usize,
    pub(crate) w3_subscribers: usize,
    pub(crate) w3_rate: u64,
    pub(crate) big_groups: u64,
    pub(crate) big_events: u64,
    pub(crate) idle_subscribers: usize,
    pub(crate) xnode_nodes: usize,
    pub(crate) xnode_subscribers: usize,
    pub(crate) xnode_rate: u64,
    pub(crate) chatdb_messages: u64,
    pub(crate) chatdb_changes: u64,
    pub(crate) chatdb_groups: u64,
    pub(crate) chatdb_samples: usize,
    pub(crate) m2_messages: u64,
    pub(crate) m3_events: u64,
    pub(crate) m4_sends: u64,
    pub(crate) reset_groups: u64,
    pub(crate) reset_messages: u64,
}

/// One target line of the summary.
pub(crate) struct Target {
    pub(crate) what: String,
    pub(crate) value: String,
    pub(crate) met: Option<bool>,
}

/// Shared state of one invocation.
pub(crate) struct Ctx {
    pub(crate) server_bin: PathBuf,
    pub(crate) rounds: usize,
    pub(crate) smoke: bool,
    pub(crate) placement: Placement,
    pub(crate) scale: Scale,
    pub(crate) work: tempfile::TempDir,
    pub(crate) report: String,
    pub(crate) targets: Vec<Target>,
    pub(crate) failures: Vec<String>,
    /// W1 distinct-groups c=64 median, for the long-history ratio in W5.
    pub(crate) w1_c64: Option<f64>,
    pub(crate) big: Option<big_dataset::Big>,
    /// The PostgreSQL admin URL (`--database-url`).
    pub(crate) database_url: Option<String>,
    /// Databases created and not dropped yet.
    pub(crate) databases: Vec<String>,
}

impl Ctx {
    pub(crate) fn secs(&self) -> Duration {
        Duration::from_secs_f64(self.scale.secs)
    }

    /// A fresh directory under the invocation's temp dir.
    pub(crate) fn fresh_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.work.path().join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Starts the real server on `data`.
    pub(crate) async fn imgroups(&self, data: &std::path::Path, durability: &str) -> Result<Proc> {
        let log = self.work.path().join("imgroups.log");
        proc::spawn(
            &self.server_bin,
            &proc::serve_args(data, durability),
            self.placement.server_cpu,
            &log,
        )
        .await
    }

    /// Starts the bare tonic baseline.
    pub(crate) async fn bare(&self) -> Result<Proc> {
        let log = self.work.path().join("bare.log");
        proc::spawn(
            &proc::self_exe()?,
            &["bare-server".to_owned()],
            self.placement.server_cpu,
            &log,
        )
        .await
    }

    /// One raw SQLite commit-rate round (own process, pinned like the server).
    pub(crate) async fn sqlite_round(&self, durability: &str) -> Result<f64> {
        let dir = self.work.path().join("sqlite");
        std::fs::create_dir_all(&dir)?;
        let exe = proc::self_exe()?;
        let mut cmd = match self.placement.server_cpu {
            Some(cpu) => {
                let mut c = tokio::process::Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(&exe);
                c
            }
            None => tokio::process::Command::new(&exe),
        };
        cmd.arg("sqlite-commit")
            .arg("--dir")
            .arg(&dir)
            .arg("--durability")
            .arg(durability)
            .arg("--secs")
            .arg(self.scale.secs.to_string())
            .kill_on_drop(true);
        let out = cmd.output().await?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("commits_per_s "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| {
                format!(
                    "sqlite baseline failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
                .into()
            })
    }

    pub(crate) fn emit(&mut self, text: &str) {
        print!("{text}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        self.report.push_str(text);
    }

    pub(crate) fn target(
        &mut self,
        what: impl Into<String>,
        value: impl Into<String>,
        met: Option<bool>,
    ) {
        self.targets.push(Target {
            what: what.into(),
            value: value.into(),
            met,
        });
    }

    pub(crate) fn check(&mut self, ok: bool, what: impl Into<String>) {
        let what = what.into();
        let line = format!(
            "- correctness: {} — {what}\n",
            if ok { "ok" } else { "FAILED" }
        );
        self.emit(&line);
        if !ok {
            self.failures.push(what);
        }
    }
}

pub(crate) fn progress(msg: impl AsRef<str>) {
    eprintln!("[imgroups-bench] {}", msg.as_ref());
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.cmd {
        Some(Sub::BareServer) => return exit(bare::run_server()),
        Some(Sub::SqliteCommit {
            dir,
            durability,
            secs,
        }) => return exit(bare::run_sqlite(dir, durability, *secs)),
        Some(Sub::ChatdbWriter {
            db,
            chat,
            handle,
            n,
            min_gap_ms,
            max_gap_ms,
            seed,
        }) => {
            return exit(chatdb::run_writer(
                db,
                *chat,
                *handle,
                *n,
                (*min_gap_ms, *max_gap_ms),
                *seed,
            ))
        }
        Some(Sub::PgCommit {
            url,
            concurrency,
            secs,
        }) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            return exit(rt.block_on(pg::run_commits(url, *concurrency, *secs)));
        }
        Some(Sub::Load {
            url,
            token,
            concurrency,
            secs,
            writes,
            one_group,
        }) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            return exit(rt.block_on(w1::load(
                url,
                token,
                *concurrency,
                *secs,
                *writes,
                *one_group,
            )));
        }
        None => {}
    }
    // Many subscribers need many descriptors; children inherit the raised limit.
    let _ = rlimit::increase_nofile_limit(u64::MAX);

    // A re-run under taskset sees one CPU: it is pinned already.
    let already_pinned = std::env::var_os("IMGROUPS_BENCH_PINNED").is_some();
    let can_pin = already_pinned
        || !cli.no_pin
            && std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                >= 2
            && std::process::Command::new("taskset")
                .arg("-V")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
    if can_pin && !already_pinned {
        // Re-run this very command pinned to the client CPU.
        let status = std::process::Command::new("taskset")
            .arg("-c")
            .arg(cli.client_cpu.to_string())
            .arg(std::env::current_exe().expect("current exe"))
            .args(std::env::args_os().skip(1))
            .env("IMGROUPS_BENCH_PINNED", "1")
            .status();
        return match status {
            Ok(s) if s.success() => ExitCode::SUCCESS,
            Ok(_) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("cannot re-run under taskset: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let placement = if can_pin {
        Placement {
            server_cpu: Some(cli.server_cpu),
            client_cpu: Some(cli.client_cpu),
        }
    } else {
        Placement {
            server_cpu: None,
            client_cpu: None,
        }
    };
    // One thread: the load generator lives entirely on its CPU.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    exit(rt.block_on(run(cli, placement)))
}

/// The PostgreSQL workloads: run only with a database to run on.
const PG_WORKLOADS: [&str; 3] = ["w1pg", "xnode", "w4pg"];

/// The message workloads (`msg` runs the four).
const MSG_WORKLOADS: [&str; 4] = ["m1", "m2", "m3", "m4"];

async fn run_workloads(ctx: &mut Ctx, on: &impl Fn(&str) -> bool) -> Result<()> {
    if on("w1") {
        w1::run(ctx).await?;
    }
    if on("w2") {
        w2::run(ctx).await?;
    }
    if on("w3") {
        w3::run(ctx).await?;
    }
    if on("w4") {
        big_dataset::run_w4(ctx).await?;
    }
    // Right after W4, so it can compare with W4's dataset before W5 writes to it.
    if on("w4pg") {
        w4pg::run(ctx).await?;
    }
    if on("w5") {
        big_dataset::run_w5(ctx).await?;
    }
    if on("m1") {
        m1::run_m1(ctx).await?;
    }
    if on("m2") {
        m23::run_m2(ctx).await?;
    }
    if on("m3") {
        m23::run_m3(ctx).await?;
    }
    if on("m4") {
        m1::run_m4(ctx).await?;
    }
    if on("reset") {
        reset::run(ctx).await?;
    }
    if on("chatdb") {
        chatdb::run(ctx).await?;
    }
    if on("w1pg") {
        w1pg::run(ctx).await?;
    }
    if on("xnode") {
        cross_node::run(ctx).await?;
    }
    Ok(())
}

fn exit(r: Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imgroups-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, placement: Placement) -> Result<()> {
    let smoke = cli.smoke;
    let server_bin = cli
        .server_bin
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/release/imgroups"));
    if !server_bin.exists() {
        return Err(format!(
            "server binary {} not found: run `cargo build --release -p imgroups` first or pass --server-bin",
            server_bin.display()
        )
        .into());
    }
    let server_bin = server_bin.canonicalize()?;
    let scale = if smoke {
        Scale {
            secs: cli.secs.unwrap_or(0.1),
            w1_groups: 20,
            w2_groups: 16,
            w3_subscribers: 20,
            w3_rate: 200,
            big_groups: cli.groups.unwrap_or(100),
            big_events: cli.events.unwrap_or(1_000),
            idle_subscribers: cli.idle_subscribers.unwrap_or(100),
            xnode_nodes: cli.xnode_nodes,
            xnode_subscribers: 10,
            xnode_rate: 200,
            chatdb_messages: cli.chatdb_messages.unwrap_or(2_000),
            chatdb_changes: cli.chatdb_changes.unwrap_or(100),
            chatdb_groups: 10,
            chatdb_samples: cli.chatdb_samples.unwrap_or(20),
            m2_messages: cli.m2_messages.unwrap_or(200),
            m3_events: cli.m3_events.unwrap_or(1_000),
            m4_sends: cli.m4_sends.unwrap_or(50),
            reset_groups: 100,
            reset_messages: 1_000,
        }
    } else {
        Scale {
            secs: cli.secs.unwrap_or(2.0),
            w1_groups: 1000,
            w2_groups: 64,
            w3_subscribers: 1000,
            w3_rate: 1000,
            big_groups: cli.groups.unwrap_or(100_000),
            big_events: cli.events.unwrap_or(1_000_000),
            idle_subscribers: cli.idle_subscribers.unwrap_or(10_000),
            xnode_nodes: cli.xnode_nodes,
            xnode_subscribers: 100,
            xnode_rate: 1000,
            chatdb_messages: cli.chatdb_messages.unwrap_or(1_000_000),
            chatdb_changes: cli.chatdb_changes.unwrap_or(50_000),
            chatdb_groups: 500,
            chatdb_samples: cli.chatdb_samples.unwrap_or(300),
            m2_messages: cli.m2_messages.unwrap_or(1_000_000),
            m3_events: cli.m3_events.unwrap_or(1_000_000),
            m4_sends: cli.m4_sends.unwrap_or(20_000),
            reset_groups: 10_000,
            reset_messages: 100_000,
        }
    };
    let rounds = cli.rounds.unwrap_or(if smoke { 1 } else { 3 }).max(1);
    let wanted: Vec<String> = cli
        .workload
        .split(',')
        .map(|s| s.trim().to_lowercase())
        .collect();
    let all = wanted.iter().any(|w| w == "all");
    let msg_all = wanted.iter().any(|w| w == "msg");
    let pg_all = wanted.iter().any(|w| w == "pg");
    let database_url = cli.database_url.clone().filter(|u| !u.trim().is_empty());
    let have_db = database_url.is_some();
    let on = |w: &str| {
        let pg_workload = PG_WORKLOADS.contains(&w);
        (all && (!pg_workload || have_db))
            || (pg_all && pg_workload)
            || (msg_all && MSG_WORKLOADS.contains(&w))
            || wanted.iter().any(|x| x == w)
    };
    for w in &wanted {
        let known = matches!(
            w.as_str(),
            "all" | "pg" | "msg" | "w1" | "w2" | "w3" | "w4" | "w5" | "chatdb" | "reset"
        ) || PG_WORKLOADS.contains(&w.as_str())
            || MSG_WORKLOADS.contains(&w.as_str());
        if !known {
            return Err(format!(
                "unknown workload {w:?} (w1,w2,w3,w4,w5,m1,m2,m3,m4,msg,reset,chatdb,w1pg,xnode,w4pg,pg,all)"
            )
            .into());
        }
        if (w == "pg" || PG_WORKLOADS.contains(&w.as_str())) && !have_db {
            return Err(format!(
                "workload {w} needs PostgreSQL: pass --database-url postgres://USER@HOST:PORT/DB (a user that may create databases) or set {}",
                pg::TEST_URL_VAR
            )
            .into());
        }
    }

    let mut ctx = Ctx {
        server_bin,
        rounds,
        smoke,
        placement,
        scale,
        work: tempfile::Builder::new()
            .prefix("imgroups-bench")
            .tempdir()?,
        report: String::new(),
        targets: Vec::new(),
        failures: Vec::new(),
        w1_c64: None,
        big: None,
        database_url,
        databases: Vec::new(),
    };
    let started = Instant::now();
    let steal0 = proc::steal_secs();
    let header = format!(
        "## imgroups-bench{}\n\n- command: `imgroups-bench {}`\n- machine: {}\n- placement: {}\n- rounds: {} per figure (median, min–max), {} s each; workload and baseline rounds alternate (A B A B)\n- server: {}\n",
        if smoke { " (smoke)" } else { "" },
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        proc::machine(),
        ctx.placement.describe(),
        rounds,
        ctx.scale.secs,
        ctx.server_bin.display(),
    );
    ctx.emit(&header);
    let db_line = match ctx.database_url.clone() {
        Some(url) => format!("- PostgreSQL: {}\n", pg::describe(&url).await?),
        None if all => format!(
            "- PostgreSQL workloads (w1pg, xnode, w4pg) skipped: no --database-url and {} is not set\n",
            pg::TEST_URL_VAR
        ),
        None => String::new(),
    };
    ctx.emit(&db_line);
    let result = run_workloads(&mut ctx, &on).await;
    ctx.drop_leftover_dbs().await;
    result?;

    let mut summary = String::from("\n### Targets\n\n| target | measured | met |\n|---|---|---|\n");
    for t in &ctx.targets {
        let met = match t.met {
            _ if ctx.smoke => "(smoke: not judged)",
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        summary.push_str(&format!("| {} | {} | {met} |\n", t.what, t.value));
    }
    let steal1 = proc::steal_secs();
    summary.push_str(&format!(
        "\nTotal wall time {:.1} s; load average at end: {}; CPU time stolen by the hypervisor over the run: {:.1}%.\n",
        started.elapsed().as_secs_f64(),
        proc::loadavg(),
        (steal1.1 - steal0.1) * 100.0 / (steal1.0 - steal0.0).max(1e-9)
    ));
    if ctx.failures.is_empty() {
        summary.push_str("All correctness checks passed.\n");
    } else {
        summary.push_str(&format!(
            "CORRECTNESS FAILURES: {}\n",
            ctx.failures.join("; ")
        ));
    }
    ctx.emit(&summary);
    if let Some(out) = &cli.out {
        std::fs::write(out, &ctx.report)?;
    }
    if ctx.failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} correctness check(s) failed", ctx.failures.len()).into())
    }
}
