//! How attribution's rows are cut into batched passes, and how the passes run: one after
//! another on the calling thread, or several at the same time on the CPU, each on its share of
//! the calling thread's libtorch threads.
//!
//! Passes are independent: each takes its rows from their starting layers to the head and
//! back. Running two at once on one thread each, instead of one on two threads, keeps both
//! cores in matrix products while either pass is in the small operations between them. Their
//! contributions are summed afterwards in plan order, so the result does not depend on which
//! pass finished first.

use crate::error::{AttributionError, Result};
use kn_model::tch;
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

/// Rows (layer x integration point) of a pass.
pub(crate) fn pass_rows(pass: &[PassPart]) -> usize {
    pass.iter()
        .map(|part| part.layers.len() * part.rows.len())
        .sum()
}

/// Gives every one of `workers` concurrent workers a pass in the last round: when the number of
/// passes is not a multiple of `workers`, the passes of the last, partly filled round are
/// halved (the largest first) until there is one per worker or none can be halved. One prompt
/// on two workers thus runs as two passes of half its integration points each.
pub(crate) fn balance_passes(mut plans: Vec<Vec<PassPart>>, workers: usize) -> Vec<Vec<PassPart>> {
    let tail = if workers > 1 {
        plans.len() % workers
    } else {
        0
    };
    if tail == 0 {
        return plans;
    }
    let mut last = plans.split_off(plans.len() - tail);
    while last.len() < workers {
        let largest = (0..last.len())
            .filter(|&i| pass_rows(&last[i]) >= 2)
            .max_by_key(|&i| pass_rows(&last[i]));
        let Some(index) = largest else { break };
        let (first, second) = halves(last.remove(index));
        last.insert(index, second);
        last.insert(index, first);
    }
    plans.extend(last);
    plans
}

/// A pass of two or more rows cut in two: its parts in two halves, or else its one part's
/// integration rows (or, with a single row per layer, its layers) in two halves.
fn halves(mut pass: Vec<PassPart>) -> (Vec<PassPart>, Vec<PassPart>) {
    if pass.len() >= 2 {
        let second = pass.split_off(pass.len() / 2);
        return (pass, second);
    }
    let part = pass.remove(0);
    if part.rows.len() >= 2 {
        let middle = part.rows.start + part.rows.len() / 2;
        let first = PassPart {
            rows: part.rows.start..middle,
            ..part.clone()
        };
        let second = PassPart {
            rows: middle..part.rows.end,
            ..part
        };
        (vec![first], vec![second])
    } else {
        let middle = part.layers.start + part.layers.len() / 2;
        let first = PassPart {
            layers: part.layers.start..middle,
            ..part.clone()
        };
        let second = PassPart {
            layers: middle..part.layers.end,
            ..part
        };
        (vec![first], vec![second])
    }
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

/// Runs `job` for every index in `0..count` on `workers` threads at the same time, each with
/// its share of the calling thread's libtorch threads (at least one), and returns the results
/// in index order. After a failure no new job starts, and the first failure (in index order)
/// is returned.
pub(crate) fn run_concurrently<T: Send>(
    count: usize,
    workers: usize,
    job: impl Fn(usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let workers = workers.clamp(1, count.max(1));
    let threads = tch::get_num_threads().max(1) as usize;
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let slots: Vec<Mutex<Option<Result<T>>>> = (0..count).map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for worker in 0..workers {
            let share = (threads / workers + usize::from(worker < threads % workers)).max(1);
            let (next, failed, slots, job) = (&next, &failed, &slots, &job);
            scope.spawn(move || {
                // libtorch sets a thread's count lazily, from the last count set anywhere; do
                // that first so that it cannot later replace this worker's share.
                let _ = tch::get_num_threads();
                tch::set_num_threads(share as i32);
                while !failed.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
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
                    if let Ok(mut slot) = slots[index].lock() {
                        *slot = Some(result);
                    }
                }
            });
        }
    });
    // Setting a count also records it as the default for threads libtorch starts later: put
    // back the caller's.
    tch::set_num_threads(threads as i32);
    let mut results = Vec::with_capacity(count);
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
        /// Balancing keeps every row in exactly one pass, never grows a pass, and leaves a
        /// number of passes that is a multiple of the workers whenever the last round's passes
        /// have enough rows to be halved.
        #[test]
        fn balanced_passes_cover_every_row_once(prompts in 1usize..6, layers in 1usize..40, rows in 1usize..25, rows_per_pass in 1usize..2000, workers in 1usize..5) {
            let plans = plan_passes(prompts, layers, rows, rows_per_pass);
            let largest = plans.iter().map(|p| pass_rows(p)).max().unwrap_or(0);
            let before = plans.len();
            let balanced = balance_passes(plans, workers);
            let mut seen = vec![0u8; prompts * layers * rows];
            for parts in &balanced {
                proptest::prop_assert!(pass_rows(parts) <= largest);
                proptest::prop_assert!(pass_rows(parts) >= 1);
                for part in parts {
                    for layer in part.layers.clone() {
                        for row in part.rows.clone() {
                            seen[(part.prompt * layers + layer) * rows + row] += 1;
                        }
                    }
                }
            }
            proptest::prop_assert!(seen.iter().all(|&count| count == 1));
            let full_rounds = before - before % workers;
            let last_round = &balanced[full_rounds..];
            proptest::prop_assert!(
                last_round.len().is_multiple_of(workers) || last_round.iter().all(|p| pass_rows(p) == 1),
                "{} passes in the last round", last_round.len()
            );
        }
    }

    /// One prompt (30 layers x 20 points in one pass) on two workers: two passes of ten
    /// integration points each, over all layers.
    #[test]
    fn one_prompt_on_two_workers_splits_its_points() {
        let plans = balance_passes(plan_passes(1, 30, 20, 600), 2);
        assert_eq!(
            plans,
            vec![
                vec![PassPart {
                    prompt: 0,
                    layers: 0..30,
                    rows: 0..10
                }],
                vec![PassPart {
                    prompt: 0,
                    layers: 0..30,
                    rows: 10..20
                }],
            ]
        );
        // Five prompts: four whole passes, the fifth halved.
        let plans = balance_passes(plan_passes(5, 30, 20, 600), 2);
        assert_eq!(plans.len(), 6);
        assert_eq!(
            plans.iter().map(|p| pass_rows(p)).collect::<Vec<_>>(),
            [600, 600, 600, 600, 300, 300]
        );
    }

    /// Results come back in index order whatever the workers, and a failing job's error is
    /// returned.
    #[test]
    fn concurrent_jobs_return_in_order_and_fail_cleanly() {
        for workers in 1..4 {
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

    /// The caller's libtorch thread count is the same after the workers ran.
    #[test]
    fn thread_count_is_restored() {
        let before = tch::get_num_threads();
        let _ = run_concurrently(4, 2, Ok).unwrap();
        assert_eq!(tch::get_num_threads(), before);
    }
}
