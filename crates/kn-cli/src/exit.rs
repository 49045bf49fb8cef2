//! CLI errors and their exit codes: 2 for bad input, 3 for internal failures, 130 for a run
//! stopped by Ctrl-C.

use kn_model::ModelError;

/// An error that ends a `kn` command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The user's input is wrong (arguments, files, prompts).
    #[error("{0}")]
    BadInput(String),
    /// Something failed inside (libtorch, I/O on outputs).
    #[error("{0}")]
    Internal(String),
    /// The user stopped the run (Ctrl-C); finished work is kept.
    #[error("{0}")]
    Interrupted(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::BadInput(_) => 2,
            CliError::Internal(_) => 3,
            CliError::Interrupted(_) => 130,
        }
    }
}

impl From<kn_run::RunError> for CliError {
    fn from(error: kn_run::RunError) -> Self {
        match error {
            kn_run::RunError::BadInput(message) => CliError::BadInput(message),
            kn_run::RunError::Internal(message) => CliError::Internal(message),
            kn_run::RunError::Interrupted(message) => CliError::Interrupted(message),
        }
    }
}

/// Model, attribution and edit errors take the kind `kn_run::RunError` gives them.
macro_rules! through_run_error {
    ($($error:ty),*) => {$(
        impl From<$error> for CliError {
            fn from(error: $error) -> Self {
                kn_run::RunError::from(error).into()
            }
        }
    )*};
}
through_run_error!(
    ModelError,
    kn_attribution::AttributionError,
    kn_edit::EditError,
    kn_probe::ProbeError
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_exit_codes() {
        let bad: CliError = kn_edit::EditError::NoPrompts {
            context: "x".into(),
        }
        .into();
        assert_eq!(bad.exit_code(), 2);
        let internal: CliError = kn_edit::EditError::Model(ModelError::Torch("boom".into())).into();
        assert_eq!(internal.exit_code(), 3);
        let stopped: CliError = kn_run::RunError::Interrupted("stop".into()).into();
        assert_eq!(stopped.exit_code(), 130);
    }
}
