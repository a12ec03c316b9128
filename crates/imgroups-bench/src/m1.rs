//! M1 (durable sends) and M4 (disk per message): `SendTextMessage` into a group of ten
//! accounts, so every send appends to ten logs and stores ten copies. M1: c=64 over 4 HTTP/2
//! channels, synchronous=FULL, against the bare tonic echo of the same RPC, ending with
//! kill -9 during sends, a restart, and a check that every acknowledged send is in all ten
//! logs. M4: the database's bytes (after a full checkpoint) per member log entry of N sends.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use imgroups_proto::pb;
use imgroups_proto::pb::chat_service_client::ChatServiceClient;
use imgroups_proto::pb::message_service_client::MessageServiceClient;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

use crate::client::{self, bearer, closed_loop, connect, req, Run};
use crate::proc::{file_len, Result};
use crate::seed::Seeder;
use crate::stats::{dur_us, num, spread, Round, Table};
use crate::w1::CHANNELS;
use crate::{progress, Ctx};

/// Members of the group, every one an account.
const MEMBERS: usize = 10;

/// After the send's tag: the rest of a typical plain text message (`seed::text`'s length).
const FILLER: &str = "running late, see you at the station at 6?";

/// A fresh data directory with the group's other nine members as accounts (made before the
/// server starts, as `imgroups account add` would); their addresses and tokens. The server's
/// default account is the tenth, and the sender.
async fn nine_accounts(dir: &Path, prefix: &str) -> Result<Vec<(String, String)>> {
    let seeder = Seeder::open(dir)?;
    let mut out = Vec::with_capacity(MEMBERS - 1);
    for k in 1..MEMBERS {
        let address = format!("{prefix}{k}@bench.test");
        let (_, token) = seeder.account(&address).await?;
        out.push((address, token));
    }
    seeder.close().await;
    Ok(out)
}

/// The default account creates the group of ten.
async fn ten_account_group(
    ch: Channel,
    auth: &AsciiMetadataValue,
    others: &[(String, String)],
) -> Result<String> {
    let mut chats = ChatServiceClient::new(ch);
    let resp = chats
        .create_chat(req(
            pb::CreateChatRequest {
                addresses: others.iter().map(|(a, _)| a.clone()).collect(),
                service: pb::ChatServiceType::Imessage as i32,
                initial_message: None,
                client_message_id: None,
            },
            auth,
        ))
        .await?;
    let guid = resp
        .into_inner()
        .chat
        .map(|c| c.guid)
        .ok_or("no chat in CreateChat response")?;
    Ok(guid)
}

/// Sends: worker `w`'s i-th text starts `{tag}.{w}.{i} `, so acknowledged sends can be looked
/// up in the logs afterwards.
async fn send_run(
    chans: &[Channel],
    auth: &AsciiMetadataValue,
    chat: &str,
    c: usize,
    dur: Duration,
    tag: &str,
) -> Run {
    let clients: Vec<MessageServiceClient<Channel>> = chans
        .iter()
        .cloned()
        .map(MessageServiceClient::new)
        .collect();
    closed_loop(c, dur, 1, |w, i| {
        let mut client = clients[w % clients.len()].clone();
        let request = req(
            pb::SendTextMessageRequest {
                chat_guid: chat.to_owned(),
                text: format!("{tag}.{w}.{i} {FILLER}"),
                ..Default::default()
            },
            auth,
        );
        async move { client.send_text_message(request).await.map(drop) }
    })
    .await
}

/// Every account's log holds every acknowledged send of `acked` as a `message.received`, and
/// is gap-free.
async fn check_acked_in_logs(
    ctx: &mut Ctx,
    chan: Channel,
    tokens: &[String],
    acked: &[(String, Vec<u64>)],
    what: &str,
) -> Result<()> {
    use pb::catch_up_events_response::Payload;
    use pb::message_change_event::Change;
    let mut worst = (0u64, 0u64);
    let mut total = 0;
    for token in tokens {
        let auth = bearer(token)?;
        let mut present = HashSet::new();
        let (cu, _) = client::catch_up_any(chan.clone(), &auth, None, false, |_, p| {
            if let Payload::MessageChanged(e) = p {
                if let Some(Change::MessageReceived(r)) = &e.change {
                    let text = r
                        .message
                        .as_ref()
                        .and_then(|m| m.content.as_ref())
                        .and_then(|c| c.text.as_deref())
                        .unwrap_or_default();
                    if let Some(tag) = text.split(' ').next() {
                        present.insert(tag.to_owned());
                    }
                }
            }
        })
        .await?;
        let (n, missing) = missing_acks(acked, &present);
        total = n;
        let gaps = cu.gaps + u64::from(cu.events != cu.head);
        worst = (worst.0.max(missing), worst.1.max(gaps));
    }
    ctx.check(
        worst == (0, 0),
        format!(
            "{what}: {total} acknowledged sends; in each of the {} members' logs at most {} missing and {} gap(s)",
            tokens.len(),
            worst.0,
            worst.1
        ),
    );
    Ok(())
}

fn missing_acks(acked: &[(String, Vec<u64>)], present: &HashSet<String>) -> (u64, u64) {
    let (mut total, mut missing) = (0u64, 0u64);
    for (tag, per_worker) in acked {
        for (w, n) in per_worker.iter().enumerate() {
            for i in 0..*n {
                total += 1;
                if !present.contains(&format!("{tag}.{w}.{i}")) {
                    missing += 1;
                }
            }
        }
    }
    (total, missing)
}

pub(crate) async fn run_m1(ctx: &mut Ctx) -> Result<()> {
    progress("M1: durable sends into a group of 10 accounts (SendTextMessage, synchronous=FULL)");
    let dir = ctx.fresh_dir("m1")?;
    let others = nine_accounts(&dir, "m1m").await?;
    let srv = ctx.imgroups(&dir, "full").await?;
    let me_token = srv.token.clone().ok_or("no token printed")?;
    let auth = bearer(&me_token)?;
    let bare = ctx.bare().await?;
    let chans = connect(&srv.url, CHANNELS).await?;
    let bchans = connect(&bare.url, CHANNELS).await?;
    let chat = ten_account_group(chans[0].clone(), &auth, &others).await?;
    let c = 64;

    let mut acked: Vec<(String, Vec<u64>)> = Vec::new();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let warm = Duration::from_secs_f64((ctx.scale.secs / 4.0).min(0.5));
    let run = send_run(&chans, &auth, &chat, 16, warm, "warm").await;
    acked.push(("warm".into(), run.ok_per_worker));
    send_run(&bchans, &auth, &chat, 16, warm, "warm").await;
    for r in 0..ctx.rounds {
        let tag = format!("s{r}");
        let cpu0 = srv.cpu_secs();
        let run = send_run(&chans, &auth, &chat, c, ctx.secs(), &tag).await;
        let cpu = srv.cpu_secs() - cpu0;
        if let Some(e) = &run.first_error {
            ctx.check(
                false,
                format!("M1 {tag}: {} send(s) failed: {e}", run.errors),
            );
        }
        a.push(Round::from_samples(run.ops(), run.secs, run.lat_us, cpu));
        acked.push((tag.clone(), run.ok_per_worker));

        let cpu0 = bare.cpu_secs();
        let run = send_run(&bchans, &auth, &chat, c, ctx.secs(), &tag).await;
        let cpu = bare.cpu_secs() - cpu0;
        b.push(Round::from_samples(run.ops(), run.secs, run.lat_us, cpu));
        progress(format!("M1: round {}/{} done", r + 1, ctx.rounds));
    }
    let peak_rss = srv.peak_rss_mib();

    // Durability: kill -9 in the middle of c=64 sends, restart, look for every ack in all ten
    // logs.
    let pid = srv.pid;
    let crash_after = ctx.secs() / 2;
    let (run, ()) = tokio::join!(
        send_run(&chans, &auth, &chat, c, ctx.secs() * 4, "crash"),
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
    srv.kill9().await;
    drop(chans);
    let srv = ctx.imgroups(&dir, "full").await?;
    let ch = connect(&srv.url, 1).await?.remove(0);
    let mut tokens = vec![me_token];
    tokens.extend(others.iter().map(|(_, t)| t.clone()));
    check_acked_in_logs(
        ctx,
        ch,
        &tokens,
        &acked,
        &format!("M1 kill -9 during c=64 sends ({crash_acks} acked in the crash burst), restart"),
    )
    .await?;
    srv.stop().await;
    bare.stop().await;

    let mut t = Table::new(
        "M1 durable sends: SendTextMessage into a group of 10 accounts (10 log entries and 10 stored copies per send), synchronous=FULL, 4 HTTP/2 channels; baseline = bare tonic answering the same RPC with the same Message, same concurrency",
        "sends/s",
    );
    t.pair("c=64", ("imgroups", &a), ("bare tonic", &b));
    let mut text = t.finish();
    let rate = spread(a.iter().map(|x| x.rate)).med;
    text.push_str(&format!(
        "\nLog entries appended: {} per s (10 per send). Server peak RSS (VmHWM) {peak_rss:.1} MiB.\n",
        num(rate * MEMBERS as f64)
    ));
    ctx.emit(&text);
    let ratio = spread(a.iter().zip(&b).map(|(x, y)| x.rate / y.rate));
    ctx.target(
        "M1 sendText c=64 into a 10-account group ≥ 0.5× bare tonic c=64",
        format!(
            "{:.2}× (min–max {:.2}–{:.2}); {}/s, p50 {}, p99 {}",
            ratio.med,
            ratio.min,
            ratio.max,
            num(rate),
            dur_us(spread(a.iter().map(|x| x.p50)).med),
            dur_us(spread(a.iter().map(|x| x.p99)).med)
        ),
        Some(ratio.med >= 0.5),
    );
    Ok(())
}

/// A table's or index's bytes (`dbstat`): name, pages' bytes, payload bytes.
pub(crate) type TableBytes = (String, u64, u64);

/// The database's size after a full checkpoint (the WAL folded in and truncated), and bytes
/// by table and index.
pub(crate) fn db_size(dir: &Path) -> Result<(u64, Vec<TableBytes>)> {
    let db = dir.join("imgroups.db");
    let conn = rusqlite::Connection::open(&db)?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let size = file_len(&db) + file_len(&dir.join("imgroups.db-wal"));
    let mut stmt = conn.prepare(
        "SELECT name, sum(pgsize), sum(payload) FROM dbstat GROUP BY name ORDER BY 2 DESC",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((size, rows))
}

/// Average stored length of the message in its delivery event (its JSON, or the reference
/// to its body: kinds 10 and 12) and of the message a member's copy stores (its JSON in
/// `chat_messages.body` before bodies were shared, else the shared body over the copies),
/// in bytes. Reads either schema, so that old and new servers compare.
fn json_lengths(dir: &Path) -> Result<(f64, f64)> {
    let conn = rusqlite::Connection::open(dir.join("imgroups.db"))?;
    let event: f64 = conn.query_row(
        "SELECT coalesce(avg(length(CAST(value AS BLOB))), 0) FROM events WHERE kind IN (10, 12)",
        [],
        |r| r.get(0),
    )?;
    let shared: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE name = 'message_bodies'",
        [],
        |r| r.get(0),
    )?;
    let body: f64 = conn.query_row(
        if shared {
            "SELECT coalesce((SELECT sum(length(body)) FROM message_bodies)
                 / nullif(CAST((SELECT count(*) FROM chat_messages) AS REAL), 0), 0)"
        } else {
            "SELECT coalesce(avg(length(CAST(body AS BLOB))), 0) FROM chat_messages"
        },
        [],
        |r| r.get(0),
    )?;
    Ok((event, body))
}

pub(crate) async fn run_m4(ctx: &mut Ctx) -> Result<()> {
    let n = ctx.scale.m4_sends;
    progress(format!(
        "M4: disk per message: {n} sends into a group of 10 accounts"
    ));
    let dir = ctx.fresh_dir("m4")?;
    let others = nine_accounts(&dir, "m4m").await?;
    let srv = ctx.imgroups(&dir, "full").await?;
    let token = srv.token.clone().ok_or("no token printed")?;
    let auth = bearer(&token)?;
    let chans = connect(&srv.url, CHANNELS).await?;
    let chat = ten_account_group(chans[0].clone(), &auth, &others).await?;
    drop(chans);
    srv.stop().await;
    let (before, before_tables) = db_size(&dir)?;

    let srv = ctx.imgroups(&dir, "full").await?;
    let chans = connect(&srv.url, CHANNELS).await?;
    let run = crate::client::closed_loop_capped(64, Duration::from_secs(3600), 1, Some(n), {
        let clients: Vec<MessageServiceClient<Channel>> = chans
            .iter()
            .cloned()
            .map(MessageServiceClient::new)
            .collect();
        let (auth, chat) = (auth.clone(), chat.clone());
        move |w, i| {
            let mut client = clients[w % clients.len()].clone();
            let request = req(
                pb::SendTextMessageRequest {
                    chat_guid: chat.clone(),
                    text: crate::seed::text(i * 64 + w as u64),
                    ..Default::default()
                },
                &auth,
            );
            async move { client.send_text_message(request).await.map(drop) }
        }
    })
    .await;
    if let Some(e) = &run.first_error {
        ctx.check(false, format!("M4 {} send(s) failed: {e}", run.errors));
    }
    let sent = run.ops();
    drop(chans);
    srv.stop().await;
    let (after, tables) = db_size(&dir)?;
    let (event_json, body_json) = json_lengths(&dir)?;
    let entries = sent * MEMBERS as u64;
    let per_entry = after.saturating_sub(before) as f64 / entries.max(1) as f64;
    ctx.check(sent == n, format!("M4 {sent} of {n} sends acknowledged"));

    let mut text = format!(
        "\n### M4 disk per message: {sent} sends of a {}-character plain text into a group of 10 accounts ({entries} member log entries), synchronous=FULL; database measured after the server stopped and a `wal_checkpoint(TRUNCATE)`\n\n| measure | value |\n|---|---|\n| database before the sends (accounts, group) | {} bytes |\n| database after | {} bytes |\n| **bytes per message per member log entry** | **{per_entry:.0}** |\n| the message in the log entry (`events.value`: JSON, or a body reference; average) | {event_json:.0} bytes |\n| the message per stored copy (`chat_messages.body` JSON, or the shared body over its copies; average) | {body_json:.0} bytes |\n\nBy table and index, growth per member log entry (pages; payload in brackets):\n\n| table / index | bytes per entry | payload per entry |\n|---|---|---|\n",
        crate::seed::text(0).chars().count(),
        before,
        after,
    );
    for (name, pages, payload) in &tables {
        let (p0, pl0) = before_tables
            .iter()
            .find(|(n0, _, _)| n0 == name)
            .map(|(_, p, pl)| (*p, *pl))
            .unwrap_or((0, 0));
        let grew = pages.saturating_sub(p0);
        if grew == 0 {
            continue;
        }
        text.push_str(&format!(
            "| {name} | {:.0} | {:.0} |\n",
            grew as f64 / entries.max(1) as f64,
            payload.saturating_sub(pl0) as f64 / entries.max(1) as f64
        ));
    }
    ctx.emit(&text);
    ctx.target(
        "M4 disk per plain text message per member log entry ≤ 400 B",
        format!("{per_entry:.0} B"),
        Some(per_entry <= 400.0),
    );
    Ok(())
}
