//! The data directory: one server at a time, tools beside it, and files only its owner reads.

use std::process::{Command, Stdio};

use crate::support::{cli, Server, BIN};

/// A second `serve` on a data directory already being served is refused at once, naming the
/// holder's pid, and changes nothing; CLI commands beside the running server still work; once
/// the first server is gone (even by `kill -9`), a new one starts.
#[test]
fn a_second_server_on_one_data_directory_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start(dir.path(), &[]);
    let pid = first.pid();

    let second = Command::new(BIN)
        .arg("serve")
        .arg("--data")
        .arg(dir.path())
        .args(["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "stderr: {stderr}");
    assert!(second.stdout.is_empty(), "printed: {:?}", second.stdout);
    assert!(
        stderr.contains(&format!(
            "another imgroups server (pid {pid}) is already serving"
        )),
        "stderr: {stderr}"
    );
    assert!(stderr.contains("(preconditionFailed)"), "stderr: {stderr}");

    // Tools beside the server keep working.
    let token = cli(&["account", "add", "bob@example.com", "--data", path(&dir)]);
    assert!(!token.trim().is_empty());
    let tokens = cli(&["token", "list", "--data", path(&dir)]);
    assert!(tokens.contains("bob@example.com"), "{tokens}");

    first.kill9();
    let again = Server::start(dir.path(), &[]);
    assert_ne!(again.pid(), pid);
    again.stop();
}

/// Everything the server writes in a fresh data directory is private to its owner: the
/// directory 0700, the database with its WAL and shared-memory files, the token file and the
/// lock 0600.
#[cfg(unix)]
#[test]
fn data_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;

    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let server = Server::start(&dir, &[]);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    for name in [
        "imgroups.db",
        "imgroups.db-wal",
        "imgroups.db-shm",
        "imgroups.db-serve.lock",
        "token",
    ] {
        let file = dir.join(name);
        assert!(file.exists(), "{} missing", file.display());
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    server.stop();
}

fn path(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().unwrap()
}

/// A server on PostgreSQL given the data directory of a SQLite server writes its first token
/// to a token file of its own (`token-postgres-<HASH>`), never over the SQLite server's
/// `token`, which keeps working.
#[test]
fn a_server_on_another_store_keeps_its_own_token_file() {
    let Some(db) = imgroups_store_tests::pg::TestDatabase::create("token_files") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Server::start(dir.path(), &[]);
    let first = sqlite.token.clone().expect("first start prints a token");
    sqlite.stop();
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap().trim().to_owned();
    assert_eq!(read(&dir.path().join("token")), first);

    let pg = Server::start(dir.path(), &["--database-url", &db.url]);
    let second = pg.token.clone().expect("a new store prints a token");
    pg.stop();
    assert_ne!(first, second);
    assert_eq!(read(&dir.path().join("token")), first, "not overwritten");
    let own: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("token-postgres-"))
        })
        .collect();
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!(read(&own[0]), second);

    // The SQLite server's token still opens the SQLite server.
    let again = Server::start(dir.path(), &[]);
    let out = Command::new(BIN)
        .args(["chats", "count", "--server", &again.grpc, "--token", &first])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    again.stop();
}
