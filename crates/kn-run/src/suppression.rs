//! The paper's suppression/amplification experiment (Dai et al. 2022, section 4.3) on the
//! facts of a discovery run ([`suppress_amplify`]).
//!
//! Each fact's prompts are re-encoded with the model, its knowledge neurons come from
//! neurons.jsonl, and `kn_edit::suppress_amplify_experiment` suppresses (x0) and amplifies
//! (x2) their activations at the answer position. Controls: the same neurons on facts of
//! other relations, random neurons of the same layers, and the activation baseline (per
//! fact, as many neurons of the run's layers with the highest mean activation over its
//! prompts, `kn_edit::activation_baseline`).

use crate::error::RunError;
use crate::run_dir::{encode_facts, RunDir};
use crate::Message;
use kn_edit::{add_activation_baselines, suppress_amplify_experiment, ExperimentConfig};
use kn_model::KnowledgeModel;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use kn_schema::report::suppression::SuppressionFile;

/// Runs the experiment on the facts of `relations` in `run`, with the activation-baseline
/// control when `activation_baseline`; `report` hears progress (every tenth fact, or every
/// fact with `every_fact`).
pub fn suppress_amplify(
    model: &dyn KnowledgeModel,
    run: &RunDir,
    relations: &[String],
    config: &ExperimentConfig,
    activation_baseline: bool,
    every_fact: bool,
    report: &dyn Fn(Message),
) -> Result<SuppressionFile, RunError> {
    let started = Instant::now();
    let records = run.records_of(&relations);
    let log = |message: String| report(Message::Progress(message));
    log(format!(
        "{} facts of {} relation(s) from {}",
        records.len(),
        relations.len(),
        run.neurons_path.display()
    ));
    let mut facts = encode_facts(model, &records)?;
    let baseline_layers = activation_baseline.then(|| run.layers().to_vec());
    if let Some(layers) = &baseline_layers {
        let layers = (!layers.is_empty()).then_some(layers.as_slice());
        add_activation_baselines(model, &mut facts, layers, &mut |done, total| {
            if done == total {
                log(format!("activation baseline chosen for {total} facts"));
            }
        })?;
    }
    let step = Instant::now();
    let experiment = suppress_amplify_experiment(model, &facts, config, &mut |done, total| {
        if done > 0 && (done == total || every_fact || done % 10 == 0) {
            let per_fact = step.elapsed().as_secs_f64() / done as f64;
            log(format!("[{done}/{total}] {per_fact:.2} s/fact"));
        }
    })?;
    let output = SuppressionFile {
        run: run.describe(),
        activation_baseline_layers: baseline_layers,
        seconds: started.elapsed().as_secs_f64(),
        report: experiment,
    };
    Ok(output)
}

/// A suppression experiment made ready on a run before any model is loaded: the run read, its
/// relations chosen, the report's path checked and the run's lock held (shared) until it is
/// dropped.
pub struct PreparedSuppression {
    /// The run.
    pub run: RunDir,
    /// The relations whose facts are measured.
    pub relations: Vec<String>,
    /// Where the report is written.
    pub out: PathBuf,
    _lock: Option<kn_schema::RunLock>,
}

/// Reads the run of `neurons` (its neurons.jsonl or directory), chooses `relations` (None: all),
/// checks the report's path `out` (None: the run's suppression.json) and locks the run for
/// `kn suppress`.
pub fn prepare_suppression(
    neurons: &Path,
    relations: Option<&str>,
    out: Option<&Path>,
) -> Result<PreparedSuppression, RunError> {
    let run = RunDir::load(neurons)?;
    let relations = run.select_relations(relations)?;
    let out = out.map_or_else(|| run.dir.join("suppression.json"), Path::to_path_buf);
    crate::check_output_file(&out, "--out")?;
    let lock = crate::lock_run_of(&out, "kn suppress")?;
    Ok(PreparedSuppression {
        run,
        relations,
        out,
        _lock: lock,
    })
}

impl PreparedSuppression {
    /// Runs [`suppress_amplify`] on `model` (checked against the run's model) and writes the
    /// report to [`PreparedSuppression::out`].
    pub fn run(
        &self,
        model: &dyn KnowledgeModel,
        config: &ExperimentConfig,
        activation_baseline: bool,
        every_fact: bool,
        report: &dyn Fn(Message),
    ) -> Result<SuppressionFile, RunError> {
        self.run.check_model(model.info())?;
        let output = suppress_amplify(
            model,
            &self.run,
            &self.relations,
            config,
            activation_baseline,
            every_fact,
            report,
        )?;
        kn_schema::write_json_atomically(&self.out, &output)
            .map_err(|e| RunError::Internal(format!("cannot write {}: {e}", self.out.display())))?;
        report(Message::Progress(format!(
            "report written to {}",
            self.out.display()
        )));
        Ok(output)
    }
}
