//! A NATS server for a test, as a child process on loopback: `nats-server` (Debian's package)
//! on a free port. It can be stopped and started again on the same port, as an outage would
//! look to the instances using it. Its shell watches a pipe from this process, so the server
//! stops however the test ends.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Nats {
    port: u16,
    running: Mutex<Option<(Child, ChildStdin)>>,
}

impl Nats {
    /// `nats-server` from the PATH or /usr/sbin, if installed.
    pub fn binary() -> Option<PathBuf> {
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        on_path
            .into_iter()
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
            .map(|dir| dir.join("nats-server"))
            .find(|p| p.exists())
    }

    pub fn start() -> Nats {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("its address").port();
        drop(listener);
        let nats = Nats {
            port,
            running: Mutex::new(None),
        };
        nats.restart();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port; returns once it accepts connections.
    pub fn restart(&self) {
        let bin = Nats::binary().expect("nats-server is installed (apt-get install nats-server)");
        let script = format!(
            "{} -a 127.0.0.1 -p {} >/dev/null 2>&1 & n=$!; cat >/dev/null; kill $n; wait $n",
            bin.display(),
            self.port
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .spawn()
            .expect("start nats-server");
        let lifeline = child.stdin.take().expect("a pipe to the server's shell");
        *self.running.lock().unwrap() = Some((child, lifeline));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server; returns once it has exited.
    pub fn stop(&self) {
        if let Some((mut child, mut lifeline)) = self.running.lock().unwrap().take() {
            let _ = lifeline.flush();
            drop(lifeline);
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}
