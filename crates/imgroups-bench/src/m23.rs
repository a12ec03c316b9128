//! M2 (the first page of a very long chat) and M3 (catch-up of a long log of every kind of
//! event). Both datasets are seeded in-process through the engine's rules ([`crate::seed`]),
//! then served by the real server with `--durability full`.

use std::collections::HashSet;
use std::time::Duration;

use imgroups_proto::pb;
use imgroups_proto::pb::message_service_client::MessageServiceClient;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

use crate::client::{self, bearer, closed_loop, connect, req, Run};
use crate::proc::Result;
use crate::stats::{dur_us, num, show, spread, Round, Table};
use crate::{progress, seed, Ctx};

/// Page size of M2 (the API's default).
const PAGE: i32 = 50;

fn list_request(chat: &str, token: Option<String>, size: i32) -> pb::ListChatMessagesRequest {
    pb::ListChatMessagesRequest {
        chat_guid: chat.to_owned(),
        page_size: Some(size),
        page_token: token,
        ..Default::default()
    }
}

/// One client asking for the same page again and again (latency at c=1).
async fn list_run(
    ch: &Channel,
    auth: &AsciiMetadataValue,
    chat: &str,
    token: Option<&str>,
    dur: Duration,
) -> Run {
    let client = MessageServiceClient::new(ch.clone()).max_decoding_message_size(64 << 20);
    closed_loop(1, dur, 1, |_, _| {
        let mut client = client.clone();
        let request = req(list_request(chat, token.map(str::to_owned), PAGE), auth);
        async move {
            let page = client.list_chat_messages(request).await?.into_inner();
            match page.messages.len() == PAGE as usize {
                true => Ok(()),
                false => Err(tonic::Status::internal(format!(
                    "a page of {} messages",
                    page.messages.len()
                ))),
            }
        }
    })
    .await
}

fn text_of(m: &pb::Message) -> &str {
    m.content
        .as_ref()
        .and_then(|c| c.text.as_deref())
        .unwrap_or_default()
}

/// The first two pages hold the newest messages, newest first, the second starting where the
/// first ended; in smoke mode, paging reaches every message once.
async fn check_pages(
    ctx: &mut Ctx,
    ch: &Channel,
    auth: &AsciiMetadataValue,
    chat: &str,
    n: u64,
) -> Result<Option<String>> {
    let mut client = MessageServiceClient::new(ch.clone()).max_decoding_message_size(64 << 20);
    let first = client
        .list_chat_messages(req(list_request(chat, None, PAGE), auth))
        .await?
        .into_inner();
    let expect = |k: u64| seed::text(n - 1 - k);
    let first_ok = first.messages.len() == PAGE as usize
        && first
            .messages
            .iter()
            .enumerate()
            .all(|(k, m)| text_of(m) == expect(k as u64))
        && first.next_page_token.is_some();
    let second = client
        .list_chat_messages(req(
            list_request(chat, first.next_page_token.clone(), PAGE),
            auth,
        ))
        .await?
        .into_inner();
    let second_ok = second
        .messages
        .iter()
        .enumerate()
        .all(|(k, m)| text_of(m) == expect(PAGE as u64 + k as u64))
        && second.messages.len() as u64 == (n - PAGE as u64).min(PAGE as u64);
    ctx.check(
        first_ok && second_ok,
        format!("M2 first page: the newest {PAGE} of {n} messages, newest first, with a token; the second page follows on"),
    );
    if ctx.smoke {
        let mut seen = HashSet::new();
        let mut token = None;
        let mut pages = 0;
        loop {
            let page = client
                .list_chat_messages(req(list_request(chat, token, 1000), auth))
                .await?
                .into_inner();
            pages += 1;
            for m in &page.messages {
                seen.insert(m.guid.clone());
            }
            token = page.next_page_token;
            if token.is_none() || pages > n {
                break;
            }
        }
        ctx.check(
            seen.len() as u64 == n,
            format!(
                "M2 paging the whole chat (pages of 1000) returned {} distinct of {n} messages",
                seen.len()
            ),
        );
    }
    Ok(first.next_page_token)
}

pub(crate) async fn run_m2(ctx: &mut Ctx) -> Result<()> {
    let n = ctx.scale.m2_messages.max(2 * PAGE as u64);
    progress(format!(
        "M2: ListChatMessages first page of a chat of {n} messages"
    ));
    let dir = ctx.fresh_dir("m2")?;
    let t = std::time::Instant::now();
    let big = seed::one_big_chat(&dir, n).await?;
    let (chat, quiet) = (big.chat, big.quiet);
    let seed_secs = t.elapsed().as_secs_f64();
    let auth = bearer(&big.token)?;
    let srv = ctx.imgroups(&dir, "full").await?;
    let bare = ctx.bare().await?;
    let ch = connect(&srv.url, 1).await?.remove(0);
    let bch = connect(&bare.url, 1).await?.remove(0);
    let page2 = check_pages(ctx, &ch, &auth, &chat, n).await?;

    let warm = Duration::from_secs_f64((ctx.scale.secs / 4.0).min(0.5));
    list_run(&ch, &auth, &chat, None, warm).await;
    list_run(&bch, &auth, &chat, None, warm).await;
    // A page from the middle of the chat, for how a page's cost grows with its depth. Reached
    // by paging it would take n/50 calls; the token is the first page's with the middle
    // place instead (tokens are `{place:x}.{scope}`; the bench knows, clients must not).
    let middle = page2
        .as_deref()
        .and_then(|t| t.split_once('.'))
        .and_then(|(place, scope)| {
            let place = u64::from_str_radix(place, 16).ok()?;
            Some(format!("{:x}.{scope}", place.saturating_sub(n / 2)))
        });
    let configs: [(&str, &str, Option<&str>); 4] = [
        ("first page", &chat, None),
        ("second page (the first's token)", &chat, page2.as_deref()),
        ("a page from the middle", &chat, middle.as_deref()),
        (
            "first page of a quiet chat (60 messages, all older)",
            &quiet,
            None,
        ),
    ];
    let mut a: Vec<Vec<Round>> = vec![Vec::new(); configs.len()];
    let mut b: Vec<Vec<Round>> = vec![Vec::new(); configs.len()];
    for r in 0..ctx.rounds {
        for (k, (name, chat, token)) in configs.iter().enumerate() {
            let cpu0 = srv.cpu_secs();
            let run = list_run(&ch, &auth, chat, *token, ctx.secs()).await;
            let cpu = srv.cpu_secs() - cpu0;
            if let Some(e) = &run.first_error {
                ctx.check(
                    false,
                    format!("M2 {name}: {} call(s) failed: {e}", run.errors),
                );
            }
            a[k].push(Round::from_samples(run.ops(), run.secs, run.lat_us, cpu));
            let cpu0 = bare.cpu_secs();
            let run = list_run(&bch, &auth, chat, *token, ctx.secs()).await;
            let cpu = bare.cpu_secs() - cpu0;
            b[k].push(Round::from_samples(run.ops(), run.secs, run.lat_us, cpu));
        }
        progress(format!("M2: round {}/{} done", r + 1, ctx.rounds));
    }
    let peak = srv.peak_rss_mib();
    srv.stop().await;
    bare.stop().await;

    let mut t = Table::new(
        &format!("M2 ListChatMessages (pageSize {PAGE}) on a chat of {n} messages, c=1, synchronous=FULL server; baseline = bare tonic answering {PAGE} synthetic messages of the same shape"),
        "pages/s",
    );
    for (k, (name, _, _)) in configs.iter().enumerate() {
        t.pair(name, ("imgroups", &a[k]), ("bare tonic", &b[k]));
    }
    let mut text = t.finish();
    text.push_str(&format!(
        "\nSeeded in-process through the engine's rules in {seed_secs:.1} s (`seed::one_big_chat`). Server peak RSS {peak:.1} MiB.\n"
    ));
    ctx.emit(&text);
    let p99 = spread(a[0].iter().map(|x| x.p99));
    ctx.target(
        "M2 listInChat first page (50) of a 1M-message chat: p99 ≤ 5 ms",
        format!(
            "p99 {} (min–max {}–{}), p50 {}",
            dur_us(p99.med),
            dur_us(p99.min),
            dur_us(p99.max),
            dur_us(spread(a[0].iter().map(|x| x.p50)).med)
        ),
        Some(p99.med <= 5000.0),
    );
    Ok(())
}

pub(crate) async fn run_m3(ctx: &mut Ctx) -> Result<()> {
    let events = ctx.scale.m3_events;
    progress(format!("M3: catch-up of a mixed log of {events} events"));
    let dir = ctx.fresh_dir("m3")?;
    let mixed = seed::mixed_log(&dir, events).await?;
    let auth = bearer(&mixed.token)?;
    let expect = mixed.head;
    let srv = ctx.imgroups(&dir, "full").await?;
    let bare = ctx.bare().await?;
    let ch = connect(&srv.url, 1).await?.remove(0);
    let bch = connect(&bare.url, 1).await?.remove(0);
    // Warm-up pass on each (page cache, allocator).
    let (_, kinds) = client::catch_up_any(ch.clone(), &auth, None, false, |_, _| {}).await?;
    client::catch_up_any(bch.clone(), &auth, Some(expect), true, |_, _| {}).await?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut bad = Vec::new();
    for r in 0..ctx.rounds {
        let cpu0 = srv.cpu_secs();
        let (cu, _) = client::catch_up_any(ch.clone(), &auth, None, false, |_, _| {}).await?;
        let cpu = srv.cpu_secs() - cpu0;
        if cu.events != expect || cu.head != expect || cu.gaps != 0 {
            bad.push(format!(
                "{} events, head {}, {} gaps",
                cu.events, cu.head, cu.gaps
            ));
        }
        a.push(Round {
            rate: cu.events as f64 / cu.secs,
            p50: cu.first_event_s * 1e6,
            p99: f64::NAN,
            p999: f64::NAN,
            cpu_s: cpu,
            ops: cu.events as f64,
        });
        let cpu0 = bare.cpu_secs();
        let (cu, _) =
            client::catch_up_any(bch.clone(), &auth, Some(expect), true, |_, _| {}).await?;
        let cpu = bare.cpu_secs() - cpu0;
        b.push(Round {
            rate: cu.events as f64 / cu.secs,
            p50: cu.first_event_s * 1e6,
            p99: f64::NAN,
            p999: f64::NAN,
            cpu_s: cpu,
            ops: cu.events as f64,
        });
        progress(format!("M3: round {}/{} done", r + 1, ctx.rounds));
    }
    let peak = srv.peak_rss_mib();
    srv.stop().await;
    bare.stop().await;
    ctx.check(
        bad.is_empty(),
        format!(
            "M3 every catch-up returned exactly 1..{expect} in order then complete({expect}){}",
            bad.first().map(|e| format!(": {e}")).unwrap_or_default()
        ),
    );
    ctx.check(
        kinds.group > 0 && kinds.message > 0 && kinds.chat > 0 && kinds.other == 0,
        format!(
            "M3 the log mixes kinds: {} group, {} message, {} chat events",
            kinds.group, kinds.message, kinds.chat
        ),
    );
    let mut text = format!(
        "\n### M3 catch-up of a mixed log: CatchUpEvents(after=0) over {expect} events ({} group, {} message, {} chat; {} groups), one stream; baseline = bare tonic stream of as many synthetic events of the same kinds, shapes and proportions\n\nSeeded in-process through the engine's rules in {:.1} s (`seed::mixed_log`).\n\n| system | events/s median (min–max) | time to first event | server CPU s/round | CPU µs/event | ratio events/s (min–max) |\n|---|---|---|---|---|---|\n",
        kinds.group, kinds.message, kinds.chat, mixed.groups, mixed.seed_secs
    );
    let ratio = spread(a.iter().zip(&b).map(|(x, y)| x.rate / y.rate));
    for (name, r, ratio) in [
        ("imgroups", &a, show(ratio, |x| format!("{x:.2}"))),
        ("bare stream", &b, "1".into()),
    ] {
        text.push_str(&format!(
            "| {name} | {} | {} | {:.2} | {:.2} | {ratio} |\n",
            show(spread(r.iter().map(|x| x.rate)), num),
            show(spread(r.iter().map(|x| x.p50)), dur_us),
            spread(r.iter().map(|x| x.cpu_s)).med,
            spread(r.iter().map(|x| x.cpu_s * 1e6 / x.ops.max(1.0))).med,
        ));
    }
    text.push_str(&format!("\nServer peak RSS during M3 {peak:.1} MiB.\n"));
    ctx.emit(&text);
    let rate = spread(a.iter().map(|x| x.rate)).med;
    ctx.target(
        "M3 catch-up of a mixed 1M-event log ≥ 1M events/s",
        format!("{}/s ({:.2}× the bare stream)", num(rate), ratio.med),
        Some(rate >= 1e6),
    );
    Ok(())
}
