//! Configuration files (`--config FILE` / `IMGROUPS_CONFIG`): `serve`'s settings, read by
//! every command, and `config print`.
//!
//! The file is TOML whose keys are the long names of `serve`'s flags (`grpc`,
//! `heartbeat-secs`, `database-url`, …; `heartbeat_secs` is accepted too). Precedence is
//! flag > env > file > default. `serve` and `config print` take every key
//! ([`Scheme::full`]); every other command takes the keys it shares with `serve`
//! ([`Scheme::shared`]: the store's location, the log format) when it has that flag, and
//! passes over the rest of `serve`'s keys. A key that is not `serve`'s fails every command,
//! so a typo is never silently ignored.
//!
//! Why this works by re-parsing instead of a serde struct: a second list of settings would
//! drift from the clap definitions, and flags added later (also those flattened in from other
//! modules) would silently have no key. Here the clap `Command` is the only list: the command
//! line is parsed once, every file key names an argument of the subcommand that ran, a file
//! value is used only where `ArgMatches::value_source` says neither the command line nor the
//! environment gave one, and such values are appended to the command line as `--key=value`
//! and everything is parsed again, so clap validates them exactly like typed flags.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches};

/// The argument id of `--config` (a global flag: every subcommand has it).
pub(crate) const CONFIG_ARG: &str = "config";

/// Which commands take which keys of the file.
pub(crate) struct Scheme<'a> {
    /// The subcommands (as paths, e.g. `["config", "print"]`) that take every key: they have
    /// every flag of [`Scheme::keys_of`].
    pub(crate) full: &'a [&'a [&'a str]],
    /// The subcommand whose flags are the file's keys.
    pub(crate) keys_of: &'a [&'a str],
    /// The keys every other subcommand takes from the file, where it has the flag.
    pub(crate) shared: &'a [&'a str],
}

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Flag,
    Env,
    File,
    Default,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Flag => "flag",
            Origin::Env => "env",
            Origin::File => "file",
            Origin::Default => "default",
        }
    }
}

/// One key of the effective configuration.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) key: String,
    /// The raw values as clap holds them (several for a repeatable flag); empty when unset.
    pub(crate) values: Vec<String>,
    pub(crate) origin: Origin,
    /// `--flag` without a value: printed as a TOML boolean.
    pub(crate) switch: bool,
    /// Several values allowed: printed as a TOML array.
    pub(crate) many: bool,
    pub(crate) env: Option<String>,
}

/// The parsed command line with the configuration file applied.
pub(crate) struct Resolved<C> {
    pub(crate) cli: C,
    /// The file read, if any.
    pub(crate) file: Option<PathBuf>,
    /// Every key of the subcommand that ran, in definition order (empty for other commands).
    pub(crate) entries: Vec<Entry>,
}

/// Why the command line could not be resolved.
pub(crate) enum ConfigError {
    /// clap's own error (usage, `--help`, `--version`): it prints and exits itself.
    Clap(clap::Error),
    /// A problem with the configuration file: one line, exit 2.
    File(String),
}

/// Parses `args` as `C`, then applies the configuration file named by `--config` (or
/// `IMGROUPS_CONFIG`) as `scheme` says.
pub(crate) fn resolve<C>(
    args: Vec<OsString>,
    scheme: &Scheme<'_>,
) -> Result<Resolved<C>, ConfigError>
where
    C: CommandFactory + FromArgMatches,
{
    let mut command = C::command();
    // Built, so global arguments (`--log-format`) are also arguments of each subcommand.
    command.build();
    let first = command
        .clone()
        .try_get_matches_from(&args)
        .map_err(ConfigError::Clap)?;
    let ran = ran(&first);
    let path: Vec<&str> = ran.iter().map(String::as_str).collect();
    let full = scheme.full.contains(&path.as_slice());
    let sub = find_command(&command, &path).ok_or_else(|| {
        ConfigError::File(format!("internal error: no subcommand {}", path.join(" ")))
    })?;
    let all_keys = find_command(&command, scheme.keys_of)
        .map(keyed_args)
        .unwrap_or_default();
    let keyed: Vec<&Arg> = if full {
        keyed_args(sub)
    } else {
        keyed_args(sub)
            .into_iter()
            .filter(|a| {
                a.get_long()
                    .is_some_and(|long| scheme.shared.contains(&long))
            })
            .collect()
    };
    let matches_first = sub_matches(&first, &path).unwrap_or(&first);
    let file = matches_first
        .try_get_one::<PathBuf>(CONFIG_ARG)
        .ok()
        .flatten()
        .cloned();

    let mut injected = BTreeSet::new();
    let mut extra = Vec::new();
    if let Some(file) = &file {
        for (key, value) in read_table(file)? {
            let Some(arg) = lookup(&keyed, &key) else {
                if lookup(&all_keys, &key).is_some() {
                    continue; // `serve`'s, not this command's.
                }
                return Err(unknown_key(file, &key, &all_keys));
            };
            let id = arg.get_id().as_str();
            if matches!(
                matches_first.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            ) {
                continue;
            }
            extra.extend(words(file, &key, arg, value)?);
            injected.insert(id.to_owned());
        }
    }
    let matches = if extra.is_empty() {
        first
    } else {
        // The values were checked one by one above. Appended as `--key=value` flags, before
        // a `--` that would make them positionals.
        let mut args = args;
        let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
        args.splice(at..at, extra);
        command
            .clone()
            .try_get_matches_from(&args)
            .map_err(ConfigError::Clap)?
    };
    let cli = C::from_arg_matches(&matches).map_err(ConfigError::Clap)?;
    let entries = if full {
        let final_sub = sub_matches(&matches, &path).unwrap_or(&matches);
        keyed
            .iter()
            .map(|arg| entry(arg, final_sub, &injected))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Resolved { cli, file, entries })
}

/// The names of the subcommands that ran, outermost first.
fn ran(matches: &ArgMatches) -> Vec<String> {
    let mut path = Vec::new();
    let mut current = matches;
    while let Some((name, sub)) = current.subcommand() {
        path.push(name.to_owned());
        current = sub;
    }
    path
}

/// The matches of the subcommand at `path`, if that subcommand ran.
fn sub_matches<'m>(matches: &'m ArgMatches, path: &[&str]) -> Option<&'m ArgMatches> {
    let mut current = matches;
    for name in path {
        match current.subcommand() {
            Some((n, m)) if n == *name => current = m,
            _ => return None,
        }
    }
    Some(current)
}

fn find_command<'c>(command: &'c clap::Command, path: &[&str]) -> Option<&'c clap::Command> {
    let mut current = command;
    for name in path {
        current = current.find_subcommand(name)?;
    }
    Some(current)
}

/// The arguments that have a key: every long flag except `--config` itself, clap's own, and
/// hidden ones (the client commands' flags, global only so that they may come first).
pub(crate) fn keyed_args(command: &clap::Command) -> Vec<&Arg> {
    command
        .get_arguments()
        .filter(|a| {
            let id = a.get_id().as_str();
            a.get_long().is_some()
                && id != CONFIG_ARG
                && !a.is_hide_set()
                && !matches!(a.get_action(), ArgAction::Help | ArgAction::Version)
        })
        .collect()
}

fn lookup<'a>(keyed: &[&'a Arg], key: &str) -> Option<&'a Arg> {
    let long = key.replace('_', "-");
    keyed.iter().copied().find(|a| a.get_long() == Some(&long))
}

fn unknown_key(file: &Path, key: &str, keyed: &[&Arg]) -> ConfigError {
    let best = keyed
        .iter()
        .filter_map(|a| a.get_long())
        .map(|long| (strsim::jaro_winkler(key, long), long))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let hint = match best {
        Some((_, long)) => format!(" (did you mean \"{long}\"?)"),
        None => String::new(),
    };
    ConfigError::File(format!("{}: unknown key \"{key}\"{hint}", file.display()))
}

fn read_table(file: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(file)
        .map_err(|err| ConfigError::File(format!("cannot read {}: {err}", file.display())))?;
    text.parse::<toml::Table>().map_err(|err| {
        // toml's message spans several lines (a snippet with a caret under the column); one
        // line says the same: where, then what.
        let rendered = err.to_string();
        let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
        let first = lines.next().unwrap_or("invalid TOML");
        let what = lines.next_back().unwrap_or_default();
        ConfigError::File(format!("{}: {first}: {what}", file.display()))
    })
}

/// The command-line words that give `arg` the file's `value`, each checked by the argument's
/// own value parser so a bad value is reported with its key and file.
fn words(
    file: &Path,
    key: &str,
    arg: &Arg,
    value: toml::Value,
) -> Result<Vec<OsString>, ConfigError> {
    let long = arg.get_long().unwrap_or(key);
    let bad =
        |what: String| ConfigError::File(format!("{}: key \"{key}\": {what}", file.display()));
    match arg.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse => match value {
            toml::Value::Boolean(on) => {
                let given = matches!(arg.get_action(), ArgAction::SetTrue) == on;
                Ok(if given {
                    vec![format!("--{long}").into()]
                } else {
                    Vec::new()
                })
            }
            other => Err(bad(format!(
                "expected true or false, found {}",
                other.type_str()
            ))),
        },
        ArgAction::Append => {
            let items = match value {
                toml::Value::Array(items) => items,
                one => vec![one],
            };
            items
                .into_iter()
                .map(|item| checked(arg, long, &item).map_err(&bad))
                .collect()
        }
        _ => Ok(vec![checked(arg, long, &value).map_err(bad)?]),
    }
}

/// `--long=value` after running `value` through the argument's parser.
fn checked(arg: &Arg, long: &str, value: &toml::Value) -> Result<OsString, String> {
    let text = match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => {
            return Err(format!(
                "expected a single value, found {}",
                other.type_str()
            ))
        }
    };
    let word = format!("--{long}={text}");
    // A throw-away command with only this argument: its parser, possible values and ranges
    // apply, and nothing else (no other argument can be missing or conflict).
    let probe = clap::Command::new("imgroups")
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(arg.clone().env(None::<&str>).required(false).global(false));
    match probe.try_get_matches_from([word.as_str()]) {
        Ok(_) => Ok(word.into()),
        Err(err) => {
            let rendered = err.to_string();
            let line = rendered.lines().next().unwrap_or_default();
            let mut message = line.strip_prefix("error: ").unwrap_or(line).to_owned();
            let choices: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_owned())
                .collect();
            if !choices.is_empty() {
                let _ = write!(message, " (one of: {})", choices.join(", "));
            }
            Err(message)
        }
    }
}

fn entry(arg: &Arg, matches: &ArgMatches, injected: &BTreeSet<String>) -> Entry {
    let id = arg.get_id().as_str();
    let values: Vec<String> = matches
        .get_raw(id)
        .map(|raw| raw.map(|v| v.to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let origin = if injected.contains(id) {
        Origin::File
    } else {
        match matches.value_source(id) {
            Some(ValueSource::CommandLine) => Origin::Flag,
            Some(ValueSource::EnvVariable) => Origin::Env,
            _ => Origin::Default,
        }
    };
    Entry {
        key: arg.get_long().unwrap_or(id).to_owned(),
        values,
        origin,
        switch: matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse),
        many: matches!(arg.get_action(), ArgAction::Append),
        env: arg.get_env().map(|e| e.to_string_lossy().into_owned()),
    }
}

/// Whether a key's value must never be printed (tokens, secrets, passwords). A limit
/// (`max-…`, e.g. `max-event-streams-per-token`) is a number about tokens, not one.
fn is_secret(key: &str) -> bool {
    !key.starts_with("max-")
        && ["token", "secret", "password", "passwd"]
            .iter()
            .any(|word| key.contains(word))
}

const REDACTED: &str = "<redacted>";

/// `value` with any password removed: the `user:password@` of a URL and `password=…` of a
/// libpq key-value string or URL query.
pub(crate) fn redact_url(value: &str) -> String {
    let mut out = value.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                let start = rest_start + colon + 1;
                out.replace_range(start..rest_start + at, REDACTED);
            }
        }
    }
    // `password=…` up to the next separator, in a query (`&`) or key-value form (space).
    let mut searched = 0;
    while let Some(i) = out[searched..].find("password=") {
        let start = searched + i + "password=".len();
        let end = out[start..]
            .find(['&', ' ', '#'])
            .map_or(out.len(), |j| start + j);
        out.replace_range(start..end, REDACTED);
        searched = start + REDACTED.len();
    }
    out
}

/// The effective configuration as TOML, each key with its origin in a comment, secrets
/// redacted. Parsing the output as a file gives the same configuration (less the secrets).
pub(crate) fn render(command: &str, file: Option<&Path>, entries: &[Entry]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Effective configuration of `imgroups {command}`; precedence: flag > env > file > default."
    );
    match file {
        Some(file) => {
            let _ = writeln!(out, "# File: {}", file.display());
        }
        None => {
            let _ = writeln!(out, "# File: none (--config FILE or IMGROUPS_CONFIG)");
        }
    }
    for e in entries {
        let origin = match (&e.origin, &e.env) {
            (Origin::Env, Some(env)) => format!("env {env}"),
            (origin, _) => origin.as_str().to_owned(),
        };
        let shown: Vec<String> = e
            .values
            .iter()
            .map(|v| {
                if is_secret(&e.key) {
                    REDACTED.to_owned()
                } else if e.key.contains("url") {
                    redact_url(v)
                } else {
                    v.clone()
                }
            })
            .collect();
        let value = if e.switch {
            let on = shown.first().is_some_and(|v| v == "true");
            Some(on.to_string())
        } else if e.many {
            Some(format!(
                "[{}]",
                shown
                    .iter()
                    .map(|v| literal(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        } else {
            shown.first().map(|v| literal(v))
        };
        match value {
            Some(value) => {
                let _ = writeln!(out, "{} = {value}  # {origin}", e.key);
            }
            None => {
                let _ = writeln!(out, "# {} is not set  # {origin}", e.key);
            }
        }
    }
    out
}

/// A TOML literal for a raw value: plain decimal integers as integers (so the file reads
/// like a hand-written one), everything else as a string. Both read back the same way: file
/// values go through the flag's own parser.
fn literal(raw: &str) -> String {
    let integer = !raw.is_empty()
        && raw.len() < 19
        && raw.bytes().all(|b| b.is_ascii_digit())
        && (raw == "0" || !raw.starts_with('0'));
    if integer {
        raw.to_owned()
    } else {
        toml::Value::String(raw.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use clap::{Args, Parser, Subcommand};

    use super::{is_secret, redact_url, resolve, ConfigError, Origin, Resolved};

    /// A stand-in for the binary's definitions, with the kinds of flags `serve` may grow:
    /// a flattened group (as `OpsArgs`), a switch, a repeatable flag, a global flag.
    #[derive(Parser)]
    struct Test {
        #[arg(long, global = true, default_value = "text")]
        log_format: String,
        #[command(subcommand)]
        cmd: TestCmd,
    }

    #[derive(Subcommand)]
    enum TestCmd {
        Serve(TestServe),
        Other,
    }

    #[derive(Args)]
    struct TestServe {
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        #[arg(long, default_value_t = 30)]
        heartbeat_secs: u64,
        #[arg(long)]
        verbose: bool,
        #[arg(long)]
        tag: Vec<String>,
        #[command(flatten)]
        ops: TestOps,
    }

    #[derive(Args)]
    struct TestOps {
        #[arg(long)]
        metrics: Option<std::net::SocketAddr>,
        #[arg(long, default_value_t = 0)]
        shutdown_drain_ms: u64,
    }

    fn run(file: &str, args: &[&str]) -> Result<Resolved<Test>, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.toml");
        std::fs::write(&path, file).expect("write");
        let mut argv: Vec<OsString> = vec!["t".into(), "serve".into(), "--config".into()];
        argv.push(path.into_os_string());
        argv.extend(args.iter().map(OsString::from));
        resolve::<Test>(argv, &SCHEME)
    }

    const SCHEME: super::Scheme<'static> = super::Scheme {
        full: &[&["serve"]],
        keys_of: &["serve"],
        shared: &["log-format"],
    };

    #[test]
    fn every_kind_of_flag_gets_a_key() {
        let file = "heartbeat_secs = 5\nverbose = true\ntag = [\"a\", \"b\"]\n\
                    metrics = \"127.0.0.1:9\"\nshutdown-drain-ms = 250\nlog-format = \"json\"\n";
        let Ok(resolved) = run(file, &["--shutdown-drain-ms", "7"]) else {
            panic!("resolves");
        };
        let TestCmd::Serve(serve) = resolved.cli.cmd else {
            panic!("serve");
        };
        assert_eq!(serve.heartbeat_secs, 5);
        assert!(serve.verbose);
        assert_eq!(serve.tag, ["a", "b"]);
        assert_eq!(serve.ops.metrics.map(|m| m.port()), Some(9));
        assert_eq!(
            serve.ops.shutdown_drain_ms, 7,
            "the flag wins over the file"
        );
        assert_eq!(resolved.cli.log_format, "json");
        let origin = |key: &str| {
            resolved
                .entries
                .iter()
                .find(|e| e.key == key)
                .map(|e| e.origin)
        };
        assert_eq!(origin("shutdown-drain-ms"), Some(Origin::Flag));
        assert_eq!(origin("metrics"), Some(Origin::File));
        assert_eq!(origin("log-format"), Some(Origin::File));
        assert_eq!(origin("config"), None, "--config has no key");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let message = |file: &str| match run(file, &[]) {
            Err(ConfigError::File(message)) => message,
            Err(ConfigError::Clap(err)) => panic!("clap error {err}"),
            Ok(_) => panic!("{file} accepted"),
        };
        assert!(message("metrcs = \"x\"\n")
            .contains("unknown key \"metrcs\" (did you mean \"metrics\"?)"));
        assert!(message("verbose = \"yes\"\n").contains("key \"verbose\": expected true or false"));
        assert!(message("metrics = 5\n").contains("key \"metrics\": invalid value"));
        assert!(message("[serve]\nmetrics = 5\n").contains("unknown key \"serve\""));
    }

    #[test]
    fn other_commands_ignore_the_file() {
        let argv: Vec<OsString> = vec!["t".into(), "other".into()];
        assert!(resolve::<Test>(argv, &SCHEME).is_ok());
    }

    #[test]
    fn secret_keys_are_recognised_and_limits_are_not() {
        assert!(is_secret("api-token"));
        assert!(is_secret("webhook-secret"));
        assert!(!is_secret("max-event-streams-per-token"));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cr%40t@db:5432/imgroups"),
            "postgres://app:<redacted>@db:5432/imgroups"
        );
        assert_eq!(
            redact_url("postgres://app@db/imgroups?password=x&sslmode=require"),
            "postgres://app@db/imgroups?password=<redacted>&sslmode=require"
        );
        assert_eq!(
            redact_url("host=db user=app password=x dbname=imgroups"),
            "host=db user=app password=<redacted> dbname=imgroups"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
    }
}
