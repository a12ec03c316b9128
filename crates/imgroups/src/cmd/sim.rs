//! `imgroups sim reset|unreachable|fault|act`: clearing the simulated world, its directory,
//! injected faults, and puppets (people in the network who change groups and talk).

use imgroups_core::port::Fault;
use imgroups_core::{admin, Address, Engine, EngineConfig, Error, FaultId, Limits, Timestamp};

use imgroups_sim::Simulator;

use crate::cli::{ClockCmd, FaultCmd, SimCmd};
use crate::output::{print_each, print_text, rfc3339};
use crate::store::{simulated_world, with_store};

pub(crate) fn run(cmd: SimCmd) -> Result<(), Error> {
    match cmd {
        SimCmd::Reset { all, data } => with_store(&data.clone(), |store| async move {
            simulated_world(&*store, &data, "a reset").await?;
            store
                .reset(imgroups_core::port::ResetScope { accounts: all })
                .await?;
            print_text(&format!("reset {}", store.resets().await?));
            Ok(())
        }),
        SimCmd::Unreachable {
            address,
            reachable,
            list,
            data,
        } => with_store(&data, |store| async move {
            match address {
                Some(address) if !list => {
                    let address = Address::parse(&address)?;
                    imgroups_sim::set_unreachable(&*store, &address, !reachable).await
                }
                // Clap requires an address unless --list, and forbids both.
                _ => {
                    print_each(store.unreachable().await?, |address| address.to_string());
                    Ok(())
                }
            }
        }),
        SimCmd::Fault(cmd) => fault(cmd),
        SimCmd::Clock(cmd) => clock(cmd),
        // `main` runs these: their exit codes are their own.
        SimCmd::Snapshot(cmd) => super::snapshot::run(cmd),
        SimCmd::Expect(_) | SimCmd::Play(_) | SimCmd::Seed(_) => Err(Error::internal()),
        SimCmd::Act {
            address,
            action,
            data,
        } => with_store(&data.clone(), |store| async move {
            simulated_world(&*store, &data, "a puppet's act").await?;
            let puppet = Address::parse(&address)?;
            // Validated like the same request from an account, with the default limits.
            let command = action.0.command(&Limits::default())?;
            let engine = Engine::new(store, Simulator::network(), EngineConfig::default());
            // A message sent: its GUID, for the next act (reply, react, edit, unsend).
            if let imgroups_core::Outcome::Message(message) =
                imgroups_sim::act(&engine, &puppet, command).await?
            {
                print_text(&message.guid);
            }
            Ok(())
        }),
    }
}

fn clock(cmd: ClockCmd) -> Result<(), Error> {
    match cmd {
        ClockCmd::Show { json, data } => with_store(&data, |store| async move {
            print_clock(store.clock().await?, json);
            Ok(())
        }),
        ClockCmd::Advance {
            duration,
            json,
            data,
        } => {
            // Checked before the store is opened: a bad duration changes nothing.
            let nanos = imgroups_core::clock::parse_duration(&duration)?;
            with_store(&data, |store| async move {
                let clock = store.advance_clock(nanos).await?;
                print_clock(Some(clock), json);
                Ok(())
            })
        }
    }
}

fn print_clock(clock: Option<imgroups_core::clock::SimClock>, json: bool) {
    let now = clock.map_or_else(Timestamp::now, |c| c.now);
    let nanos = u64::try_from(now.0).unwrap_or(0);
    let at =
        humantime::format_rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos));
    if json {
        let line = serde_json::json!({
            "controllable": clock.is_some(),
            "now": at.to_string(),
            "nowNanos": now.0,
            "seed": clock.map(|c| c.seed),
            "ids": clock.map(|c| c.ids),
        });
        print_text(&format!("{line}\n"));
    } else {
        match clock {
            Some(clock) => print_text(&format!("{at} seed {}\n", clock.seed)),
            None => print_text(&format!("{at} system\n")),
        }
    }
}

fn fault(cmd: FaultCmd) -> Result<(), Error> {
    match cmd {
        FaultCmd::Add {
            address,
            method,
            code,
            retryable,
            latency_ms,
            count,
            for_secs,
            json,
            data,
        } => {
            let request = imgroups_server::FaultRequest {
                method: &method,
                code: code.as_deref(),
                retryable,
                latency_ms: latency_ms.unwrap_or(0),
                count,
                for_secs,
            };
            // Checked before the store is opened: a typo needs no data directory.
            request.check()?;
            let address = Address::parse(&address)?;
            with_store(&data, |store| async move {
                let account = admin::account(&*store, &address).await?;
                let fault = store
                    .add_fault(&request.fault(account, store.now().await?)?)
                    .await?;
                let line = if json {
                    fault_json(&fault).to_string()
                } else {
                    format!("fault {}: {}", fault.id, describe_fault(&fault))
                };
                print_text(&format!("{line}\n"));
                Ok(())
            })
        }
        FaultCmd::List { json, data } => with_store(&data, |store| async move {
            print_each(store.faults().await?, |f| {
                if json {
                    return fault_json(&f).to_string();
                }
                let dash = || "-".to_owned();
                format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    f.id,
                    f.address,
                    f.spec.method,
                    f.spec.error_code.clone().unwrap_or_else(dash),
                    f.spec.retryable,
                    f.spec.latency_ms,
                    f.spec.count.map_or_else(dash, |n| n.to_string()),
                    f.spec.until.map_or_else(dash, |t| rfc3339(t.seconds())),
                )
            });
            Ok(())
        }),
        FaultCmd::Clear {
            id,
            account,
            all,
            data,
        } => with_store(&data, |store| async move {
            let cleared = match (id, account) {
                (Some(id), _) => store.clear_faults(None, Some(FaultId(id))).await?,
                (None, Some(address)) => {
                    let address = Address::parse(&address)?;
                    let account = admin::account(&*store, &address).await?;
                    store.clear_faults(Some(account), None).await?
                }
                // Clap requires exactly one of ID, --account and --all.
                (None, None) => {
                    debug_assert!(all);
                    store.clear_faults(None, None).await?
                }
            };
            print_text(&format!("cleared {cleared}\n"));
            Ok(())
        }),
    }
}

/// A fault in one line, e.g. `SetDisplayName calls by a@x.com fail with databaseError
/// (retryable) after 200 ms; 3 left`.
fn describe_fault(f: &Fault) -> String {
    let spec = &f.spec;
    let which = match spec.method.as_str() {
        "*" => format!("all calls by {}", f.address),
        method => format!("{method} calls by {}", f.address),
    };
    let retryable = if spec.retryable { " (retryable)" } else { "" };
    let what = match (&spec.error_code, spec.latency_ms) {
        (Some(code), 0) => format!("fail with {code}{retryable}"),
        (Some(code), ms) => format!("fail with {code}{retryable} after {ms} ms"),
        (None, ms) => format!("are delayed {ms} ms"),
    };
    let limit = match (spec.count, spec.until) {
        (Some(n), Some(t)) => format!("{n} left, until {}", rfc3339(t.seconds())),
        (Some(n), None) => format!("{n} left"),
        (None, Some(t)) => format!("until {}", rfc3339(t.seconds())),
        (None, None) => "until cleared".to_owned(),
    };
    format!("{which} {what}; {limit}")
}

fn fault_json(f: &Fault) -> serde_json::Value {
    serde_json::json!({
        "id": f.id,
        "account": f.address.to_string(),
        "method": f.spec.method,
        "code": f.spec.error_code,
        "retryable": f.spec.retryable,
        "latencyMs": f.spec.latency_ms,
        "left": f.spec.count,
        "until": f.spec.until.map(|t| rfc3339(t.seconds())),
        "untilUnix": f.spec.until.map(Timestamp::seconds),
        "created": rfc3339(f.created_at.seconds()),
    })
}
