//! Logging on stderr at the verbosity the global `-q`/`-v` flags choose: results go to stdout,
//! everything in this module to stderr.
//!
//! Levels: quiet (`-q`: warnings only), normal (progress lines, the default), verbose (`-v`:
//! details such as model loading and per-batch progress). Errors are always printed by `main`.

use std::sync::atomic::{AtomicU8, Ordering};

/// How much `kn` prints on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Warnings only.
    Quiet = 0,
    /// Progress lines (default).
    Normal = 1,
    /// Progress plus details.
    Verbose = 2,
}

static LEVEL: AtomicU8 = AtomicU8::new(Verbosity::Normal as u8);

/// Sets the level from the global flags (`-q` wins over `-v`).
pub fn set_verbosity(quiet: bool, verbose: u8) {
    let level = if quiet {
        Verbosity::Quiet
    } else if verbose > 0 {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether messages of `level` are printed.
pub fn enabled(level: Verbosity) -> bool {
    LEVEL.load(Ordering::Relaxed) >= level as u8
}

/// A progress line of subcommand `command` (printed unless `-q`).
pub fn progress(command: &str, message: impl std::fmt::Display) {
    if enabled(Verbosity::Normal) {
        eprintln!(
            "kn {command}: {}",
            crate::text::printable_message(&message.to_string())
        );
    }
}

/// A detail line (printed with `-v`).
pub fn detail(command: &str, message: impl std::fmt::Display) {
    if enabled(Verbosity::Verbose) {
        eprintln!(
            "kn {command}: {}",
            crate::text::printable_message(&message.to_string())
        );
    }
}

/// A warning (always printed).
pub fn warn(command: &str, message: impl std::fmt::Display) {
    eprintln!(
        "kn {command}: warning: {}",
        crate::text::printable_message(&message.to_string())
    );
}

/// A `kn_run` step's messages, printed as `command`'s progress and warnings.
pub fn report(command: &str) -> impl Fn(kn_run::Message) + '_ {
    move |message| match message {
        kn_run::Message::Progress(text) => progress(command, text),
        kn_run::Message::Warning(text) => warn(command, text),
    }
}
