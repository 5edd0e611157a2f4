//! Listening addresses checked before anything starts, and, when one is taken, who holds it:
//! a start-up that cannot listen must say so at once, naming the address, the program on it
//! (when this machine tells) and the setting to change.

use std::net::{SocketAddr, TcpListener};

/// Binds `addr` now (the listener is handed to the server later), or says in one line why not:
/// the address, what holds it, and `setting`, the flag or variable that moves it.
pub fn bind(addr: SocketAddr, setting: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr).map_err(|e| taken(addr, &e, setting))
}

/// Checks that `addr` can be listened on (by a child about to start), without keeping it.
pub fn check_free(addr: SocketAddr, setting: &str) -> Result<(), String> {
    bind(addr, setting).map(drop)
}

fn taken(addr: SocketAddr, e: &std::io::Error, setting: &str) -> String {
    let holder = holder_of(addr.port())
        .map(|h| format!(" (held by {h})"))
        .unwrap_or_default();
    format!("cannot listen on {addr}: {e}{holder}; free the port or set {setting}")
}

/// The program listening on TCP `port` on this machine, as `name (pid N)`, when Linux's
/// `/proc` tells (another user's processes may not be visible).
pub fn holder_of(port: u16) -> Option<String> {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .find_map(|table| listening_inode(&table, port))?;
    let socket = format!("socket:[{inode}]");
    for process in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == &*socket)
        });
        if holds {
            let name = std::fs::read_to_string(process.path().join("comm"))
                .map_or_else(|_| "a process".to_string(), |n| n.trim().to_string());
            return Some(format!("{name} (pid {pid})"));
        }
    }
    None
}

/// The socket inode of the listener (state 0A) on `port` in a `/proc/net/tcp` table.
fn listening_inode(table: &str, port: u16) -> Option<String> {
    let port_hex = format!("{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local = fields.get(1)?;
        let state = fields.get(3)?;
        let inode = fields.get(9)?;
        (local.rsplit(':').next() == Some(port_hex.as_str()) && *state == "0A")
            .then(|| (*inode).to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_named_with_its_holder_and_the_setting() {
        let held = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = held.local_addr().expect("addr");
        let message = bind(addr, "AVB_HTTP").expect_err("taken");
        assert!(
            message.starts_with(&format!("cannot listen on {addr}: ")),
            "{message}"
        );
        assert!(message.ends_with("set AVB_HTTP"), "{message}");
        // This test process holds it, and Linux says so.
        assert!(
            message.contains(&format!("(pid {})", std::process::id())),
            "{message}"
        );
        drop(held);
        check_free(addr, "AVB_HTTP").expect("free again");
    }

    #[test]
    fn listeners_are_found_in_the_kernel_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:1F91 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4343 1\n";
        assert_eq!(listening_inode(table, 8080).as_deref(), Some("4242"));
        assert_eq!(listening_inode(table, 8081), None, "not listening");
    }
}
