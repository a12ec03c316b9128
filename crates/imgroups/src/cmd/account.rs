//! `imgroups account add`: a new account, its first token the only stdout line.

use imgroups_core::{admin, Address, Error};

use super::token::print_token;
use crate::cli::AccountCmd;
use crate::store::with_store;

pub(crate) fn run(cmd: AccountCmd) -> Result<(), Error> {
    match cmd {
        AccountCmd::Add {
            address,
            json,
            data,
        } => with_store(&data, |store| async move {
            let address = Address::parse(&address)?;
            let token = admin::add_account(&*store, &address).await?;
            print_token(&address, &token, json);
            Ok(())
        }),
    }
}
