//! `run_command`: the shell commands of `BashTask`s, run by the core (no Python subprocess),
//! with the GIL released while the command runs.

use std::collections::HashMap;
use std::process::Command;

use pyo3::exceptions::{PyOSError, PyTypeError};
use pyo3::prelude::*;

/// How a command ended: its exit code and its decoded output streams.
#[pyclass(name = "CommandResult", module = "rivers._core", frozen, get_all)]
pub(crate) struct PyCommandResult {
    /// Exit status; `-N` when the command was killed by signal `N`.
    exit_code: i32,
    /// Standard output, decoded as UTF-8 (undecodable bytes replaced).
    stdout: String,
    /// Standard error, decoded likewise.
    stderr: String,
}

/// A `str` command is run by `sh -c`; a list is an argv vector executed without a shell.
fn command_of(command: &Bound<'_, PyAny>) -> PyResult<(Command, String)> {
    if let Ok(script) = command.extract::<String>() {
        let mut shell = Command::new("sh");
        shell.arg("-c").arg(&script);
        return Ok((shell, script));
    }
    let argv: Vec<String> = command
        .extract()
        .map_err(|_| PyTypeError::new_err("a command is a str (run by sh -c) or a list of str (an argv vector)"))?;
    let Some((program, args)) = argv.split_first() else {
        return Err(PyTypeError::new_err("an argv command needs at least the program"));
    };
    let mut direct = Command::new(program);
    direct.args(args);
    Ok((direct, argv.join(" ")))
}

/// Runs `command` to completion with `env` layered over the inherited environment, in `cwd`
/// (default: the current directory).
///
/// # Errors
/// `OSError` when the command cannot be started (program not found, `cwd` missing).
#[pyfunction]
#[pyo3(signature = (command, env = None, cwd = None))]
pub(crate) fn run_command(
    py: Python<'_>,
    command: &Bound<'_, PyAny>,
    env: Option<HashMap<String, String>>,
    cwd: Option<String>,
) -> PyResult<PyCommandResult> {
    let (mut process, shown) = command_of(command)?;
    process.envs(env.unwrap_or_default());
    if let Some(dir) = &cwd {
        process.current_dir(dir);
    }
    let output = py.detach(|| process.output()).map_err(|err| {
        let place = cwd.as_deref().map(|dir| format!(" in '{dir}'")).unwrap_or_default();
        PyOSError::new_err(format!("could not run command `{shown}`{place}: {err}"))
    })?;
    let exit_code = output.status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        -output.status.signal().unwrap_or(0)
    });
    Ok(PyCommandResult {
        exit_code,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
