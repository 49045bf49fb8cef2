//! Checks and parsers of the options every front end shares (the `kn` CLI and the Python
//! package), so that both refuse bad input with the same message.

use crate::RunError;
use kn_edit::ErasureValue;
use kn_model::AnswerPolicy;

/// The most threads (or concurrent passes) a command accepts: 4 per core of this machine.
/// More only adds contention; 10,000 threads would take minutes and gigabytes to start.
pub fn max_thread_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from) * 4
}

/// Refuses a thread count above [`max_thread_count`] (`option` names the option).
pub fn check_thread_count(option: &str, count: usize) -> Result<(), RunError> {
    let max = max_thread_count();
    if count > max {
        return Err(RunError::BadInput(format!(
            "{option} {count} is more than {max} (4 per core of this machine's {}); 0 picks a sensible default",
            max / 4
        )));
    }
    Ok(())
}

/// `--memory-budget` in GiB as bytes (0 stays 0: automatic).
pub fn memory_budget_bytes(gib: f64) -> Result<u64, RunError> {
    if !gib.is_finite() || gib < 0.0 || gib > 1e6 {
        return Err(RunError::BadInput(format!(
            "--memory-budget {gib} is not a number of GiB between 0 (automatic) and 1000000"
        )));
    }
    Ok((gib * (1u64 << 30) as f64) as u64)
}

/// Parses a layer list: `all`, `3`, `0-29`, `0,5,7-9` (checked against `num_layers`).
pub fn parse_layers(spec: &str, num_layers: usize) -> Result<Vec<usize>, RunError> {
    let bad = |why: String| RunError::BadInput(format!("--layers {spec:?}: {why}"));
    if spec.trim() == "all" {
        return Ok((0..num_layers).collect());
    }
    let mut layers = Vec::new();
    for part in spec.split(',').map(str::trim) {
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| bad(format!("{s:?} is not a layer number")))
        };
        let (start, end) = match part.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(part)?, number(part)?),
        };
        if start > end {
            return Err(bad(format!("the range {part} is empty")));
        }
        if end >= num_layers {
            return Err(bad(format!(
                "layer {end} is out of range: the model has {num_layers} layers (0-{})",
                num_layers.saturating_sub(1)
            )));
        }
        for layer in start..=end {
            if !layers.contains(&layer) {
                layers.push(layer);
            }
        }
    }
    Ok(layers)
}

/// Refuses 0 for an option that counts something (`--batch-size`, `--steps`, `--top`).
pub fn at_least_one(value: usize, option: &str) -> Result<(), RunError> {
    match value {
        0 => Err(RunError::BadInput(format!("{option} must be at least 1"))),
        _ => Ok(()),
    }
}

/// Parses an answer policy name.
pub fn parse_policy(name: &str) -> Result<AnswerPolicy, RunError> {
    match name {
        "first-token" => Ok(AnswerPolicy::FirstToken),
        "single-token" => Ok(AnswerPolicy::SingleToken),
        "whole-answer" => Ok(AnswerPolicy::WholeAnswer),
        other => Err(RunError::BadInput(format!(
            "unknown answer policy {other:?}: use first-token, single-token or whole-answer"
        ))),
    }
}

/// Parses an erasure value as `kn erase --value` takes it: `unk`, `zero`, `id:N` or a token.
pub fn parse_erasure_value(spec: &str) -> Result<ErasureValue, RunError> {
    let spec = spec.trim();
    match spec {
        "" => Err(RunError::BadInput(
            "--value is empty: use unk, zero, id:N or a token".into(),
        )),
        "unk" => Ok(ErasureValue::UnknownToken),
        "zero" | "zeros" => Ok(ErasureValue::Zero),
        _ => match spec.strip_prefix("id:") {
            Some(id) => id
                .trim()
                .parse::<i64>()
                .map(ErasureValue::Token)
                .map_err(|_| {
                    RunError::BadInput(format!("--value {spec:?}: {id:?} is not a token id"))
                }),
            None => Ok(ErasureValue::TokenText(spec.to_string())),
        },
    }
}

/// Refuses a number that is not finite (or, with `at_least_zero`, negative); `name` names
/// the option.
pub fn check_finite(name: &str, value: f64, at_least_zero: bool) -> Result<(), RunError> {
    if value.is_finite() && (!at_least_zero || value >= 0.0) {
        return Ok(());
    }
    let bound = if at_least_zero { " >= 0" } else { "" };
    Err(RunError::BadInput(format!(
        "{name} must be a finite number{bound}"
    )))
}

/// The update rule's numbers as `kn edit` takes them: λ1 and λ2 finite, the shared threshold
/// finite and at least 0.
pub fn check_update_numbers(
    lambda_remove: f64,
    lambda_add: f64,
    shared_threshold: f64,
) -> Result<(), RunError> {
    check_finite("--lambda-remove", lambda_remove, false)?;
    check_finite("--lambda-add", lambda_add, false)?;
    check_finite("--shared-threshold", shared_threshold, true)
}

/// Refuses a held-out share outside [0, 1) (`kn edit --holdout`).
pub fn check_holdout(holdout: f64) -> Result<(), RunError> {
    if (0.0..1.0).contains(&holdout) {
        return Ok(());
    }
    Err(RunError::BadInput(format!(
        "--holdout must be in [0, 1), got {holdout}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts_are_bounded_by_the_machine() {
        let max = max_thread_count();
        assert!(max >= 4);
        for ok in [0, 1, max] {
            check_thread_count("--threads", ok).unwrap();
        }
        for bad in [max + 1, 10_000, usize::MAX] {
            let error = check_thread_count("--threads", bad).unwrap_err();
            assert!(matches!(error, RunError::BadInput(_)));
        }
    }

    #[test]
    fn layer_lists_parse() {
        assert_eq!(parse_layers("all", 3).unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_layers("0-2", 30).unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_layers("5, 1-2,5", 30).unwrap(), vec![5, 1, 2]);
        assert!(parse_layers("0-30", 30).is_err());
        assert!(parse_layers("3-1", 30).is_err());
        assert!(parse_layers("x", 30).is_err());
    }

    #[test]
    fn values_parse() {
        assert_eq!(
            parse_erasure_value("unk").unwrap(),
            ErasureValue::UnknownToken
        );
        assert_eq!(parse_erasure_value("zero").unwrap(), ErasureValue::Zero);
        assert_eq!(parse_erasure_value("id:5").unwrap(), ErasureValue::Token(5));
        assert_eq!(
            parse_erasure_value("<|im_end|>").unwrap(),
            ErasureValue::TokenText("<|im_end|>".into())
        );
        assert!(parse_erasure_value("id:x").is_err());
        assert!(parse_erasure_value(" ").is_err());
    }
}
