//! What the commands write: stdout is the scripting contract (a closed pipe, as with
//! `| head`, is never an error), stderr gets logs and the one-line error of a failed command.
//! Text from the server is escaped before it reaches a terminal.

use std::borrow::Cow;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use imgroups_core::Error;
use tracing_subscriber::filter::Targets;

use crate::cli::LogFormat;

/// Logs go to stderr in either format, so stdout stays the scripting contract. `RUST_LOG`
/// sets the levels (`debug`, `info,imgroups_server=debug`, …); unset, empty or malformed, it
/// is `info`.
pub(crate) fn init_logging(format: LogFormat) {
    use tracing_subscriber::prelude::*;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.trim().is_empty())
        .and_then(|value| value.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let layer = tracing_subscriber::fmt::layer().with_writer(io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry
            .with(layer.with_ansi(io::IsTerminal::is_terminal(&io::stderr())))
            .init(),
        LogFormat::Json => registry.with(layer.json().with_ansi(false)).init(),
    }
}

/// The exit of a local command: 0, or 1 with one line on stderr ending with the camelCase
/// wire code (`error: … (chatNotFound)`), or with `json` one JSON object,
/// `{"error":{"code","message","retryable"}}`.
pub(crate) fn exit(result: Result<(), Error>, json: bool) -> ExitCode {
    let Err(err) = result else {
        return ExitCode::SUCCESS;
    };
    let code = imgroups_server::error_code(err.kind);
    let message = imgroups_server::error_message(&err);
    if json {
        let body = serde_json::json!({
            "error": {
                "code": code,
                "message": message,
                "retryable": imgroups_server::is_retryable(err.kind),
            }
        });
        eprintln!("{body}");
    } else {
        eprintln!("error: {message} ({code})");
    }
    ExitCode::FAILURE
}

/// Writes `text` to stdout.
pub(crate) fn print_text(text: &str) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Writes one line per item to stdout, stopping quietly when stdout is closed.
pub(crate) fn print_each<T>(items: impl IntoIterator<Item = T>, line: impl Fn(T) -> String) {
    let mut out = io::stdout().lock();
    for item in items {
        if writeln!(out, "{}", line(item)).is_err() {
            break;
        }
    }
}

/// Unix seconds as RFC 3339 in UTC, e.g. `2026-11-30T02:00:00Z`.
pub(crate) fn rfc3339(seconds: i64) -> String {
    let Ok(seconds) = u64::try_from(seconds) else {
        return seconds.to_string(); // Before 1970: not a time this program writes.
    };
    let time = std::time::UNIX_EPOCH + Duration::from_secs(seconds);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Writes lines to stdout; a closed pipe (`| head`) ends the command successfully.
pub(crate) struct Out {
    stdout: io::Stdout,
}

/// Stdout went away: stop quietly with success.
pub(crate) struct Closed;

impl Out {
    pub(crate) fn new() -> Self {
        Out {
            stdout: io::stdout(),
        }
    }

    /// One line. Server data is escaped where it is formatted (`cmd::chats`, [`json_line`],
    /// `cmd::events`); this is the safety net for the rest, keeping only our own tab
    /// separators.
    pub(crate) fn line(&mut self, text: &str) -> Result<(), Closed> {
        let text = terminal_safe(text, true);
        let mut lock = self.stdout.lock();
        match writeln!(lock, "{text}").and_then(|()| lock.flush()) {
            Ok(()) => Ok(()),
            Err(_) => Err(Closed),
        }
    }
}

/// Prints lines through [`Out`]; a closed stdout is not an error.
pub(crate) fn print_lines(lines: impl IntoIterator<Item = String>) {
    let mut out = Out::new();
    for line in lines {
        if out.line(&line).is_err() {
            break;
        }
    }
}

/// Whether a character printed as is could change what a terminal shows beyond itself:
/// control characters (escape sequences, carriage returns, line breaks), the line and
/// paragraph separators, and bidirectional embeddings, overrides and isolates. The server
/// refuses them in the names it is sent, but names also come from elsewhere (a real Mac,
/// older data), so nothing from the server is printed raw.
fn unsafe_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every [`unsafe_on_terminal`] character written as a Rust escape (`\u{1b}`);
/// tabs are kept when `keep_tabs` (our own column separators).
pub(crate) fn terminal_safe(text: &str, keep_tabs: bool) -> Cow<'_, str> {
    let escape = |c: char| unsafe_on_terminal(c) && !(keep_tabs && c == '\t');
    if !text.chars().any(escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escape(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A JSON document with the same characters written as JSON escapes (`\u001b`), so it
/// stays valid JSON with the same value. serde_json escapes C0 controls itself, but not DEL,
/// C1 or the bidirectional controls; these can only occur inside JSON strings.
pub(crate) fn json_safe(json: &str) -> Cow<'_, str> {
    if !json.chars().any(unsafe_on_terminal) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if unsafe_on_terminal(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One JSON document on one line. Serializing plain data with string keys cannot fail.
pub(crate) fn json_line(value: &impl serde::Serialize) -> String {
    json_safe(&serde_json::to_string(value).unwrap_or_default()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_never_reaches_the_terminal_raw() {
        let evil = "a\u{1b}[2Jb\u{9b}c\u{7f}\u{202e}d\ne\tf\u{200f}";
        let safe = terminal_safe(evil, false);
        assert_eq!(
            safe,
            "a\\u{1b}[2Jb\\u{9b}c\\u{7f}\\u{202e}d\\u{a}e\\u{9}f\u{200f}"
        );
        assert!(!safe.chars().any(unsafe_on_terminal));
        assert_eq!(terminal_safe("x\ty", true), "x\ty");
        assert!(matches!(terminal_safe("plain", false), Cow::Borrowed(_)));
    }

    #[test]
    fn json_output_stays_valid_json_with_the_same_value() {
        let name = "a\u{1b}b\u{9b}c\u{202e}d\u{7f}";
        let line = json_line(&serde_json::json!({ "name": name }));
        assert!(!line.chars().any(unsafe_on_terminal), "{line}");
        let back: serde_json::Value = serde_json::from_str(&line).expect("valid json");
        assert_eq!(back["name"], name);
    }
}
