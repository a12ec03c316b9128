//! A send's content is kept once, however many members keep the message: one body, and per
//! member a thin copy and a delivery event that refer to it (BENCHMARKS.md, "Messages, stored
//! once"). What the API answers is the conformance suite's (`messages_keep_as_delivered`).

use imgroups_core::{Command, NewMessage, Outcome};

use crate::common::{engine, Fresh};

#[test]
fn a_send_keeps_its_content_once_for_every_member() {
    let fresh = Fresh::new();
    let ids: Vec<_> = (0..10)
        .map(|n| fresh.account(&format!("m{n}@x.com")))
        .collect();
    let engine = engine(&fresh.store);
    let others: Vec<String> = (1..10).map(|n| format!("m{n}@x.com")).collect();
    let sent = fresh.rt.block_on(async {
        let chat = match engine
            .execute(ids[0], None, Command::create_chat(&others, None).unwrap())
            .await
            .unwrap()
        {
            Outcome::Created { chat, .. } => chat.guid.to_string(),
            other => panic!("expected a chat, got {other:?}"),
        };
        let new = NewMessage::new("one body for ten", None, None, None, Vec::new()).unwrap();
        let sent = match engine
            .execute(ids[0], None, Command::send_text(&chat, new).unwrap())
            .await
            .unwrap()
        {
            Outcome::Message(message) => message,
            other => panic!("expected a message, got {other:?}"),
        };
        (chat, sent)
    });
    let (chat, message) = sent;
    let conn = rusqlite::Connection::open(&fresh.path).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM message_bodies"), 1);
    assert_eq!(
        count("SELECT count(*) FROM chat_messages WHERE state IS NULL"),
        10
    );
    let body: i64 = conn
        .query_row(
            "SELECT id FROM message_bodies WHERE guid = ?1",
            [&message.guid],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM events WHERE kind = 12 AND value = '{body}'"
        )),
        10,
        "each delivery refers to the body instead of holding the message"
    );

    // An edit changes the copies, not the body the deliveries show.
    let before: Vec<u8> = conn
        .query_row("SELECT body FROM message_bodies", [], |r| r.get(0))
        .unwrap();
    fresh.rt.block_on(async {
        engine
            .execute(
                ids[0],
                None,
                Command::edit(&chat, &message.guid, "edited").unwrap(),
            )
            .await
            .unwrap();
    });
    let after: Vec<u8> = conn
        .query_row("SELECT body FROM message_bodies", [], |r| r.get(0))
        .unwrap();
    assert_eq!(before, after);
    assert_eq!(count("SELECT count(*) FROM message_bodies"), 1);
    assert_eq!(
        count("SELECT count(*) FROM chat_messages WHERE state IS NOT NULL"),
        10
    );
}
