//! The CPU time of the process that serves an address: what a request costs the server,
//! beside how many it answered. Between two binaries measured in turn it is the steadier
//! figure; between invocations it moves too (the bare stack's cost per POST ranged over
//! ±10 % in one sitting), so it is reported beside sends/s, not instead of it.
//!
//! The process is found as `ss -ltnp` finds it: the listening socket's inode in
//! `/proc/net/tcp` (or `tcp6`), then the process holding that inode among its open files.
//! Linux only, and only a process this user may look into; elsewhere there is no figure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A process whose CPU time can be read.
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    pid: u32,
    ticks_per_second: f64,
}

impl Cpu {
    /// The process listening on `addr` (or on every address at its port).
    pub fn of(addr: SocketAddr) -> Option<Cpu> {
        let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|table| std::fs::read_to_string(table).ok())
            .find_map(|table| listening_inode(&table, addr))?;
        let socket = format!("socket:[{inode}]");
        let pid = std::fs::read_dir("/proc")
            .ok()?
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .find(|pid| holds(*pid, &socket))?;
        Cpu::of_pid(pid)
    }

    pub fn of_pid(pid: u32) -> Option<Cpu> {
        // SAFETY: sysconf has no preconditions; it only reads a constant of the system.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let cpu = Cpu {
            pid,
            ticks_per_second: if ticks > 0 { ticks as f64 } else { 100.0 },
        };
        cpu.seconds().map(|_| cpu)
    }

    /// User and system CPU seconds the process has used so far (all its threads).
    pub fn seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // The command name (field 2) is in parentheses and may hold spaces: count from after it.
        let rest = stat.get(stat.rfind(')')? + 2..)?;
        let fields: Vec<&str> = rest.split(' ').collect();
        // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
        let user: f64 = fields.get(11)?.parse().ok()?;
        let system: f64 = fields.get(12)?.parse().ok()?;
        Some((user + system) / self.ticks_per_second)
    }
}

/// Whether process `pid` has `socket` (`socket:[inode]`) among its open files.
fn holds(pid: u32, socket: &str) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok)
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == socket))
}

/// The inode of the socket listening on `addr` in a `/proc/net/tcp{,6}` table.
fn listening_inode(table: &str, addr: SocketAddr) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
        let (ip, port) = local.split_once(':')?;
        let listens = *state == "0A" && u16::from_str_radix(port, 16).ok()? == addr.port();
        let ip = table_ip(ip)?;
        // A wildcard listener serves the address too (the load generator only takes loopback).
        (listens && (ip == addr.ip() || ip.is_unspecified()))
            .then(|| inode.parse().ok())
            .flatten()
    })
}

/// An address as the tables write it: the bytes in network order, printed as the machine's
/// 32-bit words.
fn table_ip(hex: &str) -> Option<IpAddr> {
    let words: Vec<u32> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    match bytes.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(bytes).ok()?,
        ))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_process_by_its_listener_and_reads_its_cpu() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let cpu = Cpu::of(listener.local_addr().unwrap()).unwrap();
        assert_eq!(cpu.pid, std::process::id());
        let before = cpu.seconds().unwrap();
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed().as_millis() < 200 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(cpu.seconds().unwrap() - before >= 0.1);
        drop(listener);
        assert!(Cpu::of(SocketAddr::from(([127, 0, 0, 1], 1))).is_none());
    }
}
