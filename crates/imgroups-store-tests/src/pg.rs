//! PostgreSQL databases for tests: each test gets a database of its own, created on the
//! server named by `IMGROUPS_TEST_DATABASE_URL` (a URL whose user may create databases) and
//! dropped afterwards, so runs never share state. Without that variable PostgreSQL tests are
//! skipped with a message saying so — unless `CI=true`, where skipping would hide a broken
//! setup, so they fail instead. `.ci/run` sets the variable (starting a throwaway cluster
//! where no server is running).

use std::sync::atomic::{AtomicU32, Ordering};

/// The variable naming the server tests create their databases on.
pub const URL_VAR: &str = "IMGROUPS_TEST_DATABASE_URL";

/// A database of one test's own; dropped with this value.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    /// Where the test's stores connect.
    pub url: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl TestDatabase {
    /// A new, empty database; `None` (after saying why) where PostgreSQL tests are skipped.
    pub fn create(test: &str) -> Option<Self> {
        let Ok(admin_url) = std::env::var(URL_VAR) else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{URL_VAR} is not set, and CI=true: the PostgreSQL tests must run");
            }
            eprintln!("skipped {test}: {URL_VAR} is not set (no PostgreSQL to test against)");
            return None;
        };
        let name = format!(
            "imgroups_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst),
            test.chars()
                .filter(char::is_ascii_alphanumeric)
                .take(20)
                .collect::<String>()
                .to_ascii_lowercase()
        );
        let url = with_database(&admin_url, &name);
        admin(&admin_url, format!("CREATE DATABASE {name}"));
        Some(TestDatabase {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        admin(
            &self.admin_url,
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// `url` with its database replaced by `name` (URL form: `postgres://…/db?…`).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{host_part}/{name}{query}")
}

/// Runs one statement on the admin database, on a thread of its own (callers may be inside
/// a runtime, or in a destructor).
fn admin(url: &str, statement: String) {
    let url = url.to_owned();
    let result = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("cannot connect to {url}: {e}"))?;
            tokio::spawn(connection);
            client
                .batch_execute(&statement)
                .await
                .map_err(|e| format!("{statement}: {e}"))
        })
    })
    .join();
    match result {
        Ok(Ok(())) => {}
        Ok(Err(err)) => panic!("test database: {err}"),
        Err(_) => panic!("test database: the admin thread panicked"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_names_are_replaced() {
        assert_eq!(
            super::with_database("postgres://u@h:5432/test", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            super::with_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(
            super::with_database("postgres://u@h", "x"),
            "postgres://u@h/x"
        );
    }
}
