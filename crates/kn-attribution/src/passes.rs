//! How attribution's rows are cut into batched passes, and how the passes run: one after
//! another on the calling thread, or several at the same time on the CPU, each on its share of
//! the calling thread's libtorch threads.
//!
//! Passes are independent: each takes its rows from their starting layers to the head and
//! back. Running two at once on one thread each, instead of one on two threads, keeps both
//! cores in matrix products while either pass is in the small operations between them, and
//! on one thread the products go through the project's own kernels ([`kn_kernels::matmul`])
//! rather than MKL. Their contributions are summed
//! afterwards in plan order, so the result does not depend on which pass finished first.
//! Passes left over after the full rounds (one prompt alone, the fifth of five) are split by
//! integration rows so that the last round fills every worker too ([`fill_last_round`]).
//!
//! How many rows go in flight comes from the caller's `batch_size`, else the model's
//! suggestion cut to the memory budget ([`rows_within`]); [`attribute_clean_passes`] plans the
//! passes, runs them on the [`Workers`] ([`run_pass`]: forward from the scaled activations, the
//! head in closed form, backward) and sums each layer's weighted gradients in plan order.

use crate::error::{AttributionError, Result};
use crate::head::{combine_targets, head_lines, line_log_probs_and_gradients};
use crate::integrated_gradients::{
    finish_attribution, Attribution, AttributionConfig, Target, DEFAULT_ROWS_PER_PASS,
};
use kn_model::tch::{self, Device, Kind, Tensor};
use kn_model::{guard, CleanPass, KnowledgeModel};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Part of a batched pass: the integration rows `rows` (indices into the rule's rows) of the
/// layers `layers` (indices into the attributed layers) of prompt `prompt`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PassPart {
    pub(crate) prompt: usize,
    pub(crate) layers: Range<usize>,
    pub(crate) rows: Range<usize>,
}

/// Cuts the `prompts` x `layer_count` x `row_count` rows into batched passes of at most
/// `rows_per_pass` rows. When two or more whole prompts fit in a pass, consecutive prompts
/// share passes (one part each); otherwise each pass is a group of layers (as many as fit)
/// times a chunk of integration rows of one prompt.
pub(crate) fn plan_passes(
    prompts: usize,
    layer_count: usize,
    row_count: usize,
    rows_per_pass: usize,
) -> Vec<Vec<PassPart>> {
    let per_prompt = layer_count * row_count;
    let whole = |prompt| PassPart {
        prompt,
        layers: 0..layer_count,
        rows: 0..row_count,
    };
    if per_prompt > 0 && rows_per_pass / per_prompt >= 2 {
        let prompts_per_pass = rows_per_pass / per_prompt;
        return (0..prompts)
            .collect::<Vec<_>>()
            .chunks(prompts_per_pass)
            .map(|chunk| chunk.iter().map(|&p| whole(p)).collect())
            .collect();
    }
    let layers_per_pass = layer_count.min(rows_per_pass).max(1);
    let rows_per_layer = (rows_per_pass / layers_per_pass).clamp(1, row_count.max(1));
    let mut plans = Vec::new();
    for prompt in 0..prompts {
        for first_layer in (0..layer_count).step_by(layers_per_pass) {
            for first_row in (0..row_count).step_by(rows_per_layer) {
                plans.push(vec![PassPart {
                    prompt,
                    layers: first_layer..(first_layer + layers_per_pass).min(layer_count),
                    rows: first_row..(first_row + rows_per_layer).min(row_count),
                }]);
            }
        }
    }
    plans
}

/// With `workers` concurrent passes: the passes that would be left over after the full rounds
/// (the last `plans.len() % workers`) each split by integration rows into `workers` pieces,
/// so that every round, the last included, gives each worker a pass on one thread. A pass
/// left over would otherwise run alone with all the threads, its products through MKL; split,
/// a lone SmolLM2 prompt took 1.22 s against 1.30 s (in-process A/B, 20 runs each). Pieces
/// that would get no rows are left out.
pub(crate) fn fill_last_round(mut plans: Vec<Vec<PassPart>>, workers: usize) -> Vec<Vec<PassPart>> {
    let tail = if workers > 1 {
        plans.len() % workers
    } else {
        0
    };
    let leftovers = plans.split_off(plans.len() - tail);
    for pass in leftovers {
        for piece in 0..workers {
            let parts: Vec<PassPart> = pass
                .iter()
                .map(|part| PassPart {
                    rows: share(&part.rows, piece, workers),
                    ..part.clone()
                })
                .filter(|part| !part.rows.is_empty())
                .collect();
            if !parts.is_empty() {
                plans.push(parts);
            }
        }
    }
    plans
}

/// The passes as they run on `workers`: a pass left alone in the last round either runs with
/// the other workers' threads helping its products (when `lone_pass_shares_products`, see
/// `KnowledgeModel::lone_pass_shares_products_hint`), or is split by rows among the workers
/// ([`fill_last_round`]).
pub(crate) fn plan_last_round(
    plans: Vec<Vec<PassPart>>,
    workers: usize,
    lone_pass_shares_products: bool,
) -> Vec<Vec<PassPart>> {
    if lone_pass_shares_products {
        plans
    } else {
        fill_last_round(plans, workers)
    }
}

/// The `piece`-th of `pieces` near-equal consecutive shares of `range`.
fn share(range: &Range<usize>, piece: usize, pieces: usize) -> Range<usize> {
    let len = range.len();
    range.start + len * piece / pieces..range.start + len * (piece + 1) / pieces
}

/// Whether the machine has more than one core, so that a helper thread lent to a lone job
/// ([`kn_kernels::matmul::with_product_helper`], which spins) does not take the job's own core.
fn has_spare_core() -> bool {
    std::thread::available_parallelism().is_ok_and(|cores| cores.get() > 1)
}

/// A shared borrow of data holding libtorch tensors, to be read from the pass workers.
pub(crate) struct ReadOnly<'a, T: ?Sized>(&'a T);

impl<'a, T: ?Sized> ReadOnly<'a, T> {
    /// Wraps `value`, which the workers will only read.
    pub(crate) fn new(value: &'a T) -> Self {
        Self(value)
    }

    /// The borrowed value.
    pub(crate) fn get(&self) -> &'a T {
        self.0
    }
}

// SAFETY: what is wrapped are clean passes (activations, cached keys and values, logits) that
// the workers only read: libtorch allows concurrent reads of a tensor, and its reference
// counts are atomic. Nothing writes to them while the borrow lives.
unsafe impl<T: ?Sized> Sync for ReadOnly<'_, T> {}

/// Runs `job` for every index in `0..count` and returns the results in index order: up to
/// `workers` jobs at the same time, each worker thread with its share of the calling thread's
/// libtorch threads (at least one). Jobs that do not fill a last round of `workers` run as a
/// smaller round with the same shares (a lone job on the calling thread, its thread count set
/// to one share for the job): a clean pass, for one, is faster on one thread than on two
/// (SmolLM2: 0.077 against 0.097 s). After a failure no new job starts, and the first failure
/// (in index order) is returned.
pub(crate) fn run_concurrently<T: Send>(
    count: usize,
    workers: usize,
    job: impl Fn(usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let workers = workers.max(1);
    let threads = tch::get_num_threads().max(1) as usize;
    let shares: Vec<usize> = (0..workers)
        .map(|worker| (threads / workers + usize::from(worker < threads % workers)).max(1))
        .collect();
    let tail = count % workers;
    let mut results = run_round(0..count - tail, &shares, &job)?;
    results.extend(run_round(count - tail..count, &shares[..tail], &job)?);
    Ok(results)
}

/// [`run_concurrently`] for the jobs `indices`, on one worker thread per share of libtorch
/// threads, each taking the next job as it finishes one; one worker runs them on the calling
/// thread.
fn run_round<T: Send>(
    indices: Range<usize>,
    shares: &[usize],
    job: &(impl Fn(usize) -> Result<T> + Sync),
) -> Result<Vec<T>> {
    let threads = tch::get_num_threads().max(1) as usize;
    if indices.is_empty() {
        return Ok(Vec::new());
    }
    if let [share] = shares {
        kn_model::set_threads(*share);
        // The threads the other workers would have had help with this job's few-row
        // products (a lone clean pass then streams the weights on two cores).
        let results = if threads > *share && has_spare_core() {
            kn_kernels::matmul::with_product_helper(|| indices.map(job).collect())
        } else {
            indices.map(job).collect()
        };
        kn_model::set_threads(threads);
        return results;
    }
    let next = AtomicUsize::new(indices.start);
    let failed = AtomicBool::new(false);
    let slots: Vec<Mutex<Option<Result<T>>>> = indices.clone().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for &share in shares {
            let (next, failed, slots, indices) = (&next, &failed, &slots, &indices);
            scope.spawn(move || {
                kn_model::set_threads(share);
                while !failed.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= indices.end {
                        break;
                    }
                    let result =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(index)))
                            .unwrap_or_else(|_| {
                                Err(AttributionError::InvalidConfig(
                                    "internal error: an attribution pass panicked".into(),
                                ))
                            });
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    if let Ok(mut slot) = slots[index - indices.start].lock() {
                        *slot = Some(result);
                    }
                }
            });
        }
    });
    // Setting a count also records it as the default for threads libtorch starts later: put
    // back the caller's.
    tch::set_num_threads(threads as i32);
    let mut results = Vec::with_capacity(slots.len());
    let mut missing = false;
    for slot in slots {
        match slot.into_inner().ok().flatten() {
            Some(Ok(value)) => results.push(value),
            Some(Err(error)) => return Err(error),
            None => missing = true,
        }
    }
    if missing {
        return Err(AttributionError::InvalidConfig(
            "internal error: an attribution pass did not run".into(),
        ));
    }
    Ok(results)
}

// The scheduling of an attribution: how many rows go in flight, the workers, the passes.

/// The memory budget of an attribution's rows in flight: the configured one, else on the CPU
/// half the memory available now; `None` (no cut) on other devices when none is configured.
fn memory_budget(config: &AttributionConfig, device: Device) -> Option<u64> {
    match config.memory_budget {
        0 if device == Device::Cpu => kn_model::available_memory().map(|bytes| bytes / 2),
        0 => None,
        bytes => Some(bytes),
    }
}

/// Rows in flight that fit `budget` bytes at `bytes_per_row` each (at least one).
pub fn rows_within(budget: u64, bytes_per_row: u64) -> usize {
    usize::try_from(budget / bytes_per_row.max(1))
        .unwrap_or(usize::MAX)
        .max(1)
}

/// What one part of a pass contributes: per layer of its group, the rule-weighted sum of its
/// rows' gradients, and the target at alpha = 0 when the part holds that row.
struct PartResult {
    weighted_gradients: Vec<Tensor>,
    targets_at_zero: Vec<Option<f64>>,
}

/// Runs one batched pass ([`KnowledgeModel::start_gradients_batch`]): forward from the scaled
/// activations of every part to the head's features (all parts through each layer together),
/// the target and its gradient there in closed form, and one backward pass to the activations.
fn run_pass(
    model: &dyn KnowledgeModel,
    cleans: &[CleanPass],
    layers: &[usize],
    rows: &[(f64, f64)],
    zero_row: usize,
    parts: &[PassPart],
    target: Target,
) -> kn_model::Result<Vec<PartResult>> {
    let device = model.device();
    let (weight, bias) = model.output_projection();
    guard(|| {
        let tensor = |values: Vec<f32>| Tensor::from_slice(&values).to_device(device).unsqueeze(1);
        let starts: Vec<Vec<(usize, Tensor)>> = parts
            .iter()
            .map(|part| {
                let alphas = tensor(
                    rows[part.rows.clone()]
                        .iter()
                        .map(|&(a, _)| a as f32)
                        .collect(),
                );
                let clean = &cleans[part.prompt];
                layers[part.layers.clone()]
                    .iter()
                    .map(|&layer| {
                        let scaled =
                            (&alphas * clean.activations.get(layer as i64).unsqueeze(0)).detach();
                        (layer, scaled)
                    })
                    .collect()
            })
            .collect();
        let runs: Vec<(&CleanPass, &[(usize, Tensor)])> = parts
            .iter()
            .zip(&starts)
            .map(|(part, s)| (&cleans[part.prompt], s.as_slice()))
            .collect();
        // The head in closed form, all parts' lines at once; the model takes its gradient back
        // to the scaled activations (d target / d activations = Jᵀ d target / d features).
        let mut heads: Vec<(Tensor, Tensor)> = Vec::new();
        let mut head = |features: &[Tensor]| -> kn_model::Result<Vec<Tensor>> {
            if features.len() != parts.len() {
                return Err(kn_model::ModelError::Torch("missing features".into()));
            }
            let (lines, ids): (Vec<Tensor>, Vec<Tensor>) = parts
                .iter()
                .zip(features)
                .map(|(part, f)| head_lines(f, &cleans[part.prompt].prompt))
                .unzip();
            let line_counts: Vec<i64> = lines.iter().map(|l| l.size()[0]).collect();
            heads = kn_model::tch::no_grad(|| {
                let (log_probs, gradients) = line_log_probs_and_gradients(
                    &Tensor::cat(&lines, 0),
                    &Tensor::cat(&ids, 0),
                    &weight,
                    bias.as_ref(),
                );
                log_probs
                    .split_with_sizes(&line_counts, 0)
                    .iter()
                    .zip(gradients.split_with_sizes(&line_counts, 0))
                    .zip(features)
                    .map(|((lp, g), f)| combine_targets(lp, g, f.size(), target))
                    .collect()
            });
            Ok(heads.iter().map(|(_, g)| g.shallow_clone()).collect())
        };
        let gradients = model.start_gradients_batch(&runs, &mut head)?;
        if heads.len() != parts.len() {
            return Err(kn_model::ModelError::Torch(
                "the model did not evaluate the head".into(),
            ));
        }
        let mut gradients = gradients.into_iter().flatten();
        let mut results = Vec::with_capacity(parts.len());
        for (part, (values, _)) in parts.iter().zip(&heads) {
            let (group, chunk) = (part.layers.len(), part.rows.len());
            let weights = tensor(
                rows[part.rows.clone()]
                    .iter()
                    .map(|&(_, w)| w as f32)
                    .collect(),
            );
            let values = values.reshape([group as i64, chunk as i64]);
            let zero_in_part = part
                .rows
                .contains(&zero_row)
                .then(|| (zero_row - part.rows.start) as i64);
            let mut weighted_gradients = Vec::with_capacity(group);
            for _ in 0..group {
                let gradient = gradients
                    .next()
                    .ok_or_else(|| kn_model::ModelError::Torch("missing gradients".into()))?;
                weighted_gradients.push((gradient * &weights).sum_dim_intlist(
                    0,
                    false,
                    Kind::Float,
                ));
            }
            let targets_at_zero = (0..group)
                .map(|k| zero_in_part.map(|row| values.double_value(&[k as i64, row])))
                .collect();
            results.push(PartResult {
                weighted_gradients,
                targets_at_zero,
            });
        }
        Ok(results)
    })
}

/// Where an attribution's independent jobs (clean passes, batched passes) run: in order on the
/// calling thread, or on several workers at once when the model can be shared between threads.
pub(crate) struct Workers<'m> {
    model: &'m dyn KnowledgeModel,
    /// How many workers, and the model as shared with them; `None` for the calling thread.
    concurrent: Option<(usize, &'m (dyn KnowledgeModel + Sync))>,
}

impl<'m> Workers<'m> {
    /// The caller's `concurrent_passes`, else the model's hint; more than one worker only on
    /// the CPU and for a model shareable between threads. Asking explicitly for concurrent
    /// passes on a model that cannot share is an error.
    pub(crate) fn new(model: &'m dyn KnowledgeModel, config: &AttributionConfig) -> Result<Self> {
        let requested = match config.concurrent_passes {
            0 => model.concurrent_passes_hint(),
            count => count,
        };
        let concurrent = if requested <= 1 || model.device() != Device::Cpu {
            None
        } else {
            match model.as_sync() {
                Some(shared) => Some((requested, shared)),
                None if config.concurrent_passes > 1 => {
                    return Err(AttributionError::InvalidConfig(format!(
                        "{} concurrent passes asked, but this model cannot be shared between \
                         threads: use 1",
                        config.concurrent_passes
                    )))
                }
                None => None,
            }
        };
        Ok(Self { model, concurrent })
    }

    /// How many jobs run at once.
    fn count(&self) -> usize {
        self.concurrent.map_or(1, |(count, _)| count)
    }

    /// `job(model, i)` for every `i` in `0..jobs`, results in that order (see
    /// [`run_concurrently`]).
    pub(crate) fn run<T: Send>(
        &self,
        jobs: usize,
        job: impl Fn(&dyn KnowledgeModel, usize) -> kn_model::Result<T> + Sync,
    ) -> Result<Vec<T>> {
        match self.concurrent {
            Some((count, shared)) => run_concurrently(jobs, count, |i| Ok(job(shared, i)?)),
            None => (0..jobs).map(|i| Ok(job(self.model, i)?)).collect(),
        }
    }
}

pub(crate) fn attribute_clean_passes(
    workers: &Workers,
    cleans: &[CleanPass],
    layers: &[usize],
    points: &[(f64, f64)],
    config: &AttributionConfig,
) -> Result<Vec<Attribution>> {
    // Rows of one layer: the rule's points, plus alpha = 0 (weight 0) for the completeness
    // check when the rule has no such point.
    let mut rows: Vec<(f64, f64)> = points.to_vec();
    let zero_row = match rows.iter().position(|&(alpha, _)| alpha == 0.0) {
        Some(index) => index,
        None => {
            rows.push((0.0, 0.0));
            rows.len() - 1
        }
    };
    let budget = memory_budget(config, workers.model.device());
    let rows_in_flight = if config.batch_size == 0 {
        let suggested = workers
            .model
            .rows_in_flight_hint()
            .unwrap_or(DEFAULT_ROWS_PER_PASS);
        match (budget, workers.model.bytes_per_row_hint()) {
            (Some(budget), Some(per_row)) => suggested.min(rows_within(budget, per_row)),
            _ => suggested,
        }
    } else {
        config.batch_size
    };
    let plans = plan_passes(
        cleans.len(),
        layers.len(),
        rows.len(),
        (rows_in_flight / workers.count()).max(1),
    );
    let plans = plan_last_round(
        plans,
        workers.count(),
        workers.model.lone_pass_shares_products_hint(),
    );
    let shared_cleans = ReadOnly::new(cleans);
    let pass_results = workers
        .run(plans.len(), |model, index| {
            run_pass(
                model,
                shared_cleans.get(),
                layers,
                &rows,
                zero_row,
                &plans[index],
                config.target,
            )
        })
        .map_err(|error| match error {
            AttributionError::Model(kn_model::ModelError::OutOfMemory(message)) => {
                AttributionError::OutOfMemory {
                    rows_in_flight,
                    budget,
                    message,
                }
            }
            other => other,
        })?;
    // Sum each layer's contributions in plan order.
    let mut per_prompt: Vec<(Vec<Option<Tensor>>, Vec<f64>)> = cleans
        .iter()
        .map(|_| {
            (
                (0..layers.len()).map(|_| None).collect(),
                vec![f64::NAN; layers.len()],
            )
        })
        .collect();
    for (parts, results) in plans.iter().zip(pass_results) {
        for (part, result) in parts.iter().zip(results) {
            let (weighted, at_zero) = &mut per_prompt[part.prompt];
            for ((k, gradient), value) in part
                .layers
                .clone()
                .zip(result.weighted_gradients)
                .zip(result.targets_at_zero)
            {
                weighted[k] = Some(match weighted[k].take() {
                    Some(sum) => sum + gradient,
                    None => gradient,
                });
                if let Some(value) = value {
                    at_zero[k] = value;
                }
            }
        }
    }
    cleans
        .iter()
        .zip(per_prompt)
        .map(|(clean, (weighted, at_zero))| {
            finish_attribution(clean, layers, weighted, at_zero, config.target)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Every (prompt, layer, row) is in exactly one pass part, no pass holds more than
        /// `rows_per_pass` rows (unless one layer's single row already does), and whole
        /// prompts share passes only when at least two fit.
        #[test]
        fn passes_cover_every_row_once(prompts in 1usize..6, layers in 1usize..40, rows in 1usize..25, rows_per_pass in 1usize..2000) {
            let plans = plan_passes(prompts, layers, rows, rows_per_pass);
            let mut seen = vec![0u8; prompts * layers * rows];
            for parts in &plans {
                let size: usize = parts.iter().map(|p| p.layers.len() * p.rows.len()).sum();
                proptest::prop_assert!(size <= rows_per_pass.max(1), "a pass of {} rows", size);
                proptest::prop_assert!(parts.len() == 1 || rows_per_pass / (layers * rows) >= 2);
                for part in parts {
                    for layer in part.layers.clone() {
                        for row in part.rows.clone() {
                            seen[(part.prompt * layers + layer) * rows + row] += 1;
                        }
                    }
                }
            }
            proptest::prop_assert!(seen.iter().all(|&count| count == 1));
        }
    }

    proptest::proptest! {
        /// Filling the last round keeps every row in exactly one part, and leaves a number of
        /// passes that the workers divide whenever every leftover part has a row per worker.
        #[test]
        fn filled_rounds_cover_every_row_once(prompts in 1usize..6, layers in 1usize..40, rows in 1usize..25, rows_per_pass in 1usize..2000, workers in 1usize..5) {
            let plans = plan_passes(prompts, layers, rows, rows_per_pass);
            let tail = if workers > 1 { plans.len() % workers } else { 0 };
            let splittable = plans[plans.len() - tail..]
                .iter()
                .flatten()
                .all(|part| part.rows.len() >= workers);
            let before = plans.len();
            let filled = fill_last_round(plans, workers);
            let mut seen = vec![0u8; prompts * layers * rows];
            for parts in &filled {
                proptest::prop_assert!(!parts.is_empty());
                for part in parts {
                    proptest::prop_assert!(!part.rows.is_empty());
                    for layer in part.layers.clone() {
                        for row in part.rows.clone() {
                            seen[(part.prompt * layers + layer) * rows + row] += 1;
                        }
                    }
                }
            }
            proptest::prop_assert!(seen.iter().all(|&count| count == 1));
            if tail == 0 {
                proptest::prop_assert_eq!(filled.len(), before);
            }
            if splittable {
                proptest::prop_assert_eq!(filled.len() % workers.max(1), 0);
            }
        }
    }

    #[test]
    fn a_lone_pass_is_split_among_the_workers() {
        let plans = plan_passes(1, 30, 20, 600);
        assert_eq!(plans.len(), 1);
        let filled = fill_last_round(plans, 2);
        assert_eq!(filled.len(), 2);
        assert_eq!(filled[0][0].rows, 0..10);
        assert_eq!(filled[1][0].rows, 10..20);
        assert!(filled.iter().all(|p| p[0].layers == (0..30)));
        // Five prompts, two workers: four whole passes, the fifth in halves.
        let filled = fill_last_round(plan_passes(5, 30, 20, 600), 2);
        assert_eq!(filled.len(), 6);
        assert_eq!(filled[3][0].rows, 0..20);
        assert_eq!((filled[4][0].prompt, filled[4][0].rows.clone()), (4, 0..10));
        assert_eq!(
            (filled[5][0].prompt, filled[5][0].rows.clone()),
            (4, 10..20)
        );
        // One worker: unchanged.
        assert_eq!(fill_last_round(plan_passes(5, 30, 20, 600), 1).len(), 5);
        // A model whose lone pass shares its products: the pass stays whole.
        let whole = plan_last_round(plan_passes(1, 30, 20, 600), 2, true);
        assert_eq!(whole, plan_passes(1, 30, 20, 600));
        assert_eq!(
            plan_last_round(plan_passes(1, 30, 20, 600), 2, false).len(),
            2
        );
    }

    /// Results come back in index order whatever the workers (with and without a last,
    /// smaller round), and a failing job's error is returned.
    #[test]
    fn concurrent_jobs_return_in_order_and_fail_cleanly() {
        for workers in 1..9 {
            let squares = run_concurrently(7, workers, |i| Ok(i * i)).unwrap();
            assert_eq!(squares, [0, 1, 4, 9, 16, 25, 36]);
            let failed = run_concurrently(7, workers, |i| {
                if i == 3 {
                    Err(AttributionError::InvalidConfig("job 3".into()))
                } else {
                    Ok(i)
                }
            });
            assert!(matches!(failed, Err(AttributionError::InvalidConfig(m)) if m == "job 3"));
        }
    }

    /// A lone job has a helper for its few-row products when the other workers' threads
    /// are free (and the machine has a second core); jobs of a full round do not.
    #[test]
    fn a_lone_job_borrows_the_idle_threads() {
        kn_model::on_new_thread(2, || {
            let lone = run_concurrently(1, 2, |_| Ok(kn_kernels::matmul::has_product_helper()));
            assert_eq!(lone.unwrap(), [has_spare_core()]);
            let round = run_concurrently(2, 2, |_| Ok(kn_kernels::matmul::has_product_helper()));
            assert_eq!(round.unwrap(), [false, false]);
            let alone = run_concurrently(1, 1, |_| Ok(kn_kernels::matmul::has_product_helper()));
            assert_eq!(alone.unwrap(), [false]);
        });
    }

    /// The caller's libtorch thread count is the same after the workers ran.
    #[test]
    fn thread_count_is_restored() {
        let before = tch::get_num_threads();
        let _ = run_concurrently(4, 2, Ok).unwrap();
        assert_eq!(tch::get_num_threads(), before);
    }

    /// Every job, those of a last smaller round and a lone one included, runs on its share of
    /// the caller's threads, and the caller's count is back afterwards.
    #[test]
    fn every_job_runs_on_one_share_of_the_threads() {
        kn_model::on_new_thread(2, || {
            for count in [1, 2, 3, 5] {
                let seen = run_concurrently(count, 2, |_| Ok(tch::get_num_threads()));
                assert_eq!(seen.unwrap(), vec![1; count]);
                assert_eq!(tch::get_num_threads(), 2);
            }
            let seen = run_concurrently(3, 1, |_| Ok(tch::get_num_threads()));
            assert_eq!(seen.unwrap(), vec![2; 3]);
        });
    }
}
