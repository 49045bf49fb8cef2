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

impl From<ModelError> for CliError {
    fn from(error: ModelError) -> Self {
        match error {
            ModelError::Torch(_) | ModelError::OutOfMemory(_) => {
                CliError::Internal(error.to_string())
            }
            other => CliError::BadInput(other.to_string()),
        }
    }
}

impl From<kn_attribution::AttributionError> for CliError {
    fn from(error: kn_attribution::AttributionError) -> Self {
        match error {
            kn_attribution::AttributionError::Model(model) => model.into(),
            error @ kn_attribution::AttributionError::OutOfMemory { .. } => {
                CliError::Internal(error.to_string())
            }
            other => CliError::BadInput(other.to_string()),
        }
    }
}
