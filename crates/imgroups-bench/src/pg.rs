//! PostgreSQL for the PG workloads (w1pg, xnode, w4pg): a fresh database per workload, created
//! on the server the admin URL names and dropped afterwards; the raw single-row commit
//! baseline (`imgroups_store_postgres::baseline`) as a process of its own, pinned like the
//! server; and what the report says about the database server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use imgroups_store_postgres::baseline;
use tonic::Status;

use crate::client::closed_loop;
use crate::proc::{self, Cpu, Meter, Proc, Result};
use crate::stats::Round;
use crate::Ctx;

/// The variable the PostgreSQL tests read; the harness takes its admin URL from it too.
pub(crate) const TEST_URL_VAR: &str = "IMGROUPS_TEST_DATABASE_URL";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A database of one workload's own.
pub(crate) struct Db {
    pub(crate) name: String,
    pub(crate) url: String,
}

/// `url` with any password replaced, for the report.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        // key=value form: hide a password=… pair.
        return url
            .split_whitespace()
            .map(|kv| {
                if kv.starts_with("password=") {
                    "password=***"
                } else {
                    kv
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &url[..scheme_end],
                &rest[..colon],
                &rest[at..]
            ),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// `url` naming database `name` instead (URL form `postgres://…/db?…`, or key=value form).
pub(crate) fn with_database(url: &str, name: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        // In key=value form a later key wins.
        return format!("{url} dbname={name}");
    };
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{host_part}/{name}{query}")
}

/// A connection to `url`, driven on the current runtime.
pub(crate) async fn client(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL at {}: {e}", redact(url)))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// One line about the database server for the report header.
pub(crate) async fn describe(admin: &str) -> Result<String> {
    let c = client(admin).await?;
    let mut out = Vec::new();
    for setting in [
        "server_version",
        "fsync",
        "synchronous_commit",
        "wal_sync_method",
        "full_page_writes",
        "shared_buffers",
        "max_connections",
    ] {
        let row = c.query_one(&format!("SHOW {setting}"), &[]).await?;
        out.push(format!("{setting}={}", row.get::<_, String>(0)));
    }
    Ok(format!(
        "{} ({}); a fresh database per workload (after a `CHECKPOINT`), dropped afterwards; PostgreSQL's processes are not pinned (they share every CPU with the rest)",
        redact(admin),
        out.join(", ")
    ))
}

impl Ctx {
    /// A new, empty database `imgroups_bench_<pid>_<n>_<tag>` on the admin URL's server.
    pub(crate) async fn fresh_db(&mut self, tag: &str) -> Result<Db> {
        let admin = self
            .database_url
            .clone()
            .ok_or("this workload needs --database-url")?;
        let name = format!(
            "imgroups_bench_{}_{}_{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let c = client(&admin).await?;
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| format!("CREATE DATABASE {name}: {e}"))?;
        self.databases.push(name.clone());
        // Flush what earlier workloads dirtied now rather than during this one (needs a
        // superuser or pg_checkpoint; without either, the workloads just share the noise).
        if let Err(e) = c.batch_execute("CHECKPOINT").await {
            crate::progress(format!("CHECKPOINT before the workload failed: {e}"));
        }
        Ok(Db {
            url: with_database(&admin, &name),
            name,
        })
    }

    /// Drops `db` (closing whatever is still connected to it).
    pub(crate) async fn drop_db(&mut self, db: Db) -> Result<()> {
        let admin = self.database_url.clone().ok_or("no --database-url")?;
        self.databases.retain(|n| *n != db.name);
        client(&admin)
            .await?
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name))
            .await
            .map_err(|e| format!("DROP DATABASE {}: {e}", db.name))?;
        Ok(())
    }

    /// Drops every database a failed workload left behind.
    pub(crate) async fn drop_leftover_dbs(&mut self) {
        let names = std::mem::take(&mut self.databases);
        for name in names {
            let url = with_database(self.database_url.as_deref().unwrap_or_default(), &name);
            if let Err(e) = self.drop_db(Db { name, url }).await {
                crate::progress(format!("cannot drop a benchmark database: {e}"));
            }
        }
    }

    /// Starts the real server on the PostgreSQL database at `url` (one more node if others
    /// run on it already).
    pub(crate) async fn imgroups_pg(&self, data: &std::path::Path, url: &str) -> Result<Proc> {
        let log = self.work.path().join("imgroups-pg.log");
        proc::spawn(
            &self.server_bin,
            &proc::serve_pg_args(data, url),
            self.placement.server_cpu,
            &log,
        )
        .await
    }

    /// One round of raw single-row commits at concurrency `c` on the database at `url` (own
    /// process, pinned like the server): the round and the CPU it took.
    pub(crate) async fn pg_commit_round(&self, url: &str, c: usize) -> Result<(Round, Cpu)> {
        let exe = proc::self_exe()?;
        let mut cmd = match self.placement.server_cpu {
            Some(cpu) => {
                let mut cmd = tokio::process::Command::new("taskset");
                cmd.arg("-c").arg(cpu.to_string()).arg(&exe);
                cmd
            }
            None => tokio::process::Command::new(&exe),
        };
        cmd.arg("pg-commit")
            .arg("--concurrency")
            .arg(c.to_string())
            .arg("--secs")
            .arg(self.scale.secs.to_string())
            .env("IMGROUPS_BENCH_PG_URL", url)
            .kill_on_drop(true);
        let out = cmd.output().await?;
        let text = String::from_utf8_lossy(&out.stdout);
        let values: HashMap<&str, f64> = text
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k, v.trim().parse().ok()?))
            })
            .collect();
        let get = |k: &str| {
            values.get(k).copied().ok_or_else(|| {
                format!(
                    "raw PostgreSQL commit baseline failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )
            })
        };
        Ok((
            Round {
                rate: get("commits_per_s")?,
                p50: get("p50_us")?,
                p99: get("p99_us")?,
                p999: get("p999_us")?,
                cpu_s: get("cpu_s")?,
                ops: get("commits")?,
            },
            Cpu {
                own: get("cpu_s")?,
                postgres: get("postgres_cpu_s")?,
                machine: get("machine_cpu_s")?,
            },
        ))
    }
}

/// `imgroups-bench pg-commit`: `c` connections, each committing one row per transaction
/// (`baseline::commit_one`) in a loop for `secs`; prints one `key value` line per figure.
pub(crate) async fn run_commits(url: &str, c: usize, secs: f64) -> Result<()> {
    drop(baseline::prepare(url).await?);
    let mut clients = Vec::with_capacity(c);
    for _ in 0..c {
        clients.push(baseline::connect(url).await?);
    }
    // Rows shaped like an event's (a chat GUID and a short name).
    let meter = Meter::start(std::process::id());
    let run = closed_loop(c, Duration::from_secs_f64(secs), 1, |w, i| {
        let client = clients[w].clone();
        async move {
            let body = format!("any;+;chat000000000000000001 raw.{w}.{i}");
            baseline::commit_one(&client, &body)
                .await
                .map_err(|e| Status::internal(e.message))
        }
    })
    .await;
    let cpu = meter.stop();
    if let Some(e) = &run.first_error {
        return Err(format!("{} commit(s) failed: {e}", run.errors).into());
    }
    let r = Round::from_samples(run.ops(), run.secs, run.lat_us, cpu.own);
    println!("commits {}", r.ops);
    println!("commits_per_s {:.1}", r.rate);
    println!("p50_us {}", r.p50);
    println!("p99_us {}", r.p99);
    println!("p999_us {}", r.p999);
    println!("cpu_s {:.3}", cpu.own);
    println!("postgres_cpu_s {:.3}", cpu.postgres);
    println!("machine_cpu_s {:.3}", cpu.machine);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5432/test", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            with_database("host=h user=u dbname=test", "x"),
            "host=h user=u dbname=test dbname=x"
        );
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/test"),
            "postgres://u:***@h:5432/test"
        );
        assert_eq!(
            redact("postgres://u@h:5432/test"),
            "postgres://u@h:5432/test"
        );
        assert_eq!(redact("host=h password=secret"), "host=h password=***");
    }
}
