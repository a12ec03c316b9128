//! Durability: what the server acknowledged survives a graceful restart and a `kill -9`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imgroups_proto::pb;

use crate::support::{clients, renamed_to, Server};

const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";

/// Checks the invariants of one account's log: sequences 1..=head without a gap.
fn assert_contiguous(events: &[(u64, pb::GroupChangeEvent)], head: u64) {
    let seqs: Vec<u64> = events.iter().map(|(s, _)| *s).collect();
    let expected: Vec<u64> = (1..=head).collect();
    assert_eq!(
        seqs, expected,
        "sequences are 1..=head with no gap or reuse"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_concurrent_writes_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let me_token = server.token.clone().unwrap();
    let bob_token = server.add_account(BOB);
    let channel = server.channel().await;
    let mut me = clients(&channel, &me_token);

    let mut groups = Vec::new();
    for i in 0..4 {
        let extra = format!("p{i}@example.com");
        groups.push(me.create_group(&[BOB, CAROL, &extra]).await);
    }
    let groups = Arc::new(groups);

    // Writers rename groups with unique names and remember what was acknowledged, in order.
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..16 {
        let mut c = clients(&channel, &me_token);
        let groups = groups.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..10_000u32 {
                let group = &groups[(w + i as usize) % groups.len()];
                let name = format!("w{w}-{i}");
                match c.rename(group, &name).await {
                    Ok(chat) => {
                        assert_eq!(chat.display_name.as_deref(), Some(name.as_str()));
                        acked.lock().unwrap().push((group.clone(), name));
                    }
                    Err(_) => return, // the server died under us
                }
            }
        }));
    }

    // Let the storm run, then pull the plug mid-flight.
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked.lock().unwrap().len() < 300 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 100,
        "the storm acknowledged writes before the kill"
    );

    let server = Server::start(dir.path(), &[]);
    let channel = server.channel().await;
    let mut me = clients(&channel, &me_token);
    let mut bob = clients(&channel, &bob_token);

    for (who, client) in [("me", &mut me), ("bob", &mut bob)] {
        let (events, head) = client.catch_up(0).await;
        assert_contiguous(&events, head);
        let mut seen: HashSet<(String, String)> = HashSet::new();
        for (_, e) in &events {
            if let Some(name) = renamed_to(e) {
                assert!(
                    seen.insert((e.chat_guid.clone(), name.to_owned())),
                    "{who}: rename {name} recorded exactly once"
                );
                assert_eq!(e.is_from_me, who == "me");
            }
        }
        for write in &acked {
            assert!(
                seen.contains(write),
                "{who}: acknowledged {write:?} survived kill -9"
            );
        }

        // State equals a replay of the log: each group's name is its last recorded rename.
        let mut last: HashMap<String, String> = HashMap::new();
        for (_, e) in &events {
            if let Some(name) = renamed_to(e) {
                last.insert(e.chat_guid.clone(), name.to_owned());
            }
        }
        for group in groups.iter() {
            let chat = client.get_chat(group).await;
            assert_eq!(
                chat.display_name.as_ref(),
                last.get(group),
                "{who}: {group}"
            );
        }
    }

    // The log keeps growing from where it was, without reuse.
    let (_, head_before) = me.catch_up(0).await;
    me.rename(&groups[0], "after the crash").await.unwrap();
    let (events, head_after) = me.catch_up(head_before).await;
    assert_eq!(head_after, head_before + 1);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, head_before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_keeps_state_log_and_idempotency() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let token = server.token.clone().unwrap();
    let bob_token = server.add_account(BOB);
    let channel = server.channel().await;
    let mut me = clients(&channel, &token);
    let group = me.create_group(&[BOB, CAROL, "dave@example.com"]).await;
    let rename = pb::SetDisplayNameRequest {
        chat_guid: group.clone(),
        display_name: "Weekend".into(),
        client_message_id: Some("rename-1".into()),
    };
    let first = me
        .groups
        .set_display_name(rename.clone())
        .await
        .unwrap()
        .into_inner();
    let png = imgroups_testkit::tiny_png();
    me.groups
        .set_icon(pb::SetIconRequest {
            chat_guid: group.clone(),
            data: png.clone(),
            client_message_id: None,
        })
        .await
        .unwrap();
    let (events_before, head_before) = me.catch_up(0).await;
    let (bob_before, _) = clients(&channel, &bob_token).catch_up(0).await;
    server.stop();

    let server = Server::start(dir.path(), &[]);
    assert!(
        server.token.is_none(),
        "the token is printed on first start only"
    );
    let channel = server.channel().await;
    let mut me = clients(&channel, &token);
    let chat = me.get_chat(&group).await;
    assert_eq!(chat.display_name.as_deref(), Some("Weekend"));
    let icon = me
        .groups
        .get_icon(pb::GetIconRequest {
            chat_guid: group.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(icon.data, png);
    assert_eq!(icon.mime_type, "image/png");
    let (events_after, head_after) = me.catch_up(0).await;
    assert_eq!(head_after, head_before);
    assert_eq!(events_after, events_before);
    let (bob_after, _) = clients(&channel, &bob_token).catch_up(0).await;
    assert_eq!(bob_after, bob_before);

    // A retry after the restart replays the original answer and appends nothing.
    let replay = me
        .groups
        .set_display_name(rename)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replay, first);
    let (_, head_replayed) = me.catch_up(0).await;
    assert_eq!(head_replayed, head_before);
}
