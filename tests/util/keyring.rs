//! A real, headless Secret Service for one test: a private `dbus-daemon` on a socket in the test's
//! runtime dir and `gnome-keyring-daemon --unlock` on it, both killed on drop. Private per test, so
//! tests run in parallel and never see the developer's desktop keyring.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::env::TestEnv;
use super::registry::require_tool;

pub struct Keyring {
    bus: Child,
    daemon: Option<Child>,
    pub address: String,
}

impl Keyring {
    /// Starts the bus and the keyring for `env` and makes every command of `env` use them.
    pub fn start(env: &mut TestEnv) -> Keyring {
        require_tool("dbus-daemon");
        require_tool("gnome-keyring-daemon");
        require_tool("dbus-send");
        let socket = env.runtime_dir.join("bus");
        let address = format!("unix:path={}", socket.display());
        let bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address={address}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        let mut keyring = Keyring {
            bus,
            daemon: None,
            address: address.clone(),
        };
        wait_for("the session bus socket", || socket.exists());
        env.vars
            .push(("DBUS_SESSION_BUS_ADDRESS".into(), address.clone()));
        let mut daemon = env
            .cmd("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env("XDG_DATA_HOME", env.home.join(".local/share"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gnome-keyring-daemon");
        // The keyring password: gnome-keyring creates and unlocks the `login` collection with it.
        let mut stdin = daemon.stdin.take().unwrap();
        stdin.write_all(b"test-keyring-password").unwrap();
        drop(stdin);
        keyring.daemon = Some(daemon);
        wait_for("gnome-keyring to own org.freedesktop.secrets", || {
            let out = Command::new("dbus-send")
                .env("DBUS_SESSION_BUS_ADDRESS", &address)
                .args([
                    "--session",
                    "--dest=org.freedesktop.DBus",
                    "--print-reply",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.freedesktop.secrets",
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).contains("boolean true")
        });
        keyring
    }
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

impl Drop for Keyring {
    fn drop(&mut self) {
        if let Some(d) = &mut self.daemon {
            let _ = d.kill();
            let _ = d.wait();
        }
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}
