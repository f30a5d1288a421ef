//! The interactive mode as a person uses it: `tether connect` in a real
//! terminal (a tmux pane), typing a message and the slash commands, read
//! back from the screen. `#[ignore]`d (needs tmux); `.ci/run` installs
//! tmux and runs it; without tmux it fails.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Serve, LIMIT};

/// A tmux server of this test's own (`-L`), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux not found: apt-get install tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "cli", "-S", "-200"])
    }

    /// Waits until the pane shows `what`; returns the screen.
    fn wait_for(&self, what: &str) -> String {
        let until = Instant::now() + LIMIT;
        loop {
            let screen = self.screen();
            if screen.contains(what) {
                return screen;
            }
            assert!(Instant::now() < until, "{what:?} never appeared:\n{screen}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn type_line(&self, line: &str) {
        self.run(&["send-keys", "-t", "cli", "-l", line]);
        self.run(&["send-keys", "-t", "cli", "Enter"]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

#[test]
#[ignore = "needs tmux: apt-get install tmux"]
fn interactive_prompt_with_slash_commands_in_tmux() {
    let mut serve = Serve::start(&[]);
    let tmux = Tmux {
        socket: format!("tether-cli-test-{}", std::process::id()),
    };
    let command = format!(
        "NO_COLOR=1 {} connect {} --ping-interval 0; echo EXIT=$?; sleep 60",
        env!("CARGO_BIN_EXE_tether"),
        serve.url()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "cli",
        "-x",
        "150",
        "-y",
        "50",
        &command,
    ]);
    tmux.wait_for("connected to");
    tmux.wait_for("/help lists the commands");

    tmux.type_line("hello from a person");
    tmux.wait_for("< hello from a person");

    tmux.type_line("/ping");
    tmux.wait_for("pong: ");

    tmux.type_line("/binary 00ff");
    tmux.wait_for("< [binary, 2 bytes] 00ff");

    tmux.type_line("/help");
    tmux.wait_for("/close [CODE [REASON]]");

    tmux.type_line("/nonsense");
    tmux.wait_for("unknown command /nonsense");

    tmux.type_line("/close 1000 bye");
    // The server's answer to the close, then the status.
    let screen = tmux.wait_for("EXIT=0");
    assert!(screen.contains("closed: 1000"), "{screen}");
    let closed = serve.line_with("#1 closed");
    assert!(closed.contains("code=1000 (bye) by client"), "{closed}");
    assert!(closed.contains("2 in, 2 out"), "{closed}");
}
