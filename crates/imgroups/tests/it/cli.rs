//! The command line as a newcomer meets it: configuration files, log formats, completions,
//! `--json`, and the error messages of the usual first mistakes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{lines_of, Server, BIN};

/// `imgroups ARGS` with no `IMGROUPS_*` variable from the environment the tests run in.
fn imgroups(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("IMGROUPS_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn run(mut cmd: impl std::borrow::BorrowMut<Command>) -> Output {
    cmd.borrow_mut()
        .stdin(Stdio::null())
        .output()
        .expect("run imgroups")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A `serve` child, its stdout lines up to `ready`, and its stderr lines as they come.
struct Started {
    child: Child,
    stdout: Vec<String>,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(mut cmd: Command) -> Started {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn imgroups serve");
    let out = lines_of(child.stdout.take().expect("stdout"));
    let err = lines_of(child.stderr.take().expect("stderr"));
    let mut stdout = Vec::new();
    loop {
        let line = out
            .recv_timeout(Duration::from_secs(30))
            .expect("server printed `ready` within 30 s");
        let ready = line == "ready";
        stdout.push(line);
        if ready {
            break;
        }
    }
    Started {
        child,
        stdout,
        stderr: err,
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path
}

/// The error code at the end of an error line: `error: … (chatNotFound)`.
fn trailing_code(line: &str) -> &str {
    line.trim_end()
        .rsplit_once('(')
        .and_then(|(_, code)| code.strip_suffix(')'))
        .unwrap_or("")
}

fn is_camel_code(code: &str) -> bool {
    code.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && code.chars().all(|c| c.is_ascii_alphabetic())
}

#[test]
fn config_file_precedence_is_flag_then_env_then_file_then_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "imgroups.toml",
        "account = \"file@example.com\"\nheartbeat-secs = 7\nmax_icon_bytes = 1000\n\
         idempotency-ttl-secs = 60\n",
    );
    let out = run(imgroups(&[
        "config",
        "print",
        "--config",
        file.to_str().expect("utf-8"),
        "--heartbeat-secs",
        "9",
    ])
    .env("IMGROUPS_ACCOUNT", "env@example.com"));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "heartbeat-secs = 9  # flag",
        "account = \"env@example.com\"  # env IMGROUPS_ACCOUNT",
        "max-icon-bytes = 1000  # file",
        "idempotency-ttl-secs = 60  # file",
        "durability = \"full\"  # default",
        "grpc = \"127.0.0.1:50051\"  # default",
        "log-format = \"text\"  # default",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
    }
    // The printed configuration is itself a valid configuration file.
    let printed = write(dir.path(), "printed.toml", &text);
    let again = run(imgroups(&[
        "config",
        "print",
        "--config",
        printed.to_str().expect("utf-8"),
    ]));
    assert!(again.status.success(), "{}", stderr(&again));
}

#[test]
fn serve_runs_from_a_config_file_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let file = write(
        dir.path(),
        "imgroups.toml",
        &format!(
            "data = {:?}\ngrpc = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n\
             account = \"file@example.com\"\nlog-format = \"json\"\n",
            data.to_str().expect("utf-8")
        ),
    );
    let mut cmd = imgroups(&["serve"]);
    cmd.env("IMGROUPS_CONFIG", &file);
    let started = start(cmd);
    assert_eq!(started.stdout[0], "account file@example.com");
    assert!(
        started.stdout[1].starts_with("token "),
        "{:?}",
        started.stdout
    );
    assert!(data.join("imgroups.db").exists());
    // The file's `log-format` applies too.
    let log = started
        .stderr
        .recv_timeout(Duration::from_secs(10))
        .expect("a log line");
    let parsed: serde_json::Value = serde_json::from_str(&log).expect("a JSON log line");
    assert!(parsed.get("level").is_some(), "{log}");
}

#[test]
fn unknown_config_key_is_named_with_a_suggestion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "imgroups.toml", "grcp = \"127.0.0.1:1\"\n");
    let out = run(imgroups(&[
        "serve",
        "--config",
        file.to_str().expect("utf-8"),
    ]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("imgroups.toml: unknown key \"grcp\""), "{err}");
    assert!(err.contains("did you mean \"grpc\""), "{err}");
    assert_eq!(trailing_code(err.trim()), "invalidArgument", "{err}");
}

#[test]
fn bad_config_values_name_the_key_and_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (text, key) in [
        ("heartbeat-secs = \"soon\"\n", "heartbeat-secs"),
        ("heartbeat-secs = 0\n", "heartbeat-secs"),
        ("durability = \"sometimes\"\n", "durability"),
        ("grpc = [1, 2]\n", "grpc"),
        ("grpc = \"no port\"\n", "grpc"),
    ] {
        let file = write(dir.path(), "bad.toml", text);
        let out = run(imgroups(&[
            "config",
            "print",
            "--config",
            file.to_str().expect("utf-8"),
        ]));
        assert_eq!(out.status.code(), Some(2), "{text}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("bad.toml"), "{text}: {err}");
        assert!(err.contains(&format!("key \"{key}\"")), "{text}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    let file = write(dir.path(), "broken.toml", "grpc = \n");
    let out = run(imgroups(&[
        "serve",
        "--config",
        file.to_str().expect("utf-8"),
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("broken.toml"), "{}", stderr(&out));
}

#[test]
fn config_print_redacts_secrets() {
    let out = run(imgroups(&[
        "config",
        "print",
        "--database-url",
        "postgres://app:hunter2@db.example:5432/imgroups",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        text.contains(
            "database-url = \"postgres://app:<redacted>@db.example:5432/imgroups\"  # flag"
        ),
        "{text}"
    );
}

/// The keys `config print` knows, i.e. every `serve` flag.
fn serve_keys() -> Vec<String> {
    let out = run(&mut imgroups(&["config", "print"]));
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .filter_map(|l| {
            let l = l.strip_prefix("# ").unwrap_or(l);
            let key = l.split([' ', '=']).next()?;
            let rest = &l[key.len()..];
            (rest.starts_with(" = ") || rest.starts_with(" is not set")).then(|| key.to_owned())
        })
        .collect()
}

#[test]
fn example_config_is_valid_and_lists_every_serve_key() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/imgroups.example.toml");
    let text = std::fs::read_to_string(&example).expect("docs/imgroups.example.toml");
    // Every setting in the example is commented out; uncommented, each must be valid.
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.contains(" = ") && rest.starts_with(|c: char| c.is_ascii_lowercase()) =>
            {
                rest
            }
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    for file in [
        example.clone(),
        write(dir.path(), "uncommented.toml", &uncommented),
    ] {
        let out = run(imgroups(&[
            "config",
            "print",
            "--config",
            file.to_str().expect("utf-8"),
        ]));
        assert!(out.status.success(), "{}: {}", file.display(), stderr(&out));
    }
    let keys = serve_keys();
    assert!(keys.len() >= 15, "{keys:?}");
    for key in keys {
        assert!(
            uncommented
                .lines()
                .any(|l| l.starts_with(&format!("{key} = "))),
            "docs/imgroups.example.toml lacks `{key}`: add it, commented out, with its default \
             and a line on what it does"
        );
    }
}

#[test]
fn log_format_json_writes_json_lines_on_stderr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = imgroups(&["serve", "--log-format", "json", "--grpc", "127.0.0.1:0"]);
    cmd.args(["--http", "127.0.0.1:0", "--data"])
        .arg(dir.path());
    let started = start(cmd);
    // Every line is one JSON object, up to and including the one announcing the listeners.
    loop {
        let line = started
            .stderr
            .recv_timeout(Duration::from_secs(10))
            .expect("the `serving` log line");
        let log: serde_json::Value = serde_json::from_str(&line).expect("JSON on stderr");
        assert!(
            log["level"].is_string() && log["timestamp"].is_string(),
            "{line}"
        );
        if log["fields"]["message"] == "serving" {
            assert_eq!(log["level"], "INFO", "{line}");
            break;
        }
    }
    // stdout keeps its contract.
    assert_eq!(started.stdout.last().map(String::as_str), Some("ready"));
}

#[test]
fn completions_and_man_page_mention_serve() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&mut imgroups(&["completions", shell]));
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        assert!(stdout(&out).contains("serve"), "{shell}");
    }
    let out = run(&mut imgroups(&["man"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(page.contains(".TH"), "roff");
    assert!(page.contains("serve"), "{page}");
}

#[test]
fn serve_help_describes_both_listeners() {
    let out = run(&mut imgroups(&["serve", "--help"]));
    let help = stdout(&out);
    assert!(help.contains("gRPC") && help.contains("HTTP"), "{help}");
    assert!(help.contains("--config"), "{help}");
}

#[test]
fn bare_host_port_server_address_is_plaintext() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let token = server.token.clone().expect("first start prints a token");
    let out = run(&mut imgroups(&[
        "chats",
        "count",
        "--server",
        &server.grpc,
        "--token",
        &token,
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "0");

    let out = run(&mut imgroups(&[
        "chats",
        "count",
        "--server",
        "ftp://x:1",
        "--token",
        &token,
    ]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("invalid --server \"ftp://x:1\""), "{err}");
    assert!(err.contains("HOST:PORT"), "{err}");
}

#[test]
fn missing_token_names_the_flag_and_the_variable() {
    let out = run(&mut imgroups(&[
        "chats",
        "count",
        "--server",
        "127.0.0.1:9",
    ]));
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains("--token") && err.contains("IMGROUPS_TOKEN"),
        "{err}"
    );
    assert!(!err.contains("header"), "{err}");
    assert_eq!(trailing_code(err.trim()), "unauthenticated");
}

#[test]
fn taken_port_fails_cleanly_and_creates_no_account() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut cmd = imgroups(&["serve", "--grpc", &addr, "--http", "127.0.0.1:0", "--data"]);
    cmd.arg(&data);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("error: cannot listen on {addr} for gRPC: ")),
        "{err}"
    );
    assert!(!err.to_lowercase().contains("invalidargument"), "{err}");
    assert!(is_camel_code(trailing_code(err.trim())), "{err}");
    // The store may have been opened (it locks the data directory first), but no account
    // was created: no token was made that nobody saw.
    assert!(!data.join("token").exists(), "no account created");

    // Same for the HTTP port.
    let mut cmd = imgroups(&["serve", "--grpc", "127.0.0.1:0", "--http", &addr, "--data"]);
    cmd.arg(&data);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("for HTTP: "), "{}", stderr(&out));

    // The first start that succeeds still shows the first token.
    drop(taken);
    let server = Server::start(&data, &[]);
    assert!(server.token.is_some(), "the first token is printed");
}

#[test]
fn unusable_data_dir_names_the_path_and_the_os_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A regular file where a directory should be: fails even for root.
    let file = write(dir.path(), "not-a-dir", "");
    let data = file.join("data");
    for args in [
        vec!["serve", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"],
        vec!["token", "list"],
    ] {
        let mut cmd = imgroups(&args);
        cmd.arg("--data").arg(&data);
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        let line = err.lines().last().unwrap_or_default();
        assert!(line.contains(data.to_str().expect("utf-8")), "{err}");
        assert!(line.contains("os error"), "{err}");
        assert!(is_camel_code(trailing_code(line)), "{err}");
    }
}

#[test]
fn local_errors_end_with_the_camel_case_wire_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8");
    for (args, code) in [
        (vec!["account", "add", "not an address"], "invalidArgument"),
        (
            vec!["token", "create", "nobody@example.com"],
            "addressNotFound",
        ),
        (vec!["token", "revoke", "12345"], ""),
        (vec!["webhook", "rm", "77"], ""),
        (
            vec!["sim", "act", "zoe@example.net", "leave", "any;+;nope"],
            "chatNotFound",
        ),
    ] {
        let mut cmd = imgroups(&args);
        cmd.args(["--data", data]);
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        let line = err.lines().last().unwrap_or_default();
        let got = trailing_code(line);
        assert!(is_camel_code(got), "{args:?}: {err}");
        if !code.is_empty() {
            assert_eq!(got, code, "{args:?}: {err}");
        }
    }
}

/// Adding an account that exists is refused with the command that makes another token for
/// it, in either output form.
#[test]
fn adding_an_existing_account_names_the_command_for_another_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8");
    let add = |json: bool| {
        let mut cmd = imgroups(&["account", "add", "a@example.com", "--data", data]);
        if json {
            cmd.arg("--json");
        }
        run(&mut cmd)
    };
    let first = add(false);
    assert!(first.status.success(), "{}", stderr(&first));
    let again = add(false);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        stderr(&again).lines().last().unwrap_or_default(),
        "error: account a@example.com already exists; use `imgroups token create \
         a@example.com` for another token (preconditionFailed)"
    );
    let again = add(true);
    assert_eq!(again.status.code(), Some(1));
    let err: serde_json::Value = serde_json::from_str(stderr(&again).trim()).expect("JSON error");
    assert_eq!(
        err["error"]["message"],
        "account a@example.com already exists; use `imgroups token create a@example.com` for \
         another token"
    );
}

#[test]
fn token_list_shows_rfc3339_and_json_gives_both_forms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8");
    let out = run(&mut imgroups(&[
        "account",
        "add",
        "a@example.com",
        "--data",
        data,
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&mut imgroups(&["token", "list", "--data", data]));
    let text = stdout(&out);
    let fields: Vec<&str> = text.trim().split('\t').collect();
    assert_eq!(fields.len(), 4, "{text}");
    let created = fields[2];
    assert_eq!(created.len(), "2026-11-30T02:00:00Z".len(), "{created}");
    assert!(
        created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "{created}"
    );

    let out = run(&mut imgroups(&["token", "list", "--json", "--data", data]));
    let row: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("json line");
    assert_eq!(row["created"], created);
    assert!(
        row["createdUnix"]
            .as_i64()
            .is_some_and(|s| s > 1_700_000_000),
        "{row}"
    );
    assert_eq!(row["account"], "a@example.com");
    assert_eq!(row["status"], "active");
}

#[test]
fn json_output_and_json_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let token = server.token.clone().expect("token");
    let remote = |args: &[&str]| {
        let mut cmd = imgroups(args);
        cmd.args(["--json", "--server", &server.grpc, "--token", &token]);
        run(&mut cmd)
    };
    let json = |out: &Output| -> serde_json::Value {
        assert!(out.status.success(), "{}", stderr(out));
        serde_json::from_str(stdout(out).trim()).expect("one JSON document")
    };
    let created = json(&remote(&[
        "chats",
        "create",
        "b@example.com",
        "c@example.com",
        "d@example.com",
    ]));
    let guid = created["chat"]["guid"].as_str().expect("guid").to_owned();
    let renamed = json(&remote(&["groups", "rename", &guid, "Trip"]));
    assert_eq!(renamed["displayName"], "Trip");
    assert_eq!(
        json(&remote(&["chats", "get", &guid]))["guid"],
        guid.as_str()
    );
    assert_eq!(json(&remote(&["chats", "count"]))["count"], 1);
    assert_eq!(
        json(&remote(&["groups", "remove", &guid, "d@example.com"]))["guid"],
        guid.as_str()
    );

    let out = remote(&["chats", "get", "any;+;nope"]);
    assert_eq!(out.status.code(), Some(4));
    let err: serde_json::Value = serde_json::from_str(stderr(&out).trim()).expect("JSON error");
    assert_eq!(err["error"]["code"], "chatNotFound");
    assert_eq!(err["error"]["retryable"], false);
    assert!(err["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("nope")));

    // Local commands.
    let data = dir.path().to_str().expect("utf-8");
    let added = json(&run(&mut imgroups(&[
        "account",
        "add",
        "e@example.com",
        "--json",
        "--data",
        data,
    ])));
    assert_eq!(added["account"], "e@example.com");
    assert!(added["token"].as_str().is_some_and(|t| !t.is_empty()));
    let hook = json(&run(&mut imgroups(&[
        "webhook",
        "add",
        "http://127.0.0.1:9/hook",
        "--account",
        "e@example.com",
        "--json",
        "--data",
        data,
    ])));
    assert!(hook["secret"].as_str().is_some_and(|s| !s.is_empty()));
    let listed = json(&run(&mut imgroups(&[
        "webhook", "list", "--json", "--data", data,
    ])));
    assert_eq!(listed["id"], hook["id"]);
    assert_eq!(listed["url"], "http://127.0.0.1:9/hook");

    let out = run(&mut imgroups(&[
        "account",
        "add",
        "bad address",
        "--json",
        "--data",
        data,
    ]));
    assert_eq!(out.status.code(), Some(1));
    let err: serde_json::Value = serde_json::from_str(stderr(&out).trim()).expect("JSON error");
    assert_eq!(err["error"]["code"], "invalidArgument");
}

#[test]
fn admin_token_prints_one_line_beside_a_running_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _server = Server::start(dir.path(), &[]);
    let data = dir.path().to_str().expect("utf-8");
    let out = run(&mut imgroups(&["admin", "token", "--data", data]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].starts_with("imgadm_"), "{text}");
    assert!(lines[0].len() > "imgadm_".len() + 20, "{text}");

    let out = run(&mut imgroups(&["admin", "token", "--json", "--data", data]));
    assert!(out.status.success(), "{}", stderr(&out));
    let row: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("one object");
    let second = row["token"].as_str().expect("token");
    assert!(second.starts_with("imgadm_"), "{row}");
    assert_ne!(second, lines[0], "a new token each time");
}

/// `sim fault add|list|clear` against a data directory, in text and JSON, and the mistakes
/// it refuses.
#[test]
fn sim_fault_add_list_clear_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8");
    let cli = |args: &[&str]| {
        let mut cmd = imgroups(args);
        cmd.args(["--data", data]);
        run(&mut cmd)
    };
    for address in ["a@example.com", "b@example.com"] {
        let out = cli(&["account", "add", address]);
        assert!(out.status.success(), "{}", stderr(&out));
    }

    let out = cli(&[
        "sim",
        "fault",
        "add",
        "a@example.com",
        "--method",
        "SetDisplayName",
        "--code",
        "databaseError",
        "--retryable",
        "--latency-ms",
        "200",
        "--count",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    let (head, description) = text.trim().split_once(": ").expect("fault ID: …");
    let first: i64 = head
        .strip_prefix("fault ")
        .and_then(|id| id.parse().ok())
        .expect("fault ID");
    for part in [
        "SetDisplayName",
        "a@example.com",
        "databaseError",
        "retryable",
        "200 ms",
        "3 left",
    ] {
        assert!(description.contains(part), "{part}: {description}");
    }

    let out = cli(&[
        "sim",
        "fault",
        "add",
        "b@example.com",
        "--method",
        "*",
        "--latency-ms",
        "50",
        "--for-secs",
        "3600",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let second: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("object");
    assert_eq!(second["account"], "b@example.com");
    assert_eq!(second["method"], "*");
    assert_eq!(second["code"], serde_json::Value::Null);
    assert_eq!(second["latencyMs"], 50);
    assert_eq!(second["left"], serde_json::Value::Null);
    let until = second["untilUnix"].as_i64().expect("untilUnix");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!((until - now - 3600).abs() < 60, "{second}");
    assert!(second["until"].as_str().is_some_and(|u| u.ends_with('Z')));
    let second_id = second["id"].as_i64().expect("id");

    let out = cli(&["sim", "fault", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(
        rows[0],
        [
            first.to_string().as_str(),
            "a@example.com",
            "SetDisplayName",
            "databaseError",
            "true",
            "200",
            "3",
            "-"
        ]
    );
    assert_eq!(
        rows[1][..7],
        [
            second_id.to_string().as_str(),
            "b@example.com",
            "*",
            "-",
            "false",
            "50",
            "-"
        ]
    );
    assert_eq!(rows[1][7], second["until"].as_str().expect("until"));

    let out = cli(&["sim", "fault", "list", "--json"]);
    let listed: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["id"], first);
    assert_eq!(listed[0]["left"], 3);
    assert_eq!(listed[0]["retryable"], true);
    assert_eq!(listed[1], second);

    // Mistakes.
    let refused = [
        (
            vec!["--method", "NoSuchRpc", "--code", "timeout"],
            "a@example.com",
            "invalidArgument",
            "NoSuchRpc",
        ),
        (
            vec!["--method", "*", "--code", "notACode"],
            "a@example.com",
            "invalidArgument",
            "notACode",
        ),
        (
            vec!["--method", "*"],
            "a@example.com",
            "invalidArgument",
            "--code",
        ),
        (
            vec!["--method", "*", "--code", "timeout"],
            "nobody@example.com",
            "addressNotFound",
            "nobody@example.com",
        ),
    ];
    for (flags, address, code, named) in refused {
        let mut args = vec!["sim", "fault", "add", address];
        args.extend(flags);
        let out = cli(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        let line = err.lines().last().unwrap_or_default();
        assert_eq!(trailing_code(line), code, "{args:?}: {err}");
        assert!(line.contains(named), "{args:?}: {err}");
        // And as JSON.
        args.push("--json");
        let out = cli(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err: serde_json::Value = serde_json::from_str(stderr(&out).trim()).expect("JSON error");
        assert_eq!(err["error"]["code"], code, "{args:?}");
    }
    // Usage: --retryable needs a code; clear needs exactly one of ID, --account, --all.
    for args in [
        vec![
            "sim",
            "fault",
            "add",
            "a@example.com",
            "--method",
            "*",
            "--retryable",
            "--latency-ms",
            "5",
        ],
        vec!["sim", "fault", "clear"],
        vec!["sim", "fault", "clear", "1", "--all"],
    ] {
        assert_eq!(cli(&args).status.code(), Some(2), "{args:?}");
    }
    assert_eq!(
        stdout(&cli(&["sim", "fault", "list"])).lines().count(),
        2,
        "nothing added by refused commands"
    );

    // Clearing: by id, by account, all.
    let first = first.to_string();
    let out = cli(&["sim", "fault", "clear", &first]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "cleared 1");
    assert_eq!(
        stdout(&cli(&["sim", "fault", "clear", &first])).trim(),
        "cleared 0"
    );
    let out = cli(&["sim", "fault", "clear", "--account", "b@example.com"]);
    assert_eq!(stdout(&out).trim(), "cleared 1", "{}", stderr(&out));
    let out = cli(&["sim", "fault", "clear", "--account", "nobody@example.com"]);
    assert_eq!(trailing_code(stderr(&out).trim()), "addressNotFound");
    for address in ["a@example.com", "b@example.com"] {
        let out = cli(&[
            "sim",
            "fault",
            "add",
            address,
            "--method",
            "LeaveGroup",
            "--code",
            "timeout",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(
        stdout(&cli(&["sim", "fault", "clear", "--all"])).trim(),
        "cleared 2"
    );
    assert_eq!(stdout(&cli(&["sim", "fault", "list"])), "");
}

#[test]
fn sim_unreachable_list_prints_the_marked_addresses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8");
    let cli = |args: &[&str]| {
        let mut cmd = imgroups(args);
        cmd.args(["--data", data]);
        run(&mut cmd)
    };
    assert_eq!(stdout(&cli(&["sim", "unreachable", "--list"])), "");
    for address in ["zed@example.com", "amy@example.com", "+15551234567"] {
        let out = cli(&["sim", "unreachable", address]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = cli(&["sim", "unreachable", "--list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "+15551234567\namy@example.com\nzed@example.com\n"
    );
    let out = cli(&["sim", "unreachable", "amy@example.com", "--reachable"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&cli(&["sim", "unreachable", "--list"])),
        "+15551234567\nzed@example.com\n"
    );
    // Usage: an address or --list, not both and not neither.
    assert_eq!(cli(&["sim", "unreachable"]).status.code(), Some(2));
    assert_eq!(
        cli(&["sim", "unreachable", "--list", "amy@example.com"])
            .status
            .code(),
        Some(2)
    );
}

/// `GET path` on `addr` (HOST:PORT), with `bearer` as the token: the status and the body.
fn http_get(addr: &str, path: &str, bearer: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let auth = bearer.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}connection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, body.to_owned())
}

#[test]
fn serve_prints_the_console_address_after_the_http_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = imgroups(&["serve", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
    cmd.arg("--data").arg(dir.path());
    let started = start(cmd);
    let at = started
        .stdout
        .iter()
        .position(|l| l.starts_with("http listening on "))
        .expect("the http line");
    let http = started.stdout[at]
        .strip_prefix("http listening on ")
        .expect("prefix");
    assert_eq!(
        started.stdout[at + 1],
        format!("console http://{http}/console/"),
        "{:?}",
        started.stdout
    );
    let (status, page) = http_get(http, "/console/", None);
    assert_eq!(status, 200);
    assert!(page.contains("imgroups console"), "{page}");
}

/// One configuration for every command: a file naming the store sends the store commands
/// where the server is; `serve`'s other keys are passed over; an unknown key fails them as
/// it fails `serve`.
#[test]
fn every_command_reads_the_configuration_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let file = write(
        dir.path(),
        "imgroups.toml",
        &format!(
            "data = {:?}\ngrpc = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\nheartbeat-secs = 5\n",
            data.to_str().expect("utf-8")
        ),
    );
    let file = file.to_str().expect("utf-8");
    let mut cmd = imgroups(&["serve"]);
    cmd.env("IMGROUPS_CONFIG", file);
    let _server = start(cmd);

    let out = run(imgroups(&[
        "account",
        "add",
        "bob@example.com",
        "--config",
        file,
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(imgroups(&["token", "list"]).env("IMGROUPS_CONFIG", file));
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = stdout(&out);
    assert!(
        listed.contains("me@imgroups.local") && listed.contains("bob@example.com"),
        "{listed}"
    );
    // Before the subcommand too; and a flag wins over the file.
    let out = run(imgroups(&[
        "--config",
        file,
        "sim",
        "unreachable",
        "--list",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let elsewhere = dir.path().join("elsewhere");
    let out = run(imgroups(&["token", "list", "--config", file, "--data"]).arg(&elsewhere));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "",
        "the flag's data directory, not the file's"
    );

    let bad = write(dir.path(), "bad.toml", "data = \"x\"\ndta = \"y\"\n");
    let out = run(imgroups(&["token", "list", "--config"]).arg(&bad));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("bad.toml: unknown key \"dta\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn not_found_errors_name_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8");
    let db = dir.path().join("imgroups.db");
    let store = format!("in the SQLite store at {}", db.display());
    for (args, code) in [
        (
            vec!["sim", "act", "zoe@example.net", "leave", "any;+;chat1"],
            "(chatNotFound)",
        ),
        (
            vec!["token", "create", "nobody@example.com"],
            "(addressNotFound)",
        ),
    ] {
        let out = run(imgroups(&args).args(["--data", data]));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(&store), "{args:?}: {err}");
        assert!(err.trim_end().ends_with(code), "{args:?}: {err}");
    }
    // Bad input is about the input, not the store.
    let out = run(imgroups(&["account", "add", "nope", "--data", data]));
    assert!(!stderr(&out).contains("SQLite"), "{}", stderr(&out));
}

#[test]
fn client_flags_work_before_the_subcommand_and_nowhere_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let token = server.token.clone().expect("first start prints a token");
    for args in [
        vec![
            "--server",
            &server.grpc,
            "--token",
            &token,
            "chats",
            "count",
        ],
        vec![
            "--token",
            &token,
            "chats",
            "count",
            "--server",
            &server.grpc,
        ],
        vec![
            "--server",
            "127.0.0.1:9",
            "chats",
            "count",
            "--server",
            &server.grpc,
            "--token",
            &token,
        ],
    ] {
        let out = run(imgroups(&args));
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out).trim(), "0", "{args:?}");
    }
    let out = run(imgroups(&["--token", &token, "token", "list", "--data"]).arg(dir.path()));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("client commands"), "{}", stderr(&out));
}

/// The group actions are described once: the console's list names exactly what `sim act`
/// and `groups` offer, with the same labels; a request the server would refuse without
/// looking at any state is refused by `groups` with the server's code and exit code.
#[test]
fn one_description_of_group_actions_for_every_surface() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let token = server.token.clone().expect("token");
    let data = dir.path().to_str().expect("utf-8");
    let admin = run(imgroups(&["admin", "token", "--data", data]));
    let admin = stdout(&admin).trim().to_owned();
    let console = format!("http://{}/console/", server.http);
    assert_eq!(server.console.as_deref(), Some(console.as_str()));
    let (status, body) = http_get(&server.http, "/console/api/actions", Some(&admin));
    assert_eq!(status, 200, "{body}");
    let (status, _) = http_get(&server.http, "/console/api/actions", Some(&token));
    assert_eq!(status, 401, "an account token does not open the console");
    let described: serde_json::Value = serde_json::from_str(&body).expect("json");
    let actions = described["actions"].as_array().expect("a list");
    let names: Vec<&str> = actions
        .iter()
        .map(|a| a["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "rename", "add", "remove", "leave", "icon-set", "icon-rm", "say", "reply", "react",
            "unreact", "edit", "unsend", "read"
        ]
    );
    assert_eq!(actions[0]["params"][0]["label"], "New name");
    for action in actions {
        let name = action["name"].as_str().expect("name");
        let out = run(imgroups(&["sim", "act", "zoe@example.net", name, "--help"]));
        assert!(out.status.success(), "sim act {name}: {}", stderr(&out));
        // `groups` offers the group changes; messages have their own commands.
        if action["family"] != "group" {
            continue;
        }
        let mut groups = vec!["groups"];
        groups.extend(name.split('-'));
        groups.push("--help");
        let out = run(imgroups(&groups));
        assert!(out.status.success(), "{groups:?}: {}", stderr(&out));
    }

    let remote =
        |args: &[&str]| run(imgroups(args).args(["--server", &server.grpc, "--token", &token]));
    let out = remote(&[
        "chats",
        "create",
        "b@example.com",
        "c@example.com",
        "d@example.com",
    ]);
    let chat = stdout(&out).trim().to_owned();
    for args in [
        vec!["groups", "rename", &chat, "   "],
        vec!["groups", "add", &chat, "e@example.com", "E@example.com"],
    ] {
        let out = remote(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).trim_end().ends_with("(invalidArgument)"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = remote(&["groups", "rename", &chat, "Trip"]);
    assert!(stdout(&out).contains("name\tTrip"), "{}", stderr(&out));
}

/// `config print` shows where the data would be, not that nothing was said about it.
#[test]
fn config_print_shows_the_data_directory_in_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(imgroups(&["config", "print"]).env("XDG_DATA_HOME", dir.path()));
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = format!(
        "data = {:?}  # default",
        dir.path().join("imgroups").to_str().expect("utf-8")
    );
    assert!(
        stdout(&out).lines().any(|l| l == expected),
        "{expected} in\n{}",
        stdout(&out)
    );
}
