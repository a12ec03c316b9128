//! W2: membership churn. Add then remove a participant in 8-member groups, c = 16, against the
//! bare tonic echo of the same RPCs. Ends with kill -9 during churn and a log check.

use std::collections::HashMap;
use std::time::Duration;

use imgroups_proto::pb;
use imgroups_proto::pb::group_service_client::GroupServiceClient;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

use crate::client::{self, bearer, closed_loop, connect, create_groups, req, Run};
use crate::proc::Result;
use crate::stats::{num, spread, Round, Table};
use crate::w1::CHANNELS;
use crate::{progress, Ctx};

const C: usize = 16;

fn churner(w: usize) -> String {
    format!("churn{w}@bench.test")
}

/// Worker w: op 2k adds churn{w} to one of its groups, op 2k+1 removes it again.
async fn churn_run(
    chans: &[Channel],
    auth: &AsciiMetadataValue,
    guids: &[String],
    dur: Duration,
) -> Run {
    let clients: Vec<GroupServiceClient<Channel>> =
        chans.iter().cloned().map(GroupServiceClient::new).collect();
    closed_loop(C, dur, 2, |w, i| {
        let mut client = clients[w % clients.len()].clone();
        let per_worker = (guids.len() / C).max(1);
        let guid = guids[(w + C * ((i / 2) as usize % per_worker)) % guids.len()].clone();
        let addresses = vec![churner(w)];
        let auth = auth.clone();
        async move {
            if i % 2 == 0 {
                let r = req(
                    pb::AddParticipantsRequest {
                        chat_guid: guid,
                        addresses,
                        client_message_id: None,
                    },
                    &auth,
                );
                client.add_participants(r).await.map(drop)
            } else {
                let r = req(
                    pb::RemoveParticipantsRequest {
                        chat_guid: guid,
                        addresses,
                        client_message_id: None,
                    },
                    &auth,
                );
                client.remove_participants(r).await.map(drop)
            }
        }
    })
    .await
}

pub(crate) async fn run(ctx: &mut Ctx) -> Result<()> {
    progress("W2: membership churn");
    let dir = ctx.fresh_dir("w2")?;
    let srv = ctx.imgroups(&dir, "full").await?;
    let auth = bearer(srv.token.as_deref().ok_or("no token printed")?)?;
    let bare = ctx.bare().await?;
    let chans = connect(&srv.url, CHANNELS).await?;
    let bchans = connect(&bare.url, CHANNELS).await?;
    let n = ctx.scale.w2_groups.max(C);
    // 8 members: me and 7 others.
    let guids = create_groups(
        &chans,
        n,
        16,
        |i| (0..7).map(|k| format!("w2g{i}m{k}@bench.test")).collect(),
        |_| auth.clone(),
        false,
    )
    .await?;

    // Acked adds and removes per worker, over all runs.
    let mut acked = vec![(0u64, 0u64); C];
    let mut count = |run: &Run| {
        for (w, n) in run.ok_per_worker.iter().enumerate() {
            acked[w].0 += n.div_ceil(2);
            acked[w].1 += n / 2;
        }
    };
    let warm = Duration::from_secs_f64((ctx.scale.secs / 4.0).min(0.5));
    count(&churn_run(&chans, &auth, &guids, warm).await);
    churn_run(&bchans, &auth, &guids, warm).await;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..ctx.rounds {
        let cpu0 = srv.cpu_secs();
        let run = churn_run(&chans, &auth, &guids, ctx.secs()).await;
        let cpu = srv.cpu_secs() - cpu0;
        if let Some(e) = &run.first_error {
            ctx.check(false, format!("W2: {} op(s) failed: {e}", run.errors));
        }
        count(&run);
        a.push(Round::from_samples(run.ops(), run.secs, run.lat_us, cpu));
        let cpu0 = bare.cpu_secs();
        let run = churn_run(&bchans, &auth, &guids, ctx.secs()).await;
        let cpu = bare.cpu_secs() - cpu0;
        b.push(Round::from_samples(run.ops(), run.secs, run.lat_us, cpu));
    }
    let peak = srv.peak_rss_mib();

    // kill -9 during churn; every acknowledged add/remove must be in the log.
    let pid = srv.pid;
    let crash_after = ctx.secs() / 2;
    let (run, ()) = tokio::join!(
        churn_run(&chans, &auth, &guids, ctx.secs() * 4),
        async move {
            tokio::time::sleep(crash_after).await;
            let _ = std::process::Command::new("kill")
                .arg("-9")
                .arg(pid.to_string())
                .status();
        }
    );
    count(&run);
    srv.kill9().await;
    drop(chans);
    let srv = ctx.imgroups(&dir, "full").await?;
    let chans = connect(&srv.url, 1).await?;
    let mut logged: HashMap<String, (u64, u64)> = HashMap::new();
    let cu = client::catch_up(chans[0].clone(), &auth, None, |_, e| {
        use pb::group_change_event::Change;
        match &e.change {
            Some(Change::ParticipantAdded(p)) => {
                let a = p
                    .participant
                    .as_ref()
                    .map(|p| p.address.clone())
                    .unwrap_or_default();
                logged.entry(a).or_default().0 += 1;
            }
            Some(Change::ParticipantRemoved(p)) => {
                let a = p
                    .participant
                    .as_ref()
                    .map(|p| p.address.clone())
                    .unwrap_or_default();
                logged.entry(a).or_default().1 += 1;
            }
            _ => {}
        }
    })
    .await?;
    let mut bad = 0;
    let mut total = 0;
    for (w, &(adds, removes)) in acked.iter().enumerate() {
        total += adds + removes;
        let (la, lr) = logged.get(&churner(w)).copied().unwrap_or_default();
        // Every ack is logged; at most the one unacknowledged in-flight op may be too.
        if la < adds || lr < removes || la > adds + 1 || lr > removes + 1 {
            bad += 1;
        }
    }
    ctx.check(
        bad == 0 && cu.gaps == 0 && cu.events == cu.head,
        format!(
            "W2 kill -9 during churn, restart: {total} acknowledged adds/removes, {bad} worker(s) whose log disagrees; log 1..{} with {} gap(s)",
            cu.head, cu.gaps
        ),
    );
    srv.stop().await;
    bare.stop().await;

    let mut t = Table::new(
        "W2 membership churn: AddParticipants then RemoveParticipants, 8-member groups, c=16, synchronous=FULL; baseline = bare tonic echo of the same RPCs",
        "ops/s",
    );
    t.pair(
        &format!("{n} groups c=16"),
        ("imgroups", &a),
        ("bare echo", &b),
    );
    let mut text = t.finish();
    let rate = spread(a.iter().map(|x| x.rate)).med;
    text.push_str(&format!(
        "\nOne op = one RPC (an add or a remove). Server peak RSS {peak:.1} MiB. Synapse does ~41 invite+kick pairs/s at c=16; imgroups does {} pairs/s ({:.0}×).\n",
        num(rate / 2.0),
        rate / 2.0 / 41.0
    ));
    ctx.emit(&text);
    let ratio = spread(a.iter().zip(&b).map(|(x, y)| x.rate / y.rate)).med;
    ctx.target(
        "W2 churn c=16 (no issue target; vs bare echo)",
        format!("{}/s, {:.0}% of bare", num(rate), ratio * 100.0),
        None,
    );
    Ok(())
}
