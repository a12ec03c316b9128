//! W4 on PostgreSQL: catch-up (CatchUpEvents after=0, one stream) over a long log in
//! `imgroups serve --database-url`, rounds alternating with the bare tonic stream of as many
//! synthetic events, and with imgroups on SQLite over W4's dataset when W4 ran in the same
//! invocation. Writing a million events through the API would take minutes here, so the log
//! is loaded with SQL: a few groups are created and renamed through the API, and the rest of
//! the log is those renames cloned by one `INSERT … SELECT generate_series`, with the
//! account's head and the writer's epoch set as the server itself would.

use std::fmt::Write as _;
use std::time::Instant;

use imgroups_core::model::Change;
use imgroups_core::port::tx::stored;
use imgroups_proto::pb;
use imgroups_proto::pb::group_service_client::GroupServiceClient;

use crate::client::{self, bearer, connect, create_groups, req};
use crate::proc::{Cpu, Meter, Proc, Result};
use crate::stats::{dur_us, num, show, spread, Round};
use crate::{pg, progress, Ctx};

/// Groups made through the API whose renames the loaded log repeats.
const TEMPLATE_GROUPS: usize = 16;

/// How the log was made, for the report.
struct Loaded {
    through_api: u64,
    events: u64,
    insert_secs: f64,
    vacuum_secs: f64,
}

/// Makes the default account's log `events` long on the (stopped) server's database: the
/// renames made through the API repeated, sequences following on, times 1 µs apart.
async fn load_log(url: &str, address: &str, events: u64) -> Result<Loaded> {
    let c = pg::client(url).await?;
    let row = c
        .query_one(
            "SELECT id, head_seq FROM accounts WHERE address = $1",
            &[&address],
        )
        .await?;
    let (account, head): (i64, i64) = (row.get(0), row.get(1));
    let (kind, _) = stored::encode(&Change::DisplayNameChanged {
        display_name: String::new(),
    });
    let templates: i64 = c
        .query_one(
            "SELECT count(*) FROM events WHERE account_id = $1 AND kind = $2",
            &[&account, &kind],
        )
        .await?
        .get(0);
    let target = i64::try_from(events)?;
    if templates == 0 || head >= target {
        return Err(format!(
            "cannot load the log: {templates} renames to repeat, head {head}, {target} events wanted"
        )
        .into());
    }
    let t = Instant::now();
    c.batch_execute("BEGIN").await?;
    c.execute(
        "INSERT INTO events (account_id, seq, chat_guid, occurred_at, is_from_me, actor, kind, value)
         SELECT t.account_id, s, t.chat_guid, last.at + (s - $2::bigint) * 1000, t.is_from_me,
                t.actor, t.kind, 's' || s
         FROM generate_series($2::bigint + 1, $3::bigint) AS s
         CROSS JOIN (SELECT max(occurred_at) AS at FROM events WHERE account_id = $1::bigint)
           AS last
         JOIN (SELECT row_number() OVER (ORDER BY seq) - 1 AS i, e.*
               FROM events e WHERE e.account_id = $1::bigint AND e.kind = $4::bigint) AS t
           ON t.i = s % $5::bigint",
        &[&account, &head, &target, &kind, &templates],
    )
    .await?;
    c.execute(
        "UPDATE accounts SET head_seq = $2 WHERE id = $1",
        &[&account, &target],
    )
    .await?;
    // What every batch does: whatever a writer cached is stale now.
    c.execute(
        "UPDATE writer_state SET epoch = epoch + 1 WHERE id = 1",
        &[],
    )
    .await?;
    c.batch_execute("COMMIT").await?;
    let insert_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    c.batch_execute("VACUUM (ANALYZE) events").await?;
    Ok(Loaded {
        through_api: head as u64,
        events,
        insert_secs,
        vacuum_secs: t.elapsed().as_secs_f64(),
    })
}

/// One catch-up round against `proc` (`bare_events`: ask the bare stream for that many).
async fn round(
    proc: &Proc,
    ch: &tonic::transport::Channel,
    auth: &tonic::metadata::AsciiMetadataValue,
    bare_events: Option<u64>,
    expect: u64,
    bad: &mut Vec<String>,
) -> Result<(Round, Cpu)> {
    let meter = Meter::start(proc.pid);
    let cu = client::catch_up(ch.clone(), auth, bare_events, |_, _| {}).await?;
    let cpu = meter.stop();
    if cu.events != expect || cu.head != expect || cu.gaps != 0 {
        bad.push(format!(
            "{} events, head {}, {} gaps",
            cu.events, cu.head, cu.gaps
        ));
    }
    Ok((
        Round {
            rate: cu.events as f64 / cu.secs,
            p50: cu.first_event_s * 1e6,
            p99: f64::NAN,
            p999: f64::NAN,
            cpu_s: cpu.own,
            ops: cu.events as f64,
        },
        cpu,
    ))
}

pub(crate) async fn run(ctx: &mut Ctx) -> Result<()> {
    let expect = ctx.scale.big_events;
    progress(format!("W4pg: catch-up over {expect} events on PostgreSQL"));
    let db = ctx.fresh_db("w4").await?;
    let dir = ctx.fresh_dir("w4pg")?;
    let srv = ctx.imgroups_pg(&dir, &db.url).await?;
    let token = srv.token.clone().ok_or("no token printed")?;
    let me = srv.account.clone().ok_or("no account printed")?;
    let auth = bearer(&token)?;
    {
        let chans = connect(&srv.url, 1).await?;
        let guids = create_groups(
            &chans,
            TEMPLATE_GROUPS,
            TEMPLATE_GROUPS,
            |i| vec![format!("w4p{i}x@bench.test"), format!("w4p{i}y@bench.test")],
            |_| auth.clone(),
            false,
        )
        .await?;
        let mut groups = GroupServiceClient::new(chans[0].clone());
        for (i, guid) in guids.iter().enumerate() {
            groups
                .set_display_name(req(
                    pb::SetDisplayNameRequest {
                        chat_guid: guid.clone(),
                        display_name: format!("t{i}"),
                        client_message_id: None,
                    },
                    &auth,
                ))
                .await?;
        }
    }
    srv.stop().await;
    progress(format!("W4pg: loading {expect} events with SQL"));
    let loaded = load_log(&db.url, &me, expect).await?;
    progress(format!(
        "W4pg: loaded in {:.1} s (+ {:.1} s VACUUM ANALYZE)",
        loaded.insert_secs, loaded.vacuum_secs
    ));

    let srv = ctx.imgroups_pg(&dir, &db.url).await?;
    let bare = ctx.bare().await?;
    // The SQLite server on W4's dataset, if W4 ran and its log is as long.
    let sqlite = match ctx.big.as_ref() {
        Some(big) if big.me_events == expect => {
            let (dir, token) = (big.dir.clone(), big.token.clone());
            Some((ctx.imgroups(&dir, "full").await?, bearer(&token)?))
        }
        _ => None,
    };
    let ch = connect(&srv.url, 1).await?.remove(0);
    let bch = connect(&bare.url, 1).await?.remove(0);
    let sch = match &sqlite {
        Some((s, _)) => Some(connect(&s.url, 1).await?.remove(0)),
        None => None,
    };
    // Warm-up pass on each (buffers, page cache, allocator).
    client::catch_up(ch.clone(), &auth, None, |_, _| {}).await?;
    client::catch_up(bch.clone(), &auth, Some(expect), |_, _| {}).await?;
    let mut sqlite = match (sqlite, &sch) {
        (Some((sproc, sauth)), Some(sch)) => {
            let cu = client::catch_up(sch.clone(), &sauth, None, |_, _| {}).await?;
            if cu.head == expect {
                Some((sproc, sauth))
            } else {
                // W5 wrote to the dataset since: not the same log any more.
                sproc.stop().await;
                None
            }
        }
        (other, _) => other,
    };
    let (mut a, mut b, mut s) = (Vec::new(), Vec::new(), Vec::new());
    let (mut bad, mut bare_bad) = (Vec::new(), Vec::new());
    for _ in 0..ctx.rounds {
        a.push(round(&srv, &ch, &auth, None, expect, &mut bad).await?);
        b.push(round(&bare, &bch, &auth, Some(expect), expect, &mut bare_bad).await?);
        if let (Some((sproc, sauth)), Some(sch)) = (&sqlite, &sch) {
            s.push(round(sproc, sch, sauth, None, expect, &mut bad).await?);
        }
    }
    let peak = srv.peak_rss_mib();
    srv.stop().await;
    bare.stop().await;
    if let Some((sproc, _)) = sqlite.take() {
        sproc.stop().await;
    }
    ctx.drop_db(db).await?;
    ctx.check(
        bad.is_empty(),
        format!(
            "W4pg every catch-up returned exactly 1..{expect} in order then complete({expect}){}",
            bad.first().map(|e| format!(": {e}")).unwrap_or_default()
        ),
    );

    let mut text = format!(
        "\n### W4pg catch-up on PostgreSQL: CatchUpEvents(after=0) over a log of {expect} events, one stream; baseline = bare tonic stream of as many synthetic events of the same shape{}\n\nHow the log was loaded: {} events through the API ({TEMPLATE_GROUPS} groups created and renamed once), then events {}..{} **with SQL**: the {TEMPLATE_GROUPS} renames repeated by one `INSERT … SELECT generate_series` into `events`, `accounts.head_seq` set and `writer_state.epoch` bumped in the same transaction ({:.1} s), then `VACUUM (ANALYZE) events` ({:.1} s); the server was stopped meanwhile and started again to measure.\n\n| system | events/s median (min–max) | time to first event | server CPU s/round | CPU µs/event | PostgreSQL CPU µs/event | ratio events/s vs bare (min–max) |\n|---|---|---|---|---|---|---|\n",
        if s.is_empty() {
            ""
        } else {
            "; and imgroups on SQLite over W4's dataset (same length), same invocation"
        },
        loaded.through_api,
        loaded.through_api + 1,
        loaded.events,
        loaded.insert_secs,
        loaded.vacuum_secs,
    );
    let vs_bare =
        |x: &[(Round, Cpu)]| spread(x.iter().zip(&b).map(|((x, _), (y, _))| x.rate / y.rate));
    let mut systems: Vec<(&str, &Vec<(Round, Cpu)>)> =
        vec![("imgroups-pg", &a), ("bare stream", &b)];
    if !s.is_empty() {
        systems.push(("imgroups-sqlite", &s));
    }
    for (name, r) in systems {
        let _ = writeln!(
            text,
            "| {name} | {} | {} | {:.2} | {:.2} | {:.2} | {} |",
            show(spread(r.iter().map(|(x, _)| x.rate)), num),
            show(spread(r.iter().map(|(x, _)| x.p50)), dur_us),
            spread(r.iter().map(|(x, _)| x.cpu_s)).med,
            spread(r.iter().map(|(x, _)| x.cpu_s * 1e6 / x.ops.max(1.0))).med,
            spread(r.iter().map(|(x, c)| c.postgres * 1e6 / x.ops.max(1.0))).med,
            show(vs_bare(r), |x| format!("{x:.2}")),
        );
    }
    let _ = writeln!(text, "\nServer peak RSS during W4pg {peak:.1} MiB.");
    if !s.is_empty() {
        let vs = spread(a.iter().zip(&s).map(|((x, _), (y, _))| x.rate / y.rate));
        let _ = writeln!(
            text,
            "imgroups-pg / imgroups-sqlite events/s: {}.",
            show(vs, |x| format!("{x:.2}"))
        );
    }
    ctx.emit(&text);
    let rate = spread(a.iter().map(|(x, _)| x.rate)).med;
    ctx.target(
        "W4pg catch-up on PostgreSQL ≥ 300k events/s (log loaded with SQL)",
        format!("{}/s ({:.0}% of bare)", num(rate), vs_bare(&a).med * 100.0),
        Some(rate >= 300_000.0),
    );
    Ok(())
}
