//! `imgroups-fake-helper --db PATH --connect ADDR [--delay-ms N]`: a stand-in for the
//! BlueBubbles helper inside Messages.app, for tests that are not written in Rust.
//!
//! `imgroups-fake-helper fixture --home DIR [--version tahoe|ventura|monterey|sierra]` instead
//! creates `DIR/Library/Messages/chat.db` with that macOS version's schema (default tahoe)
//! holding the "Book club" group and its history (`imgroups_chatdb::testing::book_club`), a
//! group with only text messages in the `any;+;` form, an SMS group and a one-to-one chat
//! (`more_chats`), prints `fixture <chat.db path> <Book club's GUID>` and exits. It refuses an
//! existing chat.db.
//!
//! Connects to an imgroups server's helper address, applies each action it is sent to the
//! chat.db at `PATH` the way Messages would (see `imgroups_chatdb::testing`), and acknowledges
//! it. Like the real helper it reconnects when the connection drops (here after 100 ms; the
//! real one waits 5 s). Prints `connected ADDR` on stdout each time it connects, and
//! `typing on GUID` / `typing off GUID` for each `start-typing` / `stop-typing` it carried out
//! (Messages stores nothing for those, so this is how a test sees them arrive; `GUID` is the
//! `chatGuid` as sent). Runs until killed.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use imgroups_chatdb::testing::{
    book_club, more_chats, FakeHelper, FakeHelperOptions, Fixture, Version,
};
use imgroups_chatdb::ChatDb;

const USAGE: &str = "usage: imgroups-fake-helper --db PATH --connect ADDR [--delay-ms N]\n       \
                     imgroups-fake-helper fixture --home DIR [--version tahoe|ventura|monterey|sierra]";

enum Command {
    Connect(Args),
    Fixture { home: PathBuf, version: Version },
}

struct Args {
    db: PathBuf,
    connect: SocketAddr,
    delay: Duration,
}

fn parse_command(mut args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut args = args.by_ref().peekable();
    if args.peek().map(String::as_str) != Some("fixture") {
        return parse(args).map(Command::Connect);
    }
    args.next();
    let (mut home, mut version) = (None, Version::Tahoe);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--home" => home = Some(PathBuf::from(value()?)),
            "--version" => {
                version = match value()?.as_str() {
                    "tahoe" => Version::Tahoe,
                    "monterey" => Version::Monterey,
                    "ventura" => Version::Ventura,
                    "sierra" => Version::Sierra,
                    other => return Err(format!("invalid --version {other:?}")),
                }
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Command::Fixture {
        home: home.ok_or("--home is required")?,
        version,
    })
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut db, mut connect, mut delay) = (None, None, Duration::ZERO);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--db" => db = Some(PathBuf::from(value()?)),
            "--connect" => {
                let addr = value()?;
                let resolved = addr
                    .to_socket_addrs()
                    .map_err(|e| format!("invalid --connect {addr:?}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("invalid --connect {addr:?}: no address"))?;
                connect = Some(resolved);
            }
            "--delay-ms" => {
                let ms = value()?;
                let ms = ms
                    .parse::<u64>()
                    .map_err(|_| format!("invalid --delay-ms {ms:?}"))?;
                delay = Duration::from_millis(ms);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        db: db.ok_or("--db is required")?,
        connect: connect.ok_or("--connect is required")?,
        delay,
    })
}

fn main() -> ExitCode {
    let args = match parse_command(std::env::args().skip(1)) {
        Ok(Command::Connect(args)) => args,
        Ok(Command::Fixture { home, version }) => {
            let path = ChatDb::default_path(&home);
            if path.exists() {
                eprintln!("imgroups-fake-helper: {} exists already", path.display());
                return ExitCode::FAILURE;
            }
            let fixture = Fixture::create_in(&home, version);
            let chat = book_club(&fixture);
            more_chats(&fixture);
            println!("fixture {} {}", path.display(), chat.guid);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            if !message.is_empty() {
                eprintln!("imgroups-fake-helper: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("imgroups-fake-helper: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let options = FakeHelperOptions {
            delay: args.delay,
            ..FakeHelperOptions::default()
        };
        loop {
            // Not listening yet, or the connection dropped: retry, as the real helper does.
            if let Ok(helper) =
                FakeHelper::connect(args.connect, args.db.clone(), options.clone()).await
            {
                println!("connected {}", args.connect);
                let mut typing = helper.typing_updates();
                let printer = tokio::spawn(async move {
                    let mut printed = 0;
                    while typing.changed().await.is_ok() {
                        let seen = typing.borrow_and_update().clone();
                        for t in seen.iter().skip(printed) {
                            let state = if t.typing { "on" } else { "off" };
                            println!("typing {state} {}", t.chat_guid);
                        }
                        printed = seen.len();
                    }
                });
                let closed = helper.closed().await;
                printer.abort();
                if let Err(e) = closed {
                    eprintln!("imgroups-fake-helper: connection failed: {e}");
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}
