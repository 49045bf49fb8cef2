//! Helpers shared by the `kn` integration tests: fixture paths, running the binary, and the
//! arguments of the tiny `kn discover` run that several tests start from.
#![allow(dead_code)] // each test binary uses a subset

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

/// The path of `fixtures/<name>`, as a command-line argument.
pub fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
        .display()
        .to_string()
}

/// The `kn` binary under test, not yet run.
pub fn kn_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kn"))
}

/// Runs `kn` with `args` and returns its output.
pub fn kn<S: AsRef<OsStr>>(args: &[S]) -> Output {
    kn_command().args(args).output().expect("kn runs")
}

/// Asserts that `what` succeeded, showing its stderr otherwise.
pub fn ok(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `kn discover` on the tiny Llama over 3 facts of P36 and P1376 with 4 integration steps and
/// no correctness filter (the tiny model knows nothing), into `out`, then `extra`.
pub fn tiny_discover_args(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "discover",
        "--model",
        &fixture("tiny-llama"),
        "--relations",
        "P36,P1376",
        "--facts-per-relation",
        "3",
        "--seed",
        "7",
        "--steps",
        "4",
        "--correct-rank",
        "0",
        "--single-token",
        "false",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(out.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// The fact ids of `run`/neurons.jsonl, in file order.
pub fn fact_ids(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("neurons.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["fact"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Makes every write beyond `limit` bytes of one file fail (EFBIG), as a full disk would.
/// With `ignore_sigxfsz` the child starts with SIGXFSZ ignored; without, at its default
/// (which kills the process), so that `kn` itself must ignore it.
pub fn limit_file_size(command: &mut Command, limit: u64, ignore_sigxfsz: bool) {
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let disposition = if ignore_sigxfsz {
                libc::SIG_IGN
            } else {
                libc::SIG_DFL
            };
            libc::signal(libc::SIGXFSZ, disposition);
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
