//! `imgroups serve`: assembles the parts (store, listeners, default account, backend, engine,
//! server) and runs them until SIGINT or SIGTERM. The order is the contract's:
//!
//! 1. the store, which on SQLite locks the data directory, so a second server on it is told
//!    so (with the holder's pid) rather than that its ports are taken;
//! 2. every listener, before the account: a taken port must fail the start before a fresh
//!    data directory's first token is made, or that token would never be shown;
//! 3. the default account (its first token printed and written to the token file);
//! 4. the backend and the engine (with `--backend chatdb`, everything chat.db holds is in the
//!    log before `ready`);
//! 5. the stdout lines, `ready`, and serving.
//!
//! The store is closed on every way out after step 1 (`store::closing`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use imgroups_core::port::{SimStore, Store};
use imgroups_core::{admin, Address, Engine, EngineConfig, Error, ErrorKind};
use tokio::net::TcpListener;

use crate::cli::backend::BackendKind;
use crate::cli::ops::Ops;
use crate::cli::serve::{ServeArgs, DEFAULT_ACCOUNT};
use crate::listen::{bind, local_addr};
use crate::store;

pub(crate) fn run(args: ServeArgs) -> Result<(), Error> {
    // Before the store opens: metric handles made earlier (the store's writer makes its
    // own) would record nothing.
    args.ops.install_metrics();
    let plan = Plan {
        address: account(&args)?,
        dir: args.data.dir()?,
        token_file: store::token_file(&args.data)?,
        options: args.server_options()?,
        engine: args.engine_config()?,
    };
    crate::runtime(tokio::runtime::Builder::new_multi_thread())?.block_on(async move {
        let store = store::open(&args.data, args.store_options())?;
        store::closing(store, |store| serve(args, plan, store)).await
    })
}

/// What `serve` settled from its flags before opening anything.
struct Plan {
    address: Address,
    dir: PathBuf,
    token_file: PathBuf,
    options: imgroups_server::Options,
    engine: EngineConfig,
}

/// The account `serve` runs as: `--account`, or with `--backend chatdb` and no `--account`
/// the Mac's own address, read from chat.db.
fn account(args: &ServeArgs) -> Result<Address, Error> {
    if args.backend.backend == BackendKind::Chatdb {
        let given = (args.account != DEFAULT_ACCOUNT).then_some(args.account.as_str());
        args.backend.account(given)
    } else {
        Address::parse(&args.account)
    }
}

/// The listeners `serve` answers on, and the addresses they got (port 0 picks one).
struct Listeners {
    grpc: TcpListener,
    grpc_addr: SocketAddr,
    http: TcpListener,
    http_addr: SocketAddr,
    ops: Ops,
}

impl Listeners {
    async fn bind(args: &ServeArgs) -> Result<Self, Error> {
        let grpc = bind(args.grpc, "gRPC").await?;
        let http = bind(args.http.addr, "HTTP").await?;
        let ops = args.ops.bind().await?;
        Ok(Listeners {
            grpc_addr: local_addr(&grpc)?,
            http_addr: local_addr(&http)?,
            grpc,
            http,
            ops,
        })
    }
}

/// The iMessage network the engine works on, once started.
enum Network {
    Simulator,
    /// This Mac's Messages: the thread watching chat.db, and where the helper is awaited.
    Mac {
        running: imgroups_macos::Running,
        helper: Option<SocketAddr>,
    },
}

impl Network {
    /// The engine over `store` and the network `args` choose, started.
    async fn start(
        args: &ServeArgs,
        store: Arc<dyn Store>,
        me: &Address,
        config: EngineConfig,
    ) -> Result<(Arc<Engine>, Network), Error> {
        if args.backend.backend != BackendKind::Chatdb {
            let engine = Engine::new(store, imgroups_sim::Simulator::network(), config);
            return Ok((Arc::new(engine), Network::Simulator));
        }
        let (mac, helper) = args.backend.mac(me.clone()).await?;
        let engine = Arc::new(Engine::new(store, mac.network(), config));
        // Everything chat.db holds up to now is in the log before `ready`.
        tracing::info!("reading chat.db");
        let started = {
            let engine = engine.clone();
            let handle = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || mac.start(engine, handle)).await
        };
        let (imported, running) = match started {
            Ok(Ok(started)) => started,
            Ok(Err(message)) => return Err(Error::new(ErrorKind::Internal, message)),
            Err(_) => return Err(Error::internal()),
        };
        tracing::info!(
            changes = imported.changes,
            recorded = imported.recorded,
            new_groups = imported.groups,
            messages = imported.messages,
            messages_recorded = imported.messages_recorded,
            ms = imported.elapsed.as_millis() as u64,
            "chat.db read; watching it for changes"
        );
        Ok((engine, Network::Mac { running, helper }))
    }

    async fn stop(self) {
        if let Network::Mac { running, .. } = self {
            let _ = tokio::task::spawn_blocking(move || running.stop()).await;
        }
    }
}

/// Gives the store a controllable clock (`--seed`), or takes one a previous run left.
async fn start_clock(args: &ServeArgs, store: &dyn Store) -> Result<(), Error> {
    if args.seed.is_some() && args.backend.backend == BackendKind::Chatdb {
        return Err(Error::invalid(
            "--seed is for the simulator: on a Mac, time and GUIDs are Messages'",
        )
        .with("field", "seed"));
    }
    if let Some(clock) = store.set_clock(args.seed).await? {
        tracing::info!(
            seed = clock.seed,
            now_nanos = clock.now.0,
            ids = clock.ids,
            "controllable clock: time moves only with `imgroups sim clock advance`"
        );
    }
    Ok(())
}

/// Steps 2 to 5 on the open store.
async fn serve(args: ServeArgs, plan: Plan, store: Arc<dyn SimStore>) -> Result<(), Error> {
    let Plan {
        address,
        dir,
        token_file,
        mut options,
        engine,
    } = plan;
    // The simulator's directory and faults are for the simulated network only: on a Mac the
    // server is given none (`imgroups_server::Options::sim`).
    if args.backend.backend != BackendKind::Chatdb {
        options.sim = Some(store.clone());
    }
    let listeners = Listeners::bind(&args).await?;
    // Before the account: it is made on the store's clock too.
    start_clock(&args, &*store).await?;
    let (_, first_token) = admin::ensure_account(&*store, &address).await?;
    if let Some(token) = &first_token {
        write_token_file(&token_file, token);
    }
    let (engine, network) = Network::start(&args, store, &address, engine).await?;
    let shutdown = shutdown_signal();

    let (grpc_local, http_local) = (listeners.grpc_addr, listeners.http_addr);
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let console = format!("{scheme}://{http_local}/console/");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "account {address}");
    if let Some(token) = &first_token {
        let _ = writeln!(out, "token {token}");
    }
    let _ = writeln!(out, "grpc listening on {grpc_local}");
    let _ = writeln!(out, "http listening on {http_local}");
    let _ = writeln!(out, "console {console}");
    listeners.ops.announce(&mut out);
    if let Network::Mac {
        helper: Some(helper),
        ..
    } = &network
    {
        let _ = writeln!(out, "helper listening on {helper}");
    }
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    drop(out);
    tracing::info!(data = %dir.display(), grpc = %grpc_local, http = %http_local, "serving");
    tracing::info!("web console at {console} (sign in with `imgroups admin token`)");

    let served = imgroups_server::serve_with(
        listeners.grpc,
        listeners.http,
        engine,
        options,
        args.http.options(),
        listeners.ops.options(),
        shutdown,
    )
    .await;
    network.stop().await;
    served.map_err(|err| {
        tracing::error!(error = %err, "server failed");
        Error::internal()
    })?;
    tracing::info!("stopped");
    Ok(())
}

/// Writes the default account's first token for scripts that start the server unattended
/// (mode 0600). Failing to is logged, not fatal: the token was printed.
fn write_token_file(path: &Path, token: &str) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path).and_then(|mut f| writeln!(f, "{token}")) {
        Ok(()) => tracing::info!(path = %path.display(), "token written"),
        Err(err) => {
            tracing::warn!(error = %err, path = %path.display(), "cannot write the token file")
        }
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed by this call, not on the first
/// poll: called before `ready` is printed, a signal sent right after `ready` is never lost to
/// the default action (death by signal instead of a clean exit). Needs the runtime.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (term, int) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            async fn recv(s: Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = recv(term) => {}
                _ = recv(int) => {}
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down");
    }
}
