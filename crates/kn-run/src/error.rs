//! The error of a pipeline step, in the three kinds a caller acts on differently: the input is
//! wrong (arguments, files, prompts, a run of another configuration), something failed inside
//! (libtorch, out of memory, writing outputs), or the caller asked the run to stop.

use kn_edit::EditError;
use kn_model::ModelError;

/// Why a pipeline step failed; each message names what it is about.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The input is wrong (arguments, files, prompts).
    #[error("{0}")]
    BadInput(String),
    /// Something failed inside (libtorch, memory, I/O on outputs).
    #[error("{0}")]
    Internal(String),
    /// The caller stopped the run; finished work is kept.
    #[error("{0}")]
    Interrupted(String),
}

impl From<ModelError> for RunError {
    fn from(error: ModelError) -> Self {
        match error {
            ModelError::Torch(_) | ModelError::OutOfMemory(_) => {
                RunError::Internal(error.to_string())
            }
            other => RunError::BadInput(other.to_string()),
        }
    }
}

impl From<kn_attribution::AttributionError> for RunError {
    fn from(error: kn_attribution::AttributionError) -> Self {
        match error {
            kn_attribution::AttributionError::Model(model) => model.into(),
            error @ kn_attribution::AttributionError::OutOfMemory { .. } => {
                RunError::Internal(error.to_string())
            }
            other => RunError::BadInput(other.to_string()),
        }
    }
}

impl From<kn_probe::ProbeError> for RunError {
    fn from(error: kn_probe::ProbeError) -> Self {
        match error {
            kn_probe::ProbeError::Model(model) => model.into(),
            other => RunError::BadInput(other.to_string()),
        }
    }
}

impl From<EditError> for RunError {
    fn from(error: EditError) -> Self {
        match error {
            EditError::Model(model) => model.into(),
            EditError::Io {
                action: "write", ..
            } => RunError::Internal(error.to_string()),
            other => RunError::BadInput(other.to_string()),
        }
    }
}

impl From<kn_report::ReportError> for RunError {
    fn from(error: kn_report::ReportError) -> Self {
        match &error {
            kn_report::ReportError::Io { action, .. } if *action != "read" => {
                RunError::Internal(error.to_string())
            }
            kn_report::ReportError::Figure { .. } => RunError::Internal(error.to_string()),
            _ => RunError::BadInput(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_kind() {
        let bad: RunError = EditError::NoPrompts {
            context: "x".into(),
        }
        .into();
        assert!(matches!(bad, RunError::BadInput(_)));
        let internal: RunError = EditError::Model(ModelError::Torch("boom".into())).into();
        assert!(matches!(internal, RunError::Internal(_)));
        let memory: RunError = ModelError::OutOfMemory("no".into()).into();
        assert!(matches!(memory, RunError::Internal(_)));
        let config: RunError = ModelError::InvalidArgument("bad".into()).into();
        assert!(matches!(config, RunError::BadInput(_)));
    }
}
