//! The Python `websockets` server (`bench/servers/python_echo.py`): its
//! interpreter is a venv in `target/bench-venv` with the pinned
//! `websockets` from PyPI, made when a scenario first runs it. Any failure
//! is an error of that implementation's runs, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The `websockets` release measured; the same as the interop tests pin.
pub const WEBSOCKETS_VERSION: &str = "17.4";

/// The echo server script.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("servers/python_echo.py")
}

/// The venv's interpreter, made (or remade, if its `websockets` is not
/// the pinned one) from `python3` first. The pip log is
/// `target/bench-venv.log`.
pub fn interpreter() -> Result<PathBuf, String> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-venv");
    let python = venv.join("bin/python");
    if has_websockets(&python) {
        return Ok(python);
    }
    eprintln!(
        "making {} with websockets=={WEBSOCKETS_VERSION} from PyPI ...",
        venv.display()
    );
    // Made next to its place and renamed, so a half-made venv is never
    // taken for a good one.
    let tmp = venv.with_extension(format!("tmp-{}", std::process::id()));
    let log = venv.with_extension("log");
    let _ = std::fs::remove_dir_all(&tmp);
    let made = make(&tmp, &log);
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(format!(
            "no Python with websockets=={WEBSOCKETS_VERSION} in {}: {e} (log: {})",
            venv.display(),
            log.display()
        ));
    }
    let _ = std::fs::remove_dir_all(&venv);
    std::fs::rename(&tmp, &venv).map_err(|e| format!("renaming {}: {e}", tmp.display()))?;
    // A venv's python is a symlink to the base interpreter: it works from
    // the new place.
    if has_websockets(&python) {
        Ok(python)
    } else {
        Err(format!("{} cannot import websockets", python.display()))
    }
}

/// `python3 -m venv DIR` and `pip install websockets==…` into it. Debian
/// ships venv's pip separately (python3-venv); without it, a bare venv and
/// the system pip installing into it.
fn make(dir: &Path, log: &Path) -> Result<(), String> {
    let logged = |mut cmd: Command, what: &str| -> Result<(), String> {
        let file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        let status = cmd
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .status()
            .map_err(|e| format!("{what}: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("{what} failed: {status}"))
        }
    };
    let mut venv = Command::new("python3");
    venv.args(["-m", "venv"]).arg(dir);
    let python = dir.join("bin/python");
    let pip = if logged(venv, "python3 -m venv").is_ok() {
        let mut c = Command::new(&python);
        c.args(["-m", "pip"]);
        c
    } else {
        let _ = std::fs::remove_dir_all(dir);
        let mut bare = Command::new("python3");
        bare.args(["-m", "venv", "--without-pip"]).arg(dir);
        logged(bare, "python3 -m venv --without-pip")?;
        let mut c = Command::new("python3");
        c.args(["-m", "pip", "--python"]).arg(&python);
        c
    };
    let mut install = pip;
    install.args([
        "install",
        "--disable-pip-version-check",
        &format!("websockets=={WEBSOCKETS_VERSION}"),
    ]);
    logged(install, "pip install websockets")?;
    if has_websockets(&python) {
        Ok(())
    } else {
        Err("websockets not importable after pip install".into())
    }
}

fn has_websockets(python: &Path) -> bool {
    Command::new(python)
        .args([
            "-c",
            &format!(
                "import websockets.version as v, sys; sys.exit(v.version != {WEBSOCKETS_VERSION:?})"
            ),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
