//! R1: a simulator reset of a populated world, as a test suite does it between tests.
//!
//! The world: one account in `reset_groups` groups (each with two people who are not
//! accounts), `reset_messages` messages spread evenly over them — seeded straight into the
//! data directory (the engine's own rules, see [`crate::seed`]) while the server runs, as
//! `imgroups sim act` would. The measure: wall time of `POST /console/api/sim:reset` with an
//! admin token against the running server (synchronous=FULL), from the request's first byte
//! to its last, per round; the world is seeded again before every round. Checked: the
//! answer is 200, and afterwards no group, message copy or log entry is left.

use std::path::Path;
use std::time::Instant;

use imgroups_core::AccountId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proc::Result;
use crate::seed::{create_group, say, text, Seeder};
use crate::stats::spread;
use crate::{progress, Ctx};

/// Commands per seeding transaction.
const PER_TX: u64 = 5_000;

/// Groups, message copies and log entries in the data directory.
fn world(dir: &Path) -> Result<(i64, i64, i64)> {
    let conn = rusqlite::Connection::open_with_flags(
        dir.join("imgroups.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    Ok(conn.query_row(
        "SELECT (SELECT count(*) FROM groups), (SELECT count(*) FROM chat_messages), \
         (SELECT count(*) FROM events)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?)
}

/// `me` creates `groups` groups and says `messages` messages, round robin over them.
async fn seed_world(seeder: &Seeder, me: AccountId, groups: u64, messages: u64) -> Result<()> {
    let mut guids: Vec<String> = Vec::with_capacity(groups as usize);
    let mut made = 0u64;
    while made < groups {
        let (lo, hi) = (made, (made + PER_TX).min(groups));
        let batch = seeder
            .run(move |tx| {
                (lo..hi)
                    .map(|g| {
                        create_group(
                            tx,
                            me,
                            &[format!("p{g}a@bench.test"), format!("p{g}b@bench.test")],
                        )
                    })
                    .collect::<imgroups_core::Result<Vec<_>>>()
            })
            .await?;
        guids.extend(batch);
        made = hi;
    }
    let guids = std::sync::Arc::new(guids);
    let mut said = 0u64;
    while said < messages {
        let (lo, hi) = (said, (said + PER_TX).min(messages));
        let guids = guids.clone();
        seeder
            .run(move |tx| {
                for m in lo..hi {
                    say(tx, me, &guids[(m % groups) as usize], &text(m))?;
                }
                Ok(())
            })
            .await?;
        said = hi;
    }
    Ok(())
}

/// One HTTP/1.1 POST with a JSON body on a fresh loopback connection: the status and the
/// whole answer.
async fn post(addr: &str, path: &str, token: &str, body: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {answer:?}"))?;
    Ok((status, answer))
}

pub(crate) async fn run(ctx: &mut Ctx) -> Result<()> {
    let (groups, messages) = (ctx.scale.reset_groups, ctx.scale.reset_messages);
    progress(format!(
        "R1: sim reset of {groups} groups and {messages} messages, {} round(s)",
        ctx.rounds
    ));
    let dir = ctx.fresh_dir("reset")?;
    let seeder = Seeder::open(&dir)?;
    let (me, _) = seeder.account("reset@bench.test").await?;
    let admin = seeder.admin_token().await?;
    let srv = ctx.imgroups(&dir, "full").await?;
    let http = srv
        .http
        .clone()
        .ok_or("the server printed no `http listening on` line")?;
    let (mut millis, mut cpu_millis) = (Vec::new(), Vec::new());
    for round in 0..ctx.rounds {
        let started = Instant::now();
        seed_world(&seeder, me, groups, messages).await?;
        let (g, copies, entries) = world(&dir)?;
        progress(format!(
            "R1 round {}: seeded {g} groups, {copies} message copies, {entries} log entries in {:.1} s",
            round + 1,
            started.elapsed().as_secs_f64()
        ));
        let cpu = srv.cpu_secs();
        let at = Instant::now();
        let (status, answer) = post(&http, "/console/api/sim:reset", &admin, "{}").await?;
        let took = at.elapsed().as_secs_f64() * 1e3;
        cpu_millis.push((srv.cpu_secs() - cpu) * 1e3);
        ctx.check(
            status == 200,
            if status == 200 {
                "R1 reset answered 200".to_owned()
            } else {
                format!("R1 reset answered {status} (expected 200): {answer:.300}")
            },
        );
        let left = world(&dir)?;
        ctx.check(
            left == (0, 0, 0),
            format!("R1 after the reset: {left:?} groups, message copies, log entries left (expected none)"),
        );
        millis.push(took);
    }
    seeder.close().await;
    srv.stop().await;
    let s = spread(millis.iter().copied());
    let c = spread(cpu_millis.iter().copied());
    ctx.emit(&format!(
        "\n### R1 simulator reset: {groups} groups, {messages} messages (one account), `POST /console/api/sim:reset` against the running server, synchronous=FULL\n\n| measure | median | min | max |\n|---|---|---|---|\n| reset, request to answer | {:.0} ms | {:.0} ms | {:.0} ms |\n| server CPU during the reset (user + system, less sensitive to a busy host) | {:.0} ms | {:.0} ms | {:.0} ms |\n",
        s.med, s.min, s.max, c.med, c.min, c.max
    ));
    ctx.target(
        format!("R1 reset of {groups} groups and {messages} messages on SQLite ≤ 200 ms"),
        format!("{:.0} ms (min–max {:.0}–{:.0})", s.med, s.min, s.max),
        (!ctx.smoke).then_some(s.med <= 200.0),
    );
    Ok(())
}
