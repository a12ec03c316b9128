//! Listeners for `serve`'s surfaces. Failing to listen is the machine's state (port taken,
//! address not local, no permission), not bad input, so it is not `invalidArgument`: the
//! message names the address, the surface and the OS's reason.

use std::net::SocketAddr;

use imgroups_core::{Error, ErrorKind};
use tokio::net::TcpListener;

/// A listener on `addr` for the `what` surface.
pub(crate) async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).await.map_err(|err| {
        Error::new(
            ErrorKind::Internal,
            format!("cannot listen on {addr} for {what}: {err}"),
        )
    })
}

/// Where `listener` listens (the port picked for port 0).
pub(crate) fn local_addr(listener: &TcpListener) -> Result<SocketAddr, Error> {
    listener
        .local_addr()
        .map_err(|err| Error::new(ErrorKind::Internal, format!("no local address: {err}")))
}
