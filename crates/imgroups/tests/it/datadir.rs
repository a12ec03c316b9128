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
