//! The native servers' listening socket: bound with `SO_REUSEADDR` and a deep backlog, so a restarted server
//! takes its port back at once and a burst of connections (players starting at once) is queued rather than left to
//! SYN retries.

use tokio::net::{TcpListener, TcpSocket};

use crate::Error;

const LISTEN_BACKLOG: u32 = 4096;

/// Binds `host:port` (port 0: a free one) and listens. Call it inside the server's tokio runtime.
pub fn listen(host: &str, port: u16) -> crate::Result<TcpListener> {
    let fail = |e: std::io::Error| Error::Io(format!("bind {host}:{port}: {e}"));
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(fail)?
        .next()
        .ok_or_else(|| Error::Io(format!("bind {host}:{port}: no address")))?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(fail)?;
    socket.set_reuseaddr(true).map_err(fail)?;
    socket.bind(addr).map_err(fail)?;
    socket.listen(LISTEN_BACKLOG).map_err(fail)
}
