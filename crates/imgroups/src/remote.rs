//! Talking to a running server, for the client commands (`groups …`, `chats …`, `messages
//! …`, `addresses …`, `events tail`, in `cmd`): the connection through the Rust SDK, and how a failure ends the command.
//!
//! Exit codes (stable; scripts rely on them):
//! - 0: success (also when stdout is closed early, e.g. `… | head`),
//! - 1: the operation failed (validation, precondition, rate limit, server error),
//! - 2: bad usage, including a malformed chat GUID or address,
//! - 3: authentication failed (missing, unknown or revoked token),
//! - 4: not found (chat, message, address, icon),
//! - 5: cannot reach the server (connection refused, unavailable, timeout).
//!
//! Errors are printed as one line on stderr: `error: <message> (<code>)`; with `--json`, as
//! one JSON object on stderr instead: `{"error":{"code":"chatNotFound","message":"…",
//! "retryable":false}}`, with the same exit codes.
//!
//! `--json` output: a command with one result prints one JSON object on one line (a chat as
//! the SDK's `Chat`, `{"count":N}`, `{"chatGuid":…}` for commands with no result); `events
//! tail --json` prints JSON lines, one event per line, in the official SDK's `GroupEvent`
//! shape.

use std::io;
use std::process::ExitCode;
use std::time::Duration;

use imgroups_client::{Address, ChatGuid, Client, Error, ErrorKind, MessageGuid};

use crate::cli::remote::RemoteArgs;
use crate::output::{json_safe, terminal_safe};

/// A failure and its exit code.
pub(crate) struct Failure {
    exit: u8,
    /// The camelCase error code (the server's `error-code`, or one of the same vocabulary).
    code: String,
    message: String,
    retryable: bool,
}

impl Failure {
    pub(crate) fn new(exit: u8, code: &str, message: impl Into<String>) -> Self {
        Failure {
            exit,
            code: code.to_owned(),
            message: message.into(),
            retryable: false,
        }
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        let exit = match err.kind() {
            ErrorKind::Authentication => 3,
            ErrorKind::NotFound => 4,
            ErrorKind::Connection => 5,
            ErrorKind::Validation | ErrorKind::RateLimit | ErrorKind::Other => 1,
            // `ErrorKind` is non-exhaustive: a class added later is an operation failure.
            _ => 1,
        };
        Failure {
            exit,
            code: err.code().to_owned(),
            message: err.message().to_owned(),
            retryable: err.is_retryable(),
        }
    }
}

/// A request this command refused before sending it, because the server would: the same
/// wire code and exit code as the server's answer (1 for every refusal made without
/// looking at any state).
pub(crate) fn refused(err: imgroups_core::Error) -> Failure {
    let exit = match err.kind {
        imgroups_core::ErrorKind::Unauthenticated | imgroups_core::ErrorKind::TokenBlocked => 3,
        imgroups_core::ErrorKind::ChatNotFound
        | imgroups_core::ErrorKind::AddressNotFound
        | imgroups_core::ErrorKind::GroupIconNotFound => 4,
        _ => 1,
    };
    Failure {
        exit,
        code: imgroups_server::error_code(err.kind).to_owned(),
        retryable: imgroups_server::is_retryable(err.kind),
        message: imgroups_server::error_message(&err).into_owned(),
    }
}

/// Bad input on the command line: exit 2.
fn usage(err: imgroups_core::Error) -> Failure {
    Failure::new(2, "invalidArgument", err.message)
}

/// A local file could not be read or written: the operation failed (exit 1).
pub(crate) fn io_failure(what: &str, err: io::Error) -> Failure {
    Failure::new(1, "invalidArgument", format!("{what}: {err}"))
}

/// The URL for `--server`. The Node SDK and most gRPC tooling write a plaintext address as a
/// bare `HOST:PORT`; the Rust transport would take that for a TLS address and fail with an
/// obscure handshake error, so a bare address means plaintext here.
fn server_url(input: &str) -> Result<String, Failure> {
    let input = input.trim();
    let bad = || {
        Failure::new(
            2,
            "invalidArgument",
            format!(
                "invalid --server {input:?}: expected HOST:PORT or http://HOST:PORT \
                 (plaintext), or https://HOST:PORT (TLS)"
            ),
        )
    };
    match input.split_once("://") {
        Some((scheme, rest)) => {
            let known = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
            if known && !rest.is_empty() {
                Ok(input.to_owned())
            } else {
                Err(bad())
            }
        }
        None => match input.rsplit_once(':') {
            Some((host, port))
                if !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok() =>
            {
                Ok(format!("http://{input}"))
            }
            _ => Err(bad()),
        },
    }
}

pub(crate) type Outcome = Result<(), Failure>;

/// Connects to the server `remote` names and runs `f` with the client; the exit code says how
/// it went.
pub(crate) fn run<F, Fut>(remote: &RemoteArgs, f: F) -> ExitCode
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            let failure = Failure::new(
                1,
                "internalError",
                format!("cannot start the runtime: {err}"),
            );
            return report(failure, remote.json());
        }
    };
    let outcome = runtime.block_on(async {
        let address = server_url(remote.server())?;
        // Checked here, not left to the server: its answer speaks of headers, while the
        // person at the terminal needs to know about the flag and the variable.
        let token = remote
            .token()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Failure::new(
                    3,
                    "unauthenticated",
                    "no API token: pass --token TOKEN or set IMGROUPS_TOKEN (`imgroups serve` \
                     prints one on first start; `imgroups account add` makes one)",
                )
            })?;
        let mut builder = Client::builder();
        if let Some(ca) = remote.tls_ca() {
            let pem = std::fs::read(ca).map_err(|err| {
                Failure::new(
                    2,
                    "invalidArgument",
                    format!("cannot read --tls-ca {}: {err}", ca.display()),
                )
            })?;
            builder = builder.tls_ca_pem(pem);
        }
        let client = builder
            .address(&address)
            .timeout(Duration::from_secs(remote.timeout_secs()))
            .connect_timeout(Duration::from_secs(remote.timeout_secs().clamp(1, 10)))
            .token(token)
            .build()
            .map_err(|err| Failure {
                exit: 2,
                ..Failure::from(err)
            })?;
        f(client).await.map_err(|mut failure| {
            // The transport's reason alone ("tcp connect error") does not say where it tried.
            if failure.exit == 5 {
                failure.message = format!("cannot reach {address}: {}", failure.message);
            }
            failure
        })
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(failure, remote.json()),
    }
}

fn report(failure: Failure, json: bool) -> ExitCode {
    if json {
        let body = serde_json::json!({
            "error": {
                "code": failure.code,
                "message": failure.message,
                "retryable": failure.retryable,
            }
        });
        eprintln!("{}", json_safe(&body.to_string()));
    } else {
        eprintln!(
            "error: {} ({})",
            terminal_safe(&failure.message, false),
            terminal_safe(&failure.code, false)
        );
    }
    ExitCode::from(failure.exit)
}

pub(crate) fn chat_guid(input: &str) -> Result<ChatGuid, Failure> {
    ChatGuid::parse(input).map_err(usage)
}

pub(crate) fn message_guid(input: &str) -> Result<MessageGuid, Failure> {
    MessageGuid::parse(input).map_err(|err| Failure::new(2, err.code(), err.message()))
}

pub(crate) fn addresses(inputs: &[String]) -> Result<Vec<Address>, Failure> {
    inputs
        .iter()
        .map(|a| Address::parse(a).map_err(usage))
        .collect()
}
