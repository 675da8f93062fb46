//! A network namespace of the test's own, joined to the host by a veth pair, for the rules
//! about clients that are not on loopback. The server listens on the host end's address; the
//! test talks to it only from inside the namespace, with curl. Both are removed when dropped.
//!
//! Making namespaces needs root (as in CI). Elsewhere the tests that need one are skipped with
//! a message, unless CHATSERVER_REQUIRE_NETNS is set, which makes that a failure.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};

pub struct Netns {
    name: String,
    /// The host end's address: serve on this one.
    pub host: Ipv4Addr,
    /// The address inside the namespace: requests come from it.
    pub inner: Ipv4Addr,
}

static NEXT: AtomicU8 = AtomicU8::new(1);

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

impl Netns {
    /// A new namespace, or `None` (with a message) where namespaces cannot be made.
    pub fn create() -> Option<Netns> {
        match Netns::try_create() {
            Ok(ns) => Some(ns),
            Err(why) if std::env::var_os("CHATSERVER_REQUIRE_NETNS").is_some() => {
                panic!("a network namespace is needed and CHATSERVER_REQUIRE_NETNS is set: {why}")
            }
            Err(why) => {
                eprintln!("skipped: cannot make a network namespace here ({why})");
                None
            }
        }
    }

    fn try_create() -> Result<Netns, String> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // Per process and per namespace, so parallel tests and earlier runs never collide.
        let (a, b) = (20 + (pid % 200) as u8, n);
        let name = format!("cs{pid}n{n}");
        let (outside, inside) = (
            format!("c{}{n}a", pid % 10000),
            format!("c{}{n}b", pid % 10000),
        );
        let ns = Netns {
            name: name.clone(),
            host: Ipv4Addr::new(10, a, b, 1),
            inner: Ipv4Addr::new(10, a, b, 2),
        };
        run(&["ip", "netns", "add", &name])?;
        let host_cidr = format!("{}/24", ns.host);
        let inner_cidr = format!("{}/24", ns.inner);
        let steps: [&[&str]; 7] = [
            &[
                "ip", "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ],
            &["ip", "link", "set", &inside, "netns", &name],
            &["ip", "addr", "add", &host_cidr, "dev", &outside],
            &["ip", "link", "set", &outside, "up"],
            &[
                "ip",
                "netns",
                "exec",
                &name,
                "ip",
                "addr",
                "add",
                &inner_cidr,
                "dev",
                &inside,
            ],
            &[
                "ip", "netns", "exec", &name, "ip", "link", "set", &inside, "up",
            ],
            &[
                "ip", "netns", "exec", &name, "ip", "link", "set", "lo", "up",
            ],
        ];
        for step in steps {
            run(step)?; // on failure, `ns` is dropped and removes what was made
        }
        Ok(ns)
    }

    /// The namespace's name, for `ip netns exec`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `curl ARGS` from inside the namespace: (status, body).
    pub fn curl(&self, args: &[&str]) -> (u16, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "curl", "-s", "-m", "10"])
            .args(["-w", "\n%{http_code}"])
            .args(args)
            .output()
            .expect("run curl in the namespace");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        (status.trim().parse().unwrap_or(0), body.to_string())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth end inside it, and so its peer outside.
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}
