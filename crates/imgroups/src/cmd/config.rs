//! `imgroups config print`: the configuration `serve` would run with, as TOML.

use std::path::Path;

use imgroups_core::Error;

use crate::cli::ConfigCmd;
use crate::config::Entry;
use crate::output::print_text;

/// Prints `serve`'s effective configuration: its settings as resolved from the flags, the
/// environment and `file`.
pub(crate) fn run(
    cmd: ConfigCmd,
    file: Option<&Path>,
    mut entries: Vec<Entry>,
) -> Result<(), Error> {
    let ConfigCmd::Print(args) = cmd;
    // Unset, `data` still has a value: the directory `serve` would use. Printed as such, so
    // the output says where the data is rather than that nothing was said about it.
    if let Some(entry) = entries
        .iter_mut()
        .find(|e| e.key == "data" && e.values.is_empty())
    {
        if let Ok(dir) = args.data.dir() {
            entry.values = vec![dir.display().to_string()];
        }
    }
    let text = crate::config::render("serve", file, &entries);
    print_text(&text);
    Ok(())
}
