//! The paper's knowledge-neuron discovery as library calls: which facts to run
//! ([`select_facts`], [`answer_ranks`]) and the per-fact attribute -> coarse -> refine step
//! ([`discover_fact`]) that `kn discover`, the examples and other crates run.

use crate::error::RunError;
use kn_attribution::{
    attribute_with, integrated_gradients_batch, Attribution, AttributionConfig, Method,
};
use kn_data::{Dataset, Fact, PromptStyle};
use kn_model::{AnswerPolicy, KnowledgeModel, ModelKind};
use kn_schema::{FactRecord, PromptRecord, ScoredNeuron};
use kn_select::{coarse_select, CoarseRule, FactCounts, Neuron, RefineConfig, ScoreMatrix};
use std::collections::BTreeMap;
use std::time::Instant;

/// How PARAREL's templates are filled for `model`: with `[MASK]` for a masked model, cut
/// before the object for a causal one.
pub fn prompt_style(model: &dyn KnowledgeModel) -> PromptStyle {
    match model.info().kind {
        ModelKind::Masked => PromptStyle::Masked {
            mask_token: "[MASK]".into(),
        },
        ModelKind::Causal => PromptStyle::Causal,
    }
}

/// Parses `i/n`.
pub fn parse_shard(spec: &str) -> Result<(usize, usize), RunError> {
    let bad = || {
        RunError::BadInput(format!(
            "--shard {spec:?}: use i/n with 0 <= i < n, e.g. 0/4"
        ))
    };
    let (i, n) = spec.split_once('/').ok_or_else(bad)?;
    let (i, n) = (
        i.trim().parse::<usize>().map_err(|_| bad())?,
        n.trim().parse::<usize>().map_err(|_| bad())?,
    );
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// Which facts a discovery runs on, and with which prompts (`kn discover`'s selection
/// options; the defaults are the paper's: every fact, at least 3 prompts, a single-token
/// answer, answered top-1 on at least one prompt).
#[derive(Debug, Clone, PartialEq)]
pub struct FactSelection {
    /// Seed of the per-relation order of facts.
    pub seed: u64,
    /// Facts kept per relation (0: all).
    pub facts_per_relation: usize,
    /// Prompts kept per fact (0: all).
    pub max_prompts: usize,
    /// Facts with fewer prompts are skipped.
    pub min_prompts: usize,
    /// Only facts whose answer is one token.
    pub single_token: bool,
    /// Only facts the model answers within this rank (0: no check)...
    pub correct_rank: usize,
    /// ... on at least this many prompts.
    pub correct_prompts: usize,
    /// Shard `i` of `n` of the selected facts (every `n`-th from `i`).
    pub shard: Option<(usize, usize)>,
}

impl Default for FactSelection {
    fn default() -> Self {
        Self {
            seed: 0,
            facts_per_relation: 0,
            max_prompts: 0,
            min_prompts: 3,
            single_token: true,
            correct_rank: 1,
            correct_prompts: 1,
            shard: None,
        }
    }
}

/// `facts` in the order a run seeded with `seed` considers them.
fn seeded_facts(facts: &[Fact], seed: u64) -> Vec<&Fact> {
    let mut order: Vec<&Fact> = facts.iter().collect();
    order.sort_by_key(|f| kn_data::seed::derive_seed(seed, &f.id.to_string()));
    order
}

/// Attribution patching's counterfactual prompts for discovery (`--method atp`): each of
/// `prompts` (texts of `fact` in `style`) made from the same template with the subject of the
/// fact's counterpart, the next fact of its relation in the order a run seeded with `seed`
/// considers them (cyclically) whose subject and object both differ from the fact's. The
/// counterpart depends on the dataset and the seed only, so a shard gets the counterfactuals
/// of the whole run.
pub fn counterfactual_prompts(
    dataset: &Dataset,
    fact: &Fact,
    prompts: &[String],
    style: &PromptStyle,
    seed: u64,
) -> Result<Vec<String>, RunError> {
    let facts = dataset
        .facts_of(fact.relation())
        .map_err(|e| RunError::BadInput(e.to_string()))?;
    let order = seeded_facts(facts, seed);
    let at = order.iter().position(|f| f.id == fact.id).unwrap_or(0);
    let counterpart = order
        .iter()
        .cycle()
        .skip(at + 1)
        .take(order.len())
        .find(|f| f.subject != fact.subject && f.object != fact.object)
        .ok_or_else(|| {
            RunError::BadInput(format!(
                "--method atp: fact {} has no counterpart in {} (a fact with another subject and \
                 another object) for its counterfactual prompts",
                fact.id,
                fact.relation()
            ))
        })?;
    let own = dataset.prompts(fact, style);
    let theirs = dataset.prompts(counterpart, style);
    prompts
        .iter()
        .map(|text| {
            own.iter()
                .find(|p| p.text == *text)
                .and_then(|p| theirs.iter().find(|q| q.template == p.template))
                .map(|q| q.text.clone())
                .ok_or_else(|| {
                    RunError::BadInput(format!(
                        "--method atp: no counterfactual of {text:?} (fact {}) from the same \
                         template with {}'s subject {:?}",
                        fact.id, counterpart.id, counterpart.subject
                    ))
                })
        })
        .collect()
}

/// The facts to run with their prompt texts: per relation, the eligible facts in a seeded
/// order, keeping the first `facts_per_relation` the model answers correctly; then the shard.
/// `progress` hears one line per relation.
pub fn select_facts<'a>(
    model: &dyn KnowledgeModel,
    dataset: &'a Dataset,
    relations: &[String],
    style: &PromptStyle,
    args: &FactSelection,
    progress: &dyn Fn(String),
) -> Result<Vec<(&'a Fact, Vec<String>)>, RunError> {
    let shard = args.shard;
    let mut chosen = Vec::new();
    let mut considered = Vec::new();
    for relation in relations {
        let facts = dataset
            .facts_of(relation)
            .map_err(|e| RunError::BadInput(e.to_string()))?;
        let order = seeded_facts(facts, args.seed);
        let mut kept = 0;
        let mut checked = 0;
        for fact in order {
            if args.facts_per_relation > 0 && kept >= args.facts_per_relation {
                break;
            }
            let mut prompts: Vec<String> = dataset
                .prompts(fact, style)
                .into_iter()
                .map(|p| p.text)
                .collect();
            if args.max_prompts > 0 {
                prompts.truncate(args.max_prompts);
            }
            if prompts.len() < args.min_prompts.max(1) {
                continue;
            }
            let policy = if args.single_token {
                AnswerPolicy::SingleToken
            } else {
                AnswerPolicy::FirstToken
            };
            let encoded: Result<Vec<_>, _> = prompts
                .iter()
                .map(|p| model.encode(p, Some(&fact.object), policy))
                .collect();
            let Ok(encoded) = encoded else { continue };
            checked += 1;
            if args.correct_rank > 0 {
                let ranks = answer_ranks(model, &encoded)?;
                let correct = ranks
                    .iter()
                    .filter(|&&(_, rank)| rank <= args.correct_rank)
                    .count();
                if correct < args.correct_prompts {
                    continue;
                }
            }
            kept += 1;
            chosen.push((fact, prompts));
        }
        progress(format!(
            "{relation}: {kept} facts kept of {checked} checked"
        ));
        considered.push(format!(
            "{relation}: {} facts, {checked} encodable with enough prompts",
            facts.len()
        ));
    }
    if chosen.is_empty() {
        return Err(RunError::BadInput(format!(
            "no fact was selected ({}); the criteria: at least --min-prompts {} prompts{}{}",
            considered.join("; "),
            args.min_prompts.max(1),
            if args.single_token {
                ", a single-token answer"
            } else {
                ""
            },
            if args.correct_rank > 0 {
                format!(
                    ", answered within rank {} on at least {} prompt(s) (--correct-rank, --correct-prompts)",
                    args.correct_rank, args.correct_prompts
                )
            } else {
                String::new()
            }
        )));
    }
    if let Some((index, count)) = shard {
        chosen = chosen
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % count == index)
            .map(|(_, c)| c)
            .collect();
    }
    Ok(chosen)
}

/// Probability and rank (1 = top) of each prompt's first answer token, in batches.
pub fn answer_ranks(
    model: &dyn KnowledgeModel,
    prompts: &[kn_model::EncodedPrompt],
) -> Result<Vec<(f64, usize)>, RunError> {
    let mut result = Vec::with_capacity(prompts.len());
    for chunk in prompts.chunks(16) {
        let output = model.forward(chunk, &[], false)?;
        let values = kn_model::guard(|| {
            Ok(chunk
                .iter()
                .enumerate()
                .map(|(row, prompt)| {
                    let answer = prompt.targets.first().map(|t| t.1).unwrap_or(0);
                    kn_model::probability_and_rank(&output.logits.get(row as i64), answer)
                })
                .collect::<Vec<_>>())
        })?;
        result.extend(values);
    }
    Ok(result)
}

/// The paper's discovery for one fact: every prompt attributed (integrated gradients, one
/// batch, or another of `steps.method`), the coarse selection of each prompt (`steps.rule`),
/// the neurons shared by enough prompts (`steps.refine`) with their mean score. Returns the fact's record (the line of `neurons.jsonl`)
/// and the mean attribution matrix over its prompts (the run's layers x FFN neurons).
pub fn discover_fact(
    model: &dyn KnowledgeModel,
    fact: &Fact,
    prompts: &[String],
    steps: &FactSteps,
) -> Result<(FactRecord, ndarray::Array2<f32>), RunError> {
    let (rule, refine) = (steps.rule, steps.refine);
    let started = Instant::now();
    let width = model.info().ffn_width;
    let mut records = Vec::with_capacity(prompts.len());
    let mut matrices = Vec::with_capacity(prompts.len());
    let mut score_sum: Option<ndarray::Array2<f32>> = None;
    let encoded = prompts
        .iter()
        .map(|text| model.encode(text, Some(&fact.object), AnswerPolicy::FirstToken))
        .collect::<Result<Vec<_>, _>>()?;
    // atp only: the fact's counterfactual prompts, one per prompt.
    let counterfactuals = steps
        .counterfactuals
        .filter(|_| steps.method == Method::Atp)
        .and_then(|c| c.get(&fact.id.to_string()));
    let results: Vec<Attribution> = match steps.method {
        // All prompts of the fact in one batch: their passes keep every worker busy.
        Method::Ig => integrated_gradients_batch(model, &encoded, steps.attribution)?,
        Method::Atp => {
            let texts = counterfactuals
                .filter(|texts| texts.len() == prompts.len())
                .ok_or_else(|| {
                    RunError::BadInput(format!(
                        "--method atp: fact {} has no counterfactual prompts (counterfactual_prompts)",
                        fact.id
                    ))
                })?;
            // The knowledge neurons are those whose clean activation supports the answer
            // against the other subject's: the coarse step ranks the estimated drop of the
            // answer's log-probability when the counterfactual activation is patched in, the
            // negated atp score.
            encoded
                .iter()
                .zip(texts)
                .map(|(prompt, text)| {
                    let other = model.encode(text, Some(&fact.object), AnswerPolicy::FirstToken)?;
                    let mut result = attribute_with(
                        model,
                        prompt,
                        Method::Atp,
                        steps.attribution,
                        Some(&other),
                    )?;
                    result.scores.mapv_inplace(|score| -score);
                    Ok(result)
                })
                .collect::<Result<_, RunError>>()?
        }
        method => encoded
            .iter()
            .map(|prompt| attribute_with(model, prompt, method, steps.attribution, None))
            .collect::<Result<_, _>>()?,
    };
    for (i, (text, result)) in prompts.iter().zip(results).enumerate() {
        let matrix = ScoreMatrix::new(
            result.layers.clone(),
            width,
            result.scores.iter().copied().collect(),
        )
        .map_err(|e| RunError::Internal(e.to_string()))?;
        let coarse = coarse_select(&matrix, rule).map_err(|e| RunError::Internal(e.to_string()))?;
        match score_sum.as_mut() {
            Some(sum) => *sum += &result.scores,
            None => score_sum = Some(result.scores),
        }
        let counterfactual = counterfactuals.and_then(|texts| texts.get(i).cloned());
        records.push(PromptRecord {
            text: text.clone(),
            prob: result.clean_prob,
            rank: result.clean_rank,
            coarse,
            counterfactual,
        });
        matrices.push(matrix);
    }
    let coarse: Vec<Vec<Neuron>> = records.iter().map(|r| r.coarse.clone()).collect();
    let counts = FactCounts::from_coarse(fact.id.to_string(), fact.relation(), &coarse);
    let refined = counts.refine(refine).unwrap_or_default();
    let mut neurons: Vec<ScoredNeuron> = refined
        .iter()
        .map(|&n| {
            let total: f32 = matrices.iter().filter_map(|m| m.get(n)).sum();
            ScoredNeuron {
                layer: n.layer,
                neuron: n.index,
                score: total / matrices.len().max(1) as f32,
            }
        })
        .collect();
    neurons.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mean_scores = score_sum
        .map(|sum| sum / prompts.len() as f32)
        .unwrap_or_default();
    let record = FactRecord {
        fact: fact.id.to_string(),
        relation: fact.relation().to_string(),
        subject: fact.subject.clone(),
        object: fact.object.clone(),
        prompts: records,
        neurons,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((record, mean_scores))
}

/// The settings of [`discover_fact`] for every fact of a run, and how many facts of each
/// relation keep their mean score matrix (`DIR/scores/`, for the report's heatmap).
pub struct FactSteps<'a> {
    /// The attribution method of the coarse step (the paper's: integrated gradients).
    pub method: Method,
    /// Integrated gradients' settings.
    pub attribution: &'a AttributionConfig,
    /// The coarse selection per prompt.
    pub rule: &'a CoarseRule,
    /// The refinement across a fact's prompts.
    pub refine: &'a RefineConfig,
    /// Facts per relation whose mean scores are saved.
    pub save_scores: usize,
    /// `Method::Atp` only: each fact's counterfactual prompts (by fact id, in the order of its
    /// prompts; [`counterfactual_prompts`]).
    pub counterfactuals: Option<&'a BTreeMap<String, Vec<String>>>,
}

/// Runs [`discover_fact`] on each of `facts` in order and appends its line to `out` (saving
/// its mean scores while its relation has fewer than `steps.save_scores`), reporting each fact
/// with the time per fact and the time left. `stop` is asked before each fact: when it says
/// so, the run ends with [`RunError::Interrupted`] and `out` holds every finished fact (the
/// same call resumes).
pub fn discover_facts(
    model: &dyn KnowledgeModel,
    out: &crate::OutputDir,
    facts: &[&(&Fact, Vec<String>)],
    steps: &FactSteps,
    stop: &dyn Fn() -> bool,
    report: &dyn Fn(crate::Message),
) -> Result<(), RunError> {
    let layers = steps
        .attribution
        .layers
        .clone()
        .unwrap_or_else(|| (0..model.info().num_layers).collect());
    let started = Instant::now();
    for (k, (fact, prompts)) in facts.iter().enumerate() {
        if stop() {
            return Err(RunError::Interrupted(format!(
                "interrupted after {k} of {} facts; {} holds every finished fact and the same command resumes",
                facts.len(),
                out.dir().display()
            )));
        }
        let (record, mean_scores) = discover_fact(model, fact, prompts, steps)?;
        if out.saved_scores(&record.relation)? < steps.save_scores {
            out.save_scores(&record.fact, &layers, &mean_scores)?;
        }
        out.append(&record)?;
        let per_fact = started.elapsed().as_secs_f64() / (k + 1) as f64;
        let eta = per_fact * (facts.len() - k - 1) as f64;
        report(crate::Message::Progress(format!(
            "[{}/{}] {} {} -> {}: {} prompts, {} neurons, {:.1} s/fact, ETA {}",
            k + 1,
            facts.len(),
            record.fact,
            record.subject,
            record.object,
            record.prompts.len(),
            record.neurons.len(),
            per_fact,
            format_duration(eta)
        )));
    }
    Ok(())
}

/// `1h05m` or `3m07s`.
fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}
