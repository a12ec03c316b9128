//! `imgroups completions SHELL` and `imgroups man`: generated from the same definitions as
//! `--help`.

use clap::CommandFactory;
use imgroups_core::{Error, ErrorKind};

use crate::cli::Cli;
use crate::output::print_text;

pub(crate) fn completions(shell: clap_complete::Shell) -> Result<(), Error> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "imgroups", &mut out);
    print_text(&String::from_utf8_lossy(&out));
    Ok(())
}

pub(crate) fn man() -> Result<(), Error> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|err| {
            Error::new(
                ErrorKind::Internal,
                format!("cannot render the man page: {err}"),
            )
        })?;
    print_text(&String::from_utf8_lossy(&out));
    Ok(())
}
