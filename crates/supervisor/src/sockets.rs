//! The sockets Graft holds for the target, and how they reach a release.
//!
//! Graft binds every `[[run.listen]]` address once, when `graft run`
//! starts, and keeps the listening sockets open for as long as it runs.
//! Each release gets duplicates at fd 3, 4, ... with `LISTEN_FDS`,
//! `LISTEN_PID` and `LISTEN_FDNAMES` (the systemd protocol, so programs
//! using `sd_listen_fds` or the `listenfd` crate work unchanged), plus one
//! private socket named `health` of its own.
//!
//! Why hold them: a listening socket that never closes never refuses a
//! connection. Connections that arrive while one release stops and the
//! next starts wait in the socket's one accept queue for whichever process
//! accepts next. Two processes binding the port with SO_REUSEPORT would
//! each have their own queue, and the queue of the one that stops is reset.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use graft_config::{ListenAddress, ListenConfig};
use socket2::{Domain, SockAddr, Socket, Type};

use crate::error::SupervisorError;

/// A listening socket Graft holds and passes to every release.
pub struct PassedSocket {
    pub name: String,
    pub address: ListenAddress,
    pub fd: OwnedFd,
}

/// Bind every configured address, or fail naming the one that cannot be.
pub fn bind_all(listen: &[ListenConfig]) -> Result<Vec<PassedSocket>, SupervisorError> {
    listen
        .iter()
        .map(|l| {
            let fd = match &l.address {
                ListenAddress::Tcp(addr) => bind_tcp(*addr),
                ListenAddress::Unix(path) => bind_unix(path),
            }
            .map_err(|e| bind_error(l, e))?;
            Ok(PassedSocket {
                name: l.name.to_string(),
                address: l.address.clone(),
                fd,
            })
        })
        .collect()
}

fn bind_error(l: &ListenConfig, e: std::io::Error) -> SupervisorError {
    let hint = match (&l.address, e.kind()) {
        (ListenAddress::Tcp(a), std::io::ErrorKind::AddrInUse) => format!(
            "another program is listening there (`ss -ltnp 'sport = :{}'` shows which), or `graft run` already runs for this repo",
            a.port()
        ),
        (ListenAddress::Unix(_), std::io::ErrorKind::AddrInUse) => {
            "a live program is listening on that socket file; stop it or choose another path".into()
        }
        (_, std::io::ErrorKind::PermissionDenied) => {
            "ports below 1024 need privileges; choose a higher port".into()
        }
        _ => "check the address in [[run.listen]]".into(),
    };
    SupervisorError::Setup(format!(
        "cannot listen on {} (socket `{}`): {e}; {hint}",
        l.address, l.name
    ))
}

/// A TCP listener with a deep backlog: while no release accepts (the
/// moment of a switch), connections wait there.
fn bind_tcp(addr: SocketAddr) -> std::io::Result<OwnedFd> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

fn bind_unix(path: &Path) -> std::io::Result<OwnedFd> {
    if path.exists() {
        // A socket file left by a dead process is stale; one that still
        // accepts belongs to someone.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::from(std::io::ErrorKind::AddrInUse));
        }
        std::fs::remove_file(path)?;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// A fresh loopback listener for one release's health checks, and its address.
pub fn health_listener() -> std::io::Result<(OwnedFd, SocketAddr)> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    socket.listen(128)?;
    let addr = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("health socket has no inet address"))?;
    Ok((socket.into(), addr))
}

/// A duplicate of `fd` for a child (the original stays with Graft).
pub fn dup(fd: &OwnedFd) -> std::io::Result<OwnedFd> {
    fd.as_fd().try_clone_to_owned()
}

/// Remove Unix socket files Graft created (on shutdown).
pub fn cleanup(sockets: &[PassedSocket]) {
    for s in sockets {
        if let ListenAddress::Unix(path) = &s.address {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The inode of socket `fd`, as `/proc/<pid>/fd` names it (`socket:[N]`).
pub fn inode(fd: &OwnedFd) -> Option<u64> {
    use std::os::fd::AsRawFd as _;
    let target = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    socket_inode(&target)
}

/// `socket:[N]` → N.
pub fn socket_inode(link: &std::path::Path) -> Option<u64> {
    link.to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(name: &str, address: &str) -> ListenConfig {
        let text = format!("name = \"{name}\"\naddress = \"{address}\"\n");
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn a_port_in_use_is_named_with_a_hint() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let e = bind_all(&[listen("http", &addr.to_string())])
            .err()
            .expect("in use");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("cannot listen on {addr} (socket `http`)")),
            "{msg}"
        );
        assert!(msg.contains("another program is listening there"), "{msg}");
    }

    #[test]
    fn stale_unix_socket_files_are_replaced_live_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sock");
        {
            let _dead = std::os::unix::net::UnixListener::bind(&path).unwrap();
        }
        let s = bind_all(&[listen("a", &format!("unix:{}", path.display()))]).unwrap();
        assert_eq!(s.len(), 1);
        let live = dir.path().join("b.sock");
        let _holder = std::os::unix::net::UnixListener::bind(&live).unwrap();
        let e = bind_all(&[listen("b", &format!("unix:{}", live.display()))])
            .err()
            .expect("live");
        assert!(e.to_string().contains("a live program is listening"), "{e}");
    }

    #[test]
    fn the_socket_keeps_queueing_while_nobody_accepts() {
        let s = bind_all(&[listen("http", "127.0.0.1:0")]).unwrap();
        let std_listener = std::net::TcpListener::from(dup(&s[0].fd).unwrap());
        let addr = std_listener.local_addr().unwrap();
        drop(std_listener);
        // Graft still holds the socket: a client connects though no one accepts yet.
        let c = std::net::TcpStream::connect(addr);
        assert!(c.is_ok());
    }
}
