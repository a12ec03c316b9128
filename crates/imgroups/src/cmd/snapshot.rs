//! `imgroups sim snapshot export|import FILE`: the simulated world to a file and back
//! (`imgroups_core::snapshot`; docs/simulator.md, "Snapshots").

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use imgroups_core::snapshot::Snapshot;
use imgroups_core::Error;

use crate::cli::SnapshotCmd;
use crate::output::print_text;
use crate::store::{simulated_world, with_store};

pub(crate) fn run(cmd: SnapshotCmd) -> Result<(), Error> {
    match cmd {
        SnapshotCmd::Export { file, data } => with_store(&data, |store| async move {
            let world = store.export().await?;
            write(&file, &world.to_json())?;
            report("exported", &world, &file);
            Ok(())
        }),
        SnapshotCmd::Import { file, data } => {
            // Read and checked before the store is opened: a bad file changes nothing.
            let world = Snapshot::from_json(&read(&file)?).map_err(|err| in_file(err, &file))?;
            with_store(&data.clone(), |store| async move {
                simulated_world(&*store, &data, "a snapshot import").await?;
                let summary = world.clone();
                store.import(world).await?;
                report("imported", &summary, &file);
                Ok(())
            })
        }
    }
}

/// One line of what the file holds; on standard error when the snapshot itself goes to
/// standard output.
fn report(done: &str, world: &Snapshot, file: &Path) {
    let (messages, events) = world.accounts.iter().fold((0, 0), |(m, e), a| {
        (m + a.messages.len(), e + a.events.len())
    });
    let line = format!(
        "{done} {} accounts, {} groups, {messages} messages, {events} events{}\n",
        world.accounts.len(),
        world.groups.len(),
        match &world.clock {
            Some(clock) => format!(", clock seed {}", clock.seed),
            None => String::new(),
        }
    );
    if is_stdio(file) {
        eprintln!("{line}");
    } else {
        print_text(&line);
    }
}

fn is_stdio(file: &Path) -> bool {
    file.as_os_str() == "-"
}

fn read(file: &Path) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    let read = if is_stdio(file) {
        std::io::stdin().read_to_end(&mut bytes).map(drop)
    } else {
        std::fs::read(file).map(|b| bytes = b)
    };
    read.map_err(|err| {
        Error::invalid(format!("cannot read {}: {err}", file.display())).with("field", "file")
    })?;
    Ok(bytes)
}

/// Writes `bytes` whole: to a temporary file beside `file`, then renamed over it, so a crash
/// or a full disk never leaves half a snapshot where a good one was.
fn write(file: &Path, bytes: &[u8]) -> Result<(), Error> {
    let failed = |err: std::io::Error| {
        Error::invalid(format!("cannot write {}: {err}", file.display())).with("field", "file")
    };
    if is_stdio(file) {
        let mut out = std::io::stdout().lock();
        return out
            .write_all(bytes)
            .and_then(|()| out.flush())
            .map_err(failed);
    }
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(failed)?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(failed)?;
    tmp.persist(file).map_err(|err| failed(err.error))?;
    Ok(())
}

/// A snapshot's error, naming the file.
fn in_file(mut err: Error, file: &Path) -> Error {
    let name = if is_stdio(file) {
        "standard input".to_owned()
    } else {
        file.display().to_string()
    };
    err.message = format!("{name}: {}", err.message);
    err
}
