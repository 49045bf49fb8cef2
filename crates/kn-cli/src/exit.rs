//! CLI errors and their exit codes: 2 for bad input, 3 for internal failures, 130 for a run
//! stopped by Ctrl-C. A command's error is the pipeline's `kn_run::RunError`, whose kind the
//! exit code follows.

pub use kn_run::RunError as CliError;

/// The process exit code of an error that ends a `kn` command.
pub trait ExitCode {
    /// 2 for bad input, 3 for an internal failure, 130 for a run stopped by Ctrl-C.
    fn exit_code(&self) -> i32;
}

impl ExitCode for CliError {
    fn exit_code(&self) -> i32 {
        match self {
            CliError::BadInput(_) => 2,
            CliError::Internal(_) => 3,
            CliError::Interrupted(_) => 130,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kn_model::ModelError;

    #[test]
    fn errors_map_to_exit_codes() {
        let bad: CliError = kn_edit::EditError::NoPrompts {
            context: "x".into(),
        }
        .into();
        assert_eq!(bad.exit_code(), 2);
        let internal: CliError = kn_edit::EditError::Model(ModelError::Torch("boom".into())).into();
        assert_eq!(internal.exit_code(), 3);
        assert_eq!(CliError::Interrupted("stop".into()).exit_code(), 130);
    }
}
