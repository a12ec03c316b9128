//! docs/errors.md is the one error table users read; this test holds it to [`crate::wire`],
//! the one table the server sends from, so the two cannot drift apart. Every error kind and
//! every HTTP-only error must have exactly one row with its `errorCode`, HTTP status, gRPC
//! status and retryable flag, and the document may have no other row.

#![deny(clippy::wildcard_enum_match_arm)] // a new error kind must be listed below, and in the doc

use imgroups_core::ErrorKind;

use crate::wire::{
    code_of, code_of_http_only, http_only_status, http_status_of, status_name, HttpOnly, WireCode,
};

const DOC: &str = include_str!("../../../docs/errors.md");

/// One row: `errorCode`, HTTP status, gRPC status name (upper case), retryable.
type Row = (String, u16, String, bool);

/// Every error kind. The match has no wildcard, so a kind added to the domain does not
/// compile here until it is added to the list (and then the document must gain its row).
fn all_kinds() -> Vec<ErrorKind> {
    let listed = vec![
        ErrorKind::Unauthenticated,
        ErrorKind::TokenBlocked,
        ErrorKind::InvalidArgument,
        ErrorKind::ChatNotFound,
        ErrorKind::MessageNotFound,
        ErrorKind::AddressNotFound,
        ErrorKind::GroupIconNotFound,
        ErrorKind::OperationNotSupported,
        ErrorKind::PreconditionFailed,
        ErrorKind::DuplicateMessage,
        ErrorKind::Unimplemented,
        ErrorKind::Unavailable,
        ErrorKind::Internal,
        ErrorKind::TooLarge,
        ErrorKind::RateLimited,
        ErrorKind::Timeout,
        ErrorKind::DailyLimitExceeded,
        ErrorKind::RecipientLimitExceeded,
        ErrorKind::NewContactThrottled,
        ErrorKind::ContentDuplicateExceeded,
        ErrorKind::RecipientCoolingDown,
        ErrorKind::SendReceiveRatioExceeded,
    ];
    for kind in &listed {
        match kind {
            ErrorKind::Unauthenticated
            | ErrorKind::TokenBlocked
            | ErrorKind::InvalidArgument
            | ErrorKind::ChatNotFound
            | ErrorKind::MessageNotFound
            | ErrorKind::AddressNotFound
            | ErrorKind::GroupIconNotFound
            | ErrorKind::OperationNotSupported
            | ErrorKind::PreconditionFailed
            | ErrorKind::DuplicateMessage
            | ErrorKind::Unimplemented
            | ErrorKind::Unavailable
            | ErrorKind::Internal
            | ErrorKind::TooLarge
            | ErrorKind::RateLimited
            | ErrorKind::Timeout
            | ErrorKind::DailyLimitExceeded
            | ErrorKind::RecipientLimitExceeded
            | ErrorKind::NewContactThrottled
            | ErrorKind::ContentDuplicateExceeded
            | ErrorKind::RecipientCoolingDown
            | ErrorKind::SendReceiveRatioExceeded => {}
        }
    }
    listed
}

fn all_http_only() -> Vec<HttpOnly> {
    let listed = vec![HttpOnly::UnknownRoute, HttpOnly::MethodNotAllowed];
    for kind in &listed {
        match kind {
            HttpOnly::UnknownRoute | HttpOnly::MethodNotAllowed => {}
        }
    }
    listed
}

fn row(wire: &WireCode, http: http::StatusCode) -> Row {
    (
        wire.error_code.to_owned(),
        http.as_u16(),
        status_name(wire.status).to_uppercase(),
        wire.retryable,
    )
}

/// The rows between the document's table markers.
fn documented() -> Vec<Row> {
    let start = DOC
        .find("<!-- error-table:start")
        .expect("docs/errors.md has the error-table:start marker");
    let end = DOC
        .find("<!-- error-table:end -->")
        .expect("docs/errors.md has the error-table:end marker");
    let unquote = |cell: &str| cell.trim().trim_matches('`').to_owned();
    DOC[start..end]
        .lines()
        // Data rows: the header's first cell is `errorCode` itself.
        .filter(|line| line.starts_with("| `") && !line.starts_with("| `errorCode`"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').collect();
            // "", errorCode, HTTP, gRPC, retryable, when, ""
            assert!(cells.len() >= 7, "a row with every column: {line}");
            let http = cells[2]
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("an HTTP status in: {line}"));
            let retryable = match cells[4].trim() {
                "yes" => true,
                "no" => false,
                other => panic!("retryable is yes or no, not {other:?}: {line}"),
            };
            assert!(!cells[5].trim().is_empty(), "a row says when: {line}");
            (unquote(cells[1]), http, unquote(cells[3]), retryable)
        })
        .collect()
}

#[test]
fn the_documented_error_table_is_the_one_the_server_sends() {
    let mut sent: Vec<Row> = all_kinds()
        .into_iter()
        .map(|kind| row(&code_of(kind), http_status_of(kind)))
        .chain(
            all_http_only()
                .into_iter()
                .map(|kind| row(&code_of_http_only(kind), http_only_status(kind))),
        )
        .collect();
    let mut doc = documented();
    sent.sort();
    doc.sort();
    let missing: Vec<&Row> = sent.iter().filter(|r| !doc.contains(r)).collect();
    let extra: Vec<&Row> = doc.iter().filter(|r| !sent.contains(r)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/errors.md and wire.rs disagree\n  sent but not documented: {missing:?}\n  documented but not sent: {extra:?}"
    );
    // Two kinds may share a row (same code, statuses and flag); the document lists it once.
    sent.dedup();
    assert_eq!(doc.len(), sent.len(), "a row documented twice");
}
