//! Clients someone else wrote: the brokers' public Python SDKs, pinned, in a virtual
//! environment of their own, so that the simulators are checked by code that was written
//! against the real APIs and not against ours. The environment is made once (from PyPI) and
//! reused; a machine without Python or without the registry fails loudly, never silently.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The TastyTrade SDK (tastyware/tastytrade), pinned.
pub const TASTYTRADE: &str = "tastytrade==13.2.3";
/// Alpaca's official SDK, pinned.
pub const ALPACA: &str = "alpaca-py==0.44.0";

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The Python of a virtual environment under `dir` with both SDKs installed, made if absent.
///
/// # Errors
/// A message naming the step that failed (no Python, no network to PyPI, a failed install).
pub fn python(dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let venv = dir.join("sdk-venv");
    let python = venv.join("bin").join("python");
    let marker = venv.join(".installed");
    let wanted = format!("{TASTYTRADE}\n{ALPACA}\n");
    // One test process makes it; the others wait for the lock and find it made.
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("sdk-venv.lock"))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    lock.lock().map_err(|e| format!("locking the venv: {e}"))?;
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) && python.exists()
    {
        return Ok(python);
    }
    run(
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
        "python3 -m venv",
    )?;
    run(
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            TASTYTRADE,
            ALPACA,
        ]),
        "pip install of the SDKs",
    )?;
    std::fs::write(&marker, wanted).map_err(|e| format!("{}: {e}", marker.display()))?;
    Ok(python)
}
