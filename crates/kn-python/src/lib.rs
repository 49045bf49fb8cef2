//! `knowledge_neurons._native`: the Rust core of the Python package `knowledge_neurons`.
//!
//! A thin layer over `kn-run`, the library the `kn` CLI is built on, so that Python gets the
//! same computations, the same checks and the same error messages: every function here calls
//! the `kn_run` function of the matching `kn` subcommand. Results come back as the JSON the
//! CLI prints (parsed by the Python layer, `python/knowledge_neurons/`), score matrices as
//! numpy arrays that own the Rust buffer (no copy; `torch.from_numpy` shares it too).
//!
//! The GIL is released while the model runs; long calls ask Python between units of work
//! (prompts, facts) whether Ctrl-C was pressed and stop with `KeyboardInterrupt`, keeping
//! what a run directory already holds. Errors: bad input raises `BadInputError` (a
//! `ValueError`), an internal failure `InternalError` (a `RuntimeError`), each with the CLI's
//! message.
//!
//! The extension links the libtorch of the torch package beside it (`$ORIGIN/../torch/lib`
//! first in its rpath, and the Python layer imports torch before it), so one libtorch serves
//! torch and this toolkit in the process.

use kn_attribution::Method;
use kn_edit::{EditHandle, EraseConfig, EvaluationConfig, InterventionConfig, UpdateConfig};
use kn_model::{ActivationOp, KnowledgeModel};
use kn_run::attribute::{
    attribute_prompts, counterfactuals_for, encode_prompts, per_prompt, AttributeOutput,
    AttributeSettings,
};
use kn_run::discover_request::DiscoverRequest;
use kn_run::editing::{edit_fact, edit_sample, Context};
use kn_run::options::{at_least_one, parse_erasure_value, parse_layers, parse_policy};
use kn_run::sweep::edit_sweep;
use kn_run::{Message, RunDir, RunError};
use numpy::PyArray2;
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::IntoPyDict;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

pyo3::create_exception!(
    knowledge_neurons,
    BadInputError,
    PyValueError,
    "Bad input: arguments, files, prompts (the CLI's exit code 2)."
);
pyo3::create_exception!(
    knowledge_neurons,
    InternalError,
    PyRuntimeError,
    "An internal failure: libtorch, memory, output files (the CLI's exit code 3)."
);

/// A pipeline error as the Python exception of its kind, with the CLI's message.
fn to_py(error: RunError) -> PyErr {
    match error {
        RunError::BadInput(message) => BadInputError::new_err(message),
        RunError::Internal(message) => InternalError::new_err(message),
        RunError::Interrupted(message) => PyKeyboardInterrupt::new_err(message),
    }
}

/// A value as the JSON text the CLI prints.
fn to_json<T: Serialize>(value: &T) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| InternalError::new_err(e.to_string()))
}

/// A call's exchange with Python while it runs: its messages go to `callback(kind, text)`
/// (`kind` is `"progress"` or `"warning"`; without a callback, warnings go to Python's
/// `warnings.warn` and progress is dropped), and between units of work it asks whether Ctrl-C
/// was pressed. An exception raised meanwhile (Ctrl-C, or by the callback) stops the work
/// where it can stop and is raised when the call returns.
struct Session {
    callback: Option<Py<PyAny>>,
    raised: Mutex<Option<PyErr>>,
}

impl Session {
    fn new(callback: Option<Py<PyAny>>) -> Self {
        Session {
            callback,
            raised: Mutex::new(None),
        }
    }

    fn keep(&self, error: PyErr) {
        let mut raised = self.raised.lock().unwrap_or_else(|e| e.into_inner());
        raised.get_or_insert(error);
    }

    fn report(&self, message: Message) {
        let (kind, text) = match message {
            Message::Progress(text) => ("progress", text),
            Message::Warning(text) => ("warning", text),
        };
        let result = Python::attach(|py| match &self.callback {
            Some(callback) => callback.call1(py, (kind, text)).map(|_| ()),
            // stacklevel 2: the line of the user's code that called the package's method.
            None if kind == "warning" => py
                .import("warnings")
                .and_then(|w| {
                    let options = [("stacklevel", 2)].into_py_dict(py)?;
                    w.call_method("warn", (text,), Some(&options))
                })
                .map(|_| ()),
            None => Ok(()),
        });
        if let Err(error) = result {
            self.keep(error);
        }
    }

    /// Whether the work should stop: an exception is pending, or Ctrl-C was pressed.
    fn stop_requested(&self) -> bool {
        if self
            .raised
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            return true;
        }
        match Python::attach(|py| py.check_signals()) {
            Ok(()) => false,
            Err(error) => {
                self.keep(error);
                true
            }
        }
    }

    /// The call's result, or the exception that stopped it: a Ctrl-C keeps the run's own
    /// message (what was finished, how to resume), an exception of the callback is raised as
    /// it is.
    fn finish<T>(&self, result: PyResult<T>) -> PyResult<T> {
        let raised = self.raised.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(raised) = raised else {
            return result;
        };
        Python::attach(|py| match result {
            Err(stopped)
                if stopped.is_instance_of::<PyKeyboardInterrupt>(py)
                    && raised.is_instance_of::<PyKeyboardInterrupt>(py) =>
            {
                Err(stopped)
            }
            _ => Err(raised),
        })
    }
}

/// A loaded model (`knowledge_neurons.load_model`), shared by the calls on it; the Python
/// class `knowledge_neurons.Model` wraps it.
#[pyclass(name = "NativeModel", module = "knowledge_neurons._native")]
struct NativeModel {
    inner: Mutex<Box<dyn KnowledgeModel>>,
}

/// A weight edit in force: the handle that restores the value slots it changed.
#[pyclass(name = "NativeEdit", module = "knowledge_neurons._native")]
struct NativeEdit {
    handle: EditHandle,
    restored: Mutex<bool>,
    excluded: Vec<(usize, usize)>,
}

impl NativeEdit {
    /// An edit in force, not yet restored; `excluded` as the update left them out.
    fn new(handle: EditHandle, excluded: &kn_edit::NeuronSet) -> Self {
        NativeEdit {
            handle,
            restored: Mutex::new(false),
            excluded: excluded
                .as_slice()
                .iter()
                .map(|n| (n.layer, n.index))
                .collect(),
        }
    }
}

#[pymethods]
impl NativeEdit {
    /// The edited neurons, `(layer, index)`, in the order of the patch's rows.
    #[getter]
    fn neurons(&self) -> Vec<(usize, usize)> {
        self.handle
            .neurons()
            .iter()
            .map(|n| (n.layer, n.index))
            .collect()
    }

    /// Neurons of the fact left out as shared by too many facts of its relation.
    #[getter]
    fn excluded(&self) -> Vec<(usize, usize)> {
        self.excluded.clone()
    }

    /// What the edit did (free text, as in the patch file).
    #[getter]
    fn description(&self) -> String {
        self.handle.patch().description.clone()
    }

    /// Whether the weights were restored.
    #[getter]
    fn restored(&self) -> bool {
        *self.restored.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Saves the edit as a kn-edit patch file (safetensors; re-apply with `apply_patch`).
    fn save(&self, path: PathBuf) -> PyResult<()> {
        self.handle
            .save(&path)
            .map_err(|e| to_py(RunError::from(e)))
    }
}

/// One prompt's attribution for Python: its JSON, its scores and its clean activations.
type AttributionArrays<'py> = (String, Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<f32>>);

/// Runs `work` on the model without the GIL.
fn with_model<T: Send>(
    py: Python<'_>,
    model: &NativeModel,
    work: impl FnOnce(&mut dyn KnowledgeModel) -> Result<T, RunError> + Send,
) -> PyResult<T> {
    py.detach(|| {
        let mut guard = model
            .inner
            .lock()
            .map_err(|_| RunError::Internal("the model is poisoned by an earlier panic".into()))?;
        work(guard.as_mut())
    })
    .map_err(to_py)
}

#[pymethods]
impl NativeModel {
    /// Loads a model: `spec` is `default`, `gemma-3-270m`, a GGUF file or a Hugging Face
    /// directory; `device` `cpu`, `cuda` or `cuda:N`; `dtype` `f32`, `bf16` or `f16`.
    #[staticmethod]
    #[pyo3(signature = (spec, device="cpu", dtype="f32", threads=0, callback=None))]
    fn load(
        py: Python<'_>,
        spec: String,
        device: &str,
        dtype: &str,
        threads: usize,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let dtype: kn_model::Dtype = dtype
            .parse()
            .map_err(|e: String| BadInputError::new_err(format!("--dtype {dtype:?}: {e}")))?;
        let session = Session::new(callback);
        let model = session.finish(
            py.detach(|| {
                kn_run::predict::load_model(&spec, device, dtype, threads, &|m| session.report(m))
            })
            .map_err(to_py),
        )?;
        Ok(NativeModel {
            inner: Mutex::new(model),
        })
    }

    /// The model's facts (architecture, layers, widths, vocabulary, dtype, source,
    /// fingerprint) as JSON.
    fn info(&self, py: Python<'_>) -> PyResult<String> {
        let info = with_model(py, self, |model| Ok(model.info().clone()))?;
        to_json(&info)
    }

    /// `kn predict --json` for one prompt.
    fn predict(&self, py: Python<'_>, prompt: String, top: usize) -> PyResult<String> {
        let output = with_model(py, self, |model| {
            kn_run::predict::predict(model, &prompt, top)
        })?;
        to_json(&output)
    }

    /// `kn attribute --json` for several prompts (one JSON object each), with each prompt's
    /// score matrix and clean activations, `[layers, ffn]` float32 arrays that own the Rust
    /// buffers. `callback` hears `[k/n]` as each prompt's result is ready.
    #[pyo3(signature = (prompts, answers, counterfactuals, method, steps, rule, target, layers,
        top, batch_size, concurrent_passes, memory_budget, answer_policy, separately, callback))]
    #[allow(clippy::too_many_arguments)]
    fn attribute<'py>(
        &self,
        py: Python<'py>,
        prompts: Vec<String>,
        answers: Vec<String>,
        counterfactuals: Vec<String>,
        method: &str,
        steps: usize,
        rule: &str,
        target: &str,
        layers: &str,
        top: usize,
        batch_size: usize,
        concurrent_passes: usize,
        memory_budget: f64,
        answer_policy: &str,
        separately: bool,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Vec<AttributionArrays<'py>>> {
        let method: Method = method.parse().map_err(BadInputError::new_err)?;
        let mut settings = AttributeSettings::parse(
            method,
            steps,
            rule,
            target,
            top,
            batch_size,
            concurrent_passes,
            memory_budget,
            separately,
        )
        .map_err(to_py)?;
        let policy = parse_policy(answer_policy).map_err(to_py)?;
        let answers =
            per_prompt(&answers, prompts.len(), "--answer", "one answer").map_err(to_py)?;
        let counterfactuals =
            counterfactuals_for(method, &counterfactuals, prompts.len()).map_err(to_py)?;
        let session = Session::new(callback);
        let results = session.finish(with_model(py, self, |model| {
            settings.config.layers = Some(parse_layers(layers, model.info().num_layers)?);
            let encoded = encode_prompts(model, &prompts, &answers, policy)?;
            let mut results = Vec::with_capacity(prompts.len());
            attribute_prompts(
                model,
                &encoded,
                &counterfactuals,
                &settings,
                &|| session.stop_requested(),
                &mut |index, attribution, seconds, batch| {
                    let output = AttributeOutput::new(
                        model,
                        &settings,
                        &prompts[index],
                        answers[index],
                        counterfactuals.get(index).map(|c| c.as_str()),
                        &encoded[index],
                        &attribution,
                        seconds,
                        batch,
                    );
                    let json = serde_json::to_string(&output)
                        .map_err(|e| RunError::Internal(e.to_string()))?;
                    session.report(Message::Progress(format!(
                        "[{}/{}] {}",
                        index + 1,
                        prompts.len(),
                        kn_run::text::shorten(&prompts[index])
                    )));
                    results.push((json, attribution.scores, attribution.activations));
                    Ok(())
                },
            )?;
            Ok(results)
        }))?;
        Ok(results
            .into_iter()
            .map(|(json, scores, activations)| {
                (
                    json,
                    PyArray2::from_owned_array(py, scores),
                    PyArray2::from_owned_array(py, activations),
                )
            })
            .collect())
    }

    /// Scales (`op` "scale", `value` the factor: 0 suppresses, 2 amplifies) or sets (`op`
    /// "set") the activations of `neurons` at the answer position of each prompt and reports
    /// each prompt's answer before and after (`kn_edit::PromptEffect`s as JSON).
    #[pyo3(signature = (prompts, answers, neurons, op, value, batch_size, answer_policy))]
    #[allow(clippy::too_many_arguments)]
    fn intervene(
        &self,
        py: Python<'_>,
        prompts: Vec<String>,
        answers: Vec<String>,
        neurons: Vec<(usize, usize)>,
        op: &str,
        value: f64,
        batch_size: usize,
        answer_policy: &str,
    ) -> PyResult<String> {
        let op = match op {
            "scale" => ActivationOp::Scale(value),
            "set" => ActivationOp::Set(value),
            other => {
                return Err(BadInputError::new_err(format!(
                    "unknown operation {other:?}: use scale or set"
                )))
            }
        };
        let policy = parse_policy(answer_policy).map_err(to_py)?;
        let answers =
            per_prompt(&answers, prompts.len(), "--answer", "one answer").map_err(to_py)?;
        let effects = with_model(py, self, |model| {
            let encoded = encode_prompts(model, &prompts, &answers, policy)?;
            let set: kn_edit::NeuronSet = neurons.iter().copied().collect();
            Ok(kn_edit::intervene(
                model,
                &encoded,
                &set,
                op,
                &InterventionConfig { batch_size },
            )?)
        })?;
        to_json(&effects)
    }

    /// `kn suppress --json` on a run directory (also written to `out`, or to the run's
    /// suppression.json when `out` is None).
    #[pyo3(signature = (run, relations, seed, batch_size, other_relation_facts, random_control,
        activation_baseline, out, callback))]
    #[allow(clippy::too_many_arguments)]
    fn suppress(
        &self,
        py: Python<'_>,
        run: PathBuf,
        relations: Option<String>,
        seed: u64,
        batch_size: usize,
        other_relation_facts: usize,
        random_control: bool,
        activation_baseline: bool,
        out: Option<PathBuf>,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let session = Session::new(callback);
        let output = session.finish(with_model(py, self, |model| {
            at_least_one(batch_size, "--batch-size")?;
            let prepared = kn_run::suppression::prepare_suppression(
                &run,
                relations.as_deref(),
                out.as_deref(),
            )?;
            let config = kn_edit::ExperimentConfig {
                batch_size,
                other_relation_facts,
                random_control,
                seed,
                ..kn_edit::ExperimentConfig::default()
            };
            let output = prepared.run(model, &config, activation_baseline, false, &|m| {
                session.report(m)
            })?;
            Ok(output)
        }))?;
        to_json(&output)
    }

    /// `kn edit --json` on a run directory: one fact (`fact`, `new_answer`) or a seeded sample
    /// of `facts` facts (with `sweep`, under each setting of the update rule: `kn edit
    /// --sweep`); the weights are restored (checked bit for bit) before it returns.
    #[pyo3(signature = (run, fact, new_answer, facts, relations, seed, lambda_remove, lambda_add,
        scale_by_norm, shared_threshold, random_control, batch_size, max_control_prompts,
        holdout, sweep, callback))]
    #[allow(clippy::too_many_arguments)]
    fn evaluate_edit(
        &self,
        py: Python<'_>,
        run: PathBuf,
        fact: Option<String>,
        new_answer: Option<String>,
        facts: Option<usize>,
        relations: Option<String>,
        seed: u64,
        lambda_remove: f64,
        lambda_add: f64,
        scale_by_norm: bool,
        shared_threshold: f64,
        random_control: bool,
        batch_size: usize,
        max_control_prompts: usize,
        holdout: f64,
        sweep: Vec<f64>,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let session = Session::new(callback);
        let config = update_config(lambda_remove, lambda_add, scale_by_norm, shared_threshold)?;
        for &lambda in &sweep {
            kn_run::options::check_finite("--sweep", lambda, false).map_err(to_py)?;
        }
        if !sweep.is_empty() && facts.is_none() {
            return Err(BadInputError::new_err(
                "--sweep needs --facts: a sample of facts to repeat under each setting",
            ));
        }
        session.finish(with_model(py, self, |model| {
            at_least_one(batch_size, "--batch-size")?;
            kn_run::options::check_holdout(holdout)?;
            let run = RunDir::load(&run)?;
            run.check_model(model.info())?;
            let started = Instant::now();
            let report = |m| session.report(m);
            let context = Context {
                report: &report,
                run: &run,
                encoded: kn_run::encode_run(model, &run)?,
                config,
                eval: EvaluationConfig {
                    batch_size,
                    random_control,
                    seed,
                },
                max_control_prompts,
                dataset: kn_run::editing::load_dataset(&run),
                holdout,
            };
            let json = match (fact, new_answer, facts) {
                (Some(fact), Some(new_answer), None) => {
                    let record = run.find(&fact)?.clone();
                    let edit = edit_fact(model, &context, &record, &new_answer, None)?;
                    serde_json::to_string(&kn_run::editing::SingleOutput {
                        run: run.describe(),
                        edit,
                        seconds: started.elapsed().as_secs_f64(),
                    })
                }
                (None, None, Some(count)) => {
                    at_least_one(count, "--facts")?;
                    let relations = run.select_relations(relations.as_deref())?;
                    match sweep.is_empty() {
                        true => serde_json::to_string(&edit_sample(
                            model, &context, &relations, count, started,
                        )?),
                        false => serde_json::to_string(&edit_sweep(
                            model, context, &relations, count, &sweep, started,
                        )?),
                    }
                }
                _ => {
                    return Err(RunError::BadInput(
                        "give either fact and new_answer, or facts".into(),
                    ))
                }
            };
            json.map_err(|e| RunError::Internal(e.to_string()))
        }))
    }

    /// `kn erase --json` on a run directory; the weights are restored (checked bit for bit)
    /// before it returns.
    #[pyo3(signature = (run, relation, top, value, max_held_out, random_control, seed,
        batch_size, callback))]
    #[allow(clippy::too_many_arguments)]
    fn evaluate_erasure(
        &self,
        py: Python<'_>,
        run: PathBuf,
        relation: String,
        top: usize,
        value: &str,
        max_held_out: usize,
        random_control: bool,
        seed: u64,
        batch_size: usize,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let session = Session::new(callback);
        let config = erase_config(top, value)?;
        let output = session.finish(with_model(py, self, |model| {
            at_least_one(batch_size, "--batch-size")?;
            let run = RunDir::load(&run)?;
            run.check_model(model.info())?;
            let relation = run.select_relation(&relation)?;
            kn_run::erasure::erase_relation(
                model,
                &run,
                &relation,
                &config,
                max_held_out,
                &EvaluationConfig {
                    batch_size,
                    random_control,
                    seed,
                },
                &|m| session.report(m),
            )
        }))?;
        to_json(&output)
    }

    /// Updates a fact of a run in the weights and leaves it so: the returned edit restores it.
    #[pyo3(signature = (run, fact, new_answer, lambda_remove, lambda_add, scale_by_norm,
        shared_threshold, callback))]
    #[allow(clippy::too_many_arguments)]
    fn apply_update(
        &self,
        py: Python<'_>,
        run: PathBuf,
        fact: String,
        new_answer: String,
        lambda_remove: f64,
        lambda_add: f64,
        scale_by_norm: bool,
        shared_threshold: f64,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<NativeEdit> {
        let session = Session::new(callback);
        let config = update_config(lambda_remove, lambda_add, scale_by_norm, shared_threshold)?;
        let outcome = session.finish(with_model(py, self, |model| {
            let run = RunDir::load(&run)?;
            kn_run::editing::apply_update(model, &run, &fact, &new_answer, &config, &|m| {
                session.report(m)
            })
        }))?;
        Ok(NativeEdit::new(outcome.handle, &outcome.excluded))
    }

    /// Erases a relation of a run in the weights and leaves it so: the returned edit restores
    /// it.
    fn apply_erasure(
        &self,
        py: Python<'_>,
        run: PathBuf,
        relation: String,
        top: usize,
        value: &str,
    ) -> PyResult<NativeEdit> {
        let config = erase_config(top, value)?;
        let outcome = with_model(py, self, |model| {
            let run = RunDir::load(&run)?;
            kn_run::erasure::apply_erasure(model, &run, &relation, &config)
        })?;
        Ok(NativeEdit::new(
            outcome.handle,
            &kn_edit::NeuronSet::default(),
        ))
    }

    /// Applies a kn-edit patch file (`kn edit --patch-out`, `Edit.save`) made for this model.
    fn apply_patch(&self, py: Python<'_>, path: PathBuf) -> PyResult<NativeEdit> {
        let handle = with_model(py, self, |model| {
            let patch = kn_edit::Patch::load(&path)?;
            Ok(kn_edit::apply_patch(model, &patch)?)
        })?;
        Ok(NativeEdit::new(handle, &kn_edit::NeuronSet::default()))
    }

    /// Writes `edit`'s old value slots back and checks them bit for bit; returns whether they
    /// match. A second call does nothing.
    fn restore(&self, py: Python<'_>, edit: &NativeEdit) -> PyResult<bool> {
        let mut restored = edit.restored.lock().unwrap_or_else(|e| e.into_inner());
        if *restored {
            return Ok(true);
        }
        let exact = with_model(py, self, |model| {
            edit.handle.restore(model)?;
            Ok(kn_edit::verify_restored(model, edit.handle.patch())?)
        })?;
        *restored = true;
        Ok(exact)
    }
}

/// The update rule's settings, checked as `kn edit` checks them.
fn update_config(
    lambda_remove: f64,
    lambda_add: f64,
    scale_by_norm: bool,
    shared_threshold: f64,
) -> PyResult<UpdateConfig> {
    kn_run::options::check_update_numbers(lambda_remove, lambda_add, shared_threshold)
        .map_err(to_py)?;
    Ok(UpdateConfig {
        lambda_remove,
        lambda_add,
        scale_by_norm,
        shared_threshold,
    })
}

/// An erasure's settings, checked as `kn erase` checks them.
fn erase_config(top: usize, value: &str) -> PyResult<EraseConfig> {
    let value = parse_erasure_value(value).map_err(to_py)?;
    at_least_one(top, "--top").map_err(to_py)?;
    Ok(EraseConfig { top_n: top, value })
}

/// `kn discover --json`: discovers the knowledge neurons of PARAREL facts into `out`
/// (resumable) and returns the run's statistics.
#[pyfunction]
#[pyo3(signature = (model, relations, out, facts_per_relation, seed, data, method, steps,
    layers, threshold, share, adaptive, min_prompts, max_prompts, correct_rank, correct_prompts,
    single_token, shard, batch_size, concurrent_passes, memory_budget, save_scores, callback))]
#[allow(clippy::too_many_arguments)]
fn discover(
    py: Python<'_>,
    model: &NativeModel,
    relations: String,
    out: PathBuf,
    facts_per_relation: usize,
    seed: u64,
    data: Option<PathBuf>,
    method: &str,
    steps: usize,
    layers: String,
    threshold: f32,
    share: f64,
    adaptive: bool,
    min_prompts: usize,
    max_prompts: usize,
    correct_rank: usize,
    correct_prompts: usize,
    single_token: bool,
    shard: Option<String>,
    batch_size: usize,
    concurrent_passes: usize,
    memory_budget: f64,
    save_scores: usize,
    callback: Option<Py<PyAny>>,
) -> PyResult<String> {
    let method: Method = method.parse().map_err(BadInputError::new_err)?;
    let session = Session::new(callback);
    let prepared = py
        .detach(|| {
            DiscoverRequest {
                relations,
                facts_per_relation,
                seed,
                out,
                data,
                method,
                steps,
                layers,
                threshold,
                share,
                adaptive,
                min_prompts,
                max_prompts,
                correct_rank,
                correct_prompts,
                single_token,
                shard,
                batch_size,
                concurrent_passes,
                memory_budget,
                save_scores,
            }
            .prepare()
        })
        .map_err(to_py)?;
    let stats = session.finish(with_model(py, model, |model| {
        prepared.run(model, &|| session.stop_requested(), &|m| session.report(m))
    }))?;
    to_json(&stats)
}

/// The extension module.
#[pymodule]
#[pyo3(name = "_native")]
fn native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<NativeModel>()?;
    module.add_class::<NativeEdit>()?;
    module.add_function(wrap_pyfunction!(discover, module)?)?;
    module.add("BadInputError", module.py().get_type::<BadInputError>())?;
    module.add("InternalError", module.py().get_type::<InternalError>())?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
