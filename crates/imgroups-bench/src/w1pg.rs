//! W1 on PostgreSQL: the W1 write load (SetDisplayName on distinct groups, 4 HTTP/2 channels)
//! against `imgroups serve --database-url`, c = 1 and 64, each round followed by (a) raw
//! tokio-postgres single-row commits at the same concurrency (`baseline::commit_one` on c
//! connections, a process of its own pinned like the server) and (b) the same load on
//! imgroups over SQLite (synchronous=FULL). Ends with kill -9 during writes, a restart on the
//! same database, and a check that every acknowledged write is in the log.

use std::fmt::Write as _;
use std::time::Duration;

use crate::client::{bearer, connect};
use crate::proc::{Cpu, Meter, Result};
use crate::stats::{dur_us, num, show, spread, Round};
use crate::w1::{check_acked_in_log, rename_groups, rename_run, CHANNELS};
use crate::{progress, Ctx};

const CONCURRENCY: [usize; 2] = [1, 64];
const SYSTEMS: [&str; 3] = ["imgroups-pg", "raw-pg commit", "imgroups-sqlite"];
const PG: usize = 0;
const RAW: usize = 1;
const SQLITE: usize = 2;

type Rounds = Vec<(Round, Cpu)>;

pub(crate) async fn run(ctx: &mut Ctx) -> Result<()> {
    progress("W1pg: durable writes on PostgreSQL, against raw PostgreSQL commits and SQLite");
    let db = ctx.fresh_db("w1").await?;
    let raw = ctx.fresh_db("raw").await?;
    let dir = ctx.fresh_dir("w1pg")?;
    let pg = ctx.imgroups_pg(&dir, &db.url).await?;
    let sq = ctx.imgroups(&ctx.fresh_dir("w1pg-sqlite")?, "full").await?;
    let pg_auth = bearer(pg.token.as_deref().ok_or("no token printed")?)?;
    let sq_auth = bearer(sq.token.as_deref().ok_or("no token printed")?)?;
    let pg_chans = connect(&pg.url, CHANNELS).await?;
    let sq_chans = connect(&sq.url, CHANNELS).await?;
    let n = ctx.scale.w1_groups;
    let pg_guids = rename_groups(&pg_chans, &pg_auth, n, "w1g").await?;
    let sq_guids = rename_groups(&sq_chans, &sq_auth, n, "w1g").await?;
    progress(format!("W1pg: {n} groups created on each server"));

    let mut acked: Vec<(String, Vec<u64>)> = Vec::new();
    let warm = Duration::from_secs_f64((ctx.scale.secs / 4.0).min(0.5));
    let run = rename_run(&pg_chans, &pg_auth, &pg_guids, false, 16, warm, "warm").await;
    acked.push(("warm".into(), run.ok_per_worker));
    rename_run(&sq_chans, &sq_auth, &sq_guids, false, 16, warm, "warm").await;

    // results[config][system]
    let mut results: Vec<[Rounds; 3]> = CONCURRENCY.iter().map(|_| Default::default()).collect();
    for r in 0..ctx.rounds {
        for (k, &c) in CONCURRENCY.iter().enumerate() {
            let tag = format!("d{c}r{r}");
            let meter = Meter::start(pg.pid);
            let run = rename_run(&pg_chans, &pg_auth, &pg_guids, false, c, ctx.secs(), &tag).await;
            let cpu = meter.stop();
            if let Some(e) = &run.first_error {
                ctx.check(
                    false,
                    format!(
                        "W1pg {tag} on PostgreSQL: {} write(s) failed: {e}",
                        run.errors
                    ),
                );
            }
            let round = Round::from_samples(run.ops(), run.secs, run.lat_us, cpu.own);
            results[k][PG].push((round, cpu));
            acked.push((tag.clone(), run.ok_per_worker));

            results[k][RAW].push(ctx.pg_commit_round(&raw.url, c).await?);

            let meter = Meter::start(sq.pid);
            let run = rename_run(&sq_chans, &sq_auth, &sq_guids, false, c, ctx.secs(), &tag).await;
            let cpu = meter.stop();
            if let Some(e) = &run.first_error {
                ctx.check(
                    false,
                    format!("W1pg {tag} on SQLite: {} write(s) failed: {e}", run.errors),
                );
            }
            let round = Round::from_samples(run.ops(), run.secs, run.lat_us, cpu.own);
            results[k][SQLITE].push((round, cpu));
        }
        progress(format!("W1pg: round {}/{} done", r + 1, ctx.rounds));
    }
    let peak_rss = pg.peak_rss_mib();
    sq.stop().await;
    drop(sq_chans);

    // Durability: kill -9 in the middle of c=64 writes, restart on the same database, look
    // for every ack.
    let pid = pg.pid;
    let crash_after = ctx.secs() / 2;
    let (run, ()) = tokio::join!(
        rename_run(
            &pg_chans,
            &pg_auth,
            &pg_guids,
            false,
            64,
            ctx.secs() * 4,
            "crash"
        ),
        async move {
            tokio::time::sleep(crash_after).await;
            let _ = std::process::Command::new("kill")
                .arg("-9")
                .arg(pid.to_string())
                .status();
        }
    );
    let crash_acks = run.ops();
    acked.push(("crash".into(), run.ok_per_worker));
    pg.kill9().await;
    drop(pg_chans);
    let pg = ctx.imgroups_pg(&dir, &db.url).await?;
    let chans = connect(&pg.url, 1).await?;
    check_acked_in_log(
        ctx,
        chans[0].clone(),
        &pg_auth,
        &acked,
        &format!(
            "W1pg kill -9 during c=64 writes on PostgreSQL ({crash_acks} acked in the crash burst), restart on the same database"
        ),
    )
    .await?;
    pg.stop().await;
    ctx.drop_db(db).await?;
    ctx.drop_db(raw).await?;

    let mut text = format!(
        "\n### W1pg durable writes on PostgreSQL: SetDisplayName on {n} distinct groups, 4 HTTP/2 channels; baselines = raw tokio-postgres single-row commits (`BEGIN; INSERT; COMMIT` pipelined, one connection per worker) and the same load on imgroups over SQLite (synchronous=FULL)\n\n| config | system | ops/s median (min–max) | p50 | p99 | p99.9 | process CPU µs/op | PostgreSQL CPU µs/op | all CPUs busy µs/op |\n|---|---|---|---|---|---|---|---|---|\n"
    );
    for (k, &c) in CONCURRENCY.iter().enumerate() {
        for (s, name) in SYSTEMS.iter().enumerate() {
            let rs = &results[k][s];
            let per_op = |f: fn(&Cpu) -> f64| {
                spread(rs.iter().map(|(r, cpu)| f(cpu) * 1e6 / r.ops.max(1.0))).med
            };
            let _ = writeln!(
                text,
                "| {} | {name} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} |",
                if s == 0 {
                    format!("c={c}")
                } else {
                    String::new()
                },
                show(spread(rs.iter().map(|(r, _)| r.rate)), num),
                dur_us(spread(rs.iter().map(|(r, _)| r.p50)).med),
                dur_us(spread(rs.iter().map(|(r, _)| r.p99)).med),
                dur_us(spread(rs.iter().map(|(r, _)| r.p999)).med),
                per_op(|x| x.own),
                per_op(|x| x.postgres),
                per_op(|x| x.machine),
            );
        }
    }
    let ratio = |k: usize, a: usize, b: usize| {
        spread(
            results[k][a]
                .iter()
                .zip(&results[k][b])
                .map(|((x, _), (y, _))| x.rate / y.rate),
        )
    };
    let two = |x: f64| format!("{x:.2}");
    text.push_str("\n| config | imgroups-pg / raw-pg commit, ops/s (min–max) | imgroups-pg / imgroups-sqlite, ops/s (min–max) | p99 imgroups-pg / raw-pg commit |\n|---|---|---|---|\n");
    for (k, &c) in CONCURRENCY.iter().enumerate() {
        let p99 = spread(
            results[k][PG]
                .iter()
                .zip(&results[k][RAW])
                .map(|((x, _), (y, _))| x.p99 / y.p99),
        );
        let _ = writeln!(
            text,
            "| c={c} | {} | {} | {} |",
            show(ratio(k, PG, RAW), two),
            show(ratio(k, PG, SQLITE), two),
            two(p99.med)
        );
    }
    let _ = writeln!(
        text,
        "\nProcess CPU = the imgroups server, or the raw-commit process; PostgreSQL CPU = the backends serving the benchmark's databases (not the WAL writer or checkpointer); all CPUs busy = /proc/stat over the round: the load generator, PostgreSQL and anything else running on the machine. imgroups-pg peak RSS (VmHWM) {peak_rss:.1} MiB."
    );
    ctx.emit(&text);

    let c64 = CONCURRENCY.iter().position(|&c| c == 64).unwrap_or(0);
    let c1 = CONCURRENCY.iter().position(|&c| c == 1).unwrap_or(0);
    let vs_raw = ratio(c64, PG, RAW).med;
    let vs_sqlite = ratio(c64, PG, SQLITE).med;
    let med = |k: usize, s: usize, f: fn(&Round) -> f64| {
        spread(results[k][s].iter().map(|(r, _)| f(r))).med
    };
    ctx.target(
        "W1pg c=64 on PostgreSQL ≥ 2× raw single-row commits c=64",
        format!(
            "{vs_raw:.2}× ({}/s vs {}/s)",
            num(med(c64, PG, |r| r.rate)),
            num(med(c64, RAW, |r| r.rate))
        ),
        Some(vs_raw >= 2.0),
    );
    ctx.target(
        "W1pg c=64 on PostgreSQL ≥ 0.3× imgroups on SQLite c=64",
        format!(
            "{vs_sqlite:.2}× ({}/s vs {}/s)",
            num(med(c64, PG, |r| r.rate)),
            num(med(c64, SQLITE, |r| r.rate))
        ),
        Some(vs_sqlite >= 0.3),
    );
    ctx.target(
        "W1pg c=1 latency on PostgreSQL, p50 / p99 (no target; raw commit and SQLite for reference)",
        format!(
            "{} / {} (raw {} / {}, SQLite {} / {})",
            dur_us(med(c1, PG, |r| r.p50)),
            dur_us(med(c1, PG, |r| r.p99)),
            dur_us(med(c1, RAW, |r| r.p50)),
            dur_us(med(c1, RAW, |r| r.p99)),
            dur_us(med(c1, SQLITE, |r| r.p50)),
            dur_us(med(c1, SQLITE, |r| r.p99)),
        ),
        None,
    );
    Ok(())
}
