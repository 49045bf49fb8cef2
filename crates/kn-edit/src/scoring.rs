//! Scoring answers in batched forward passes: probability, log-probability and rank of a
//! prompt's answer token (and of any other tokens) at the answer position, and the accuracy
//! and perplexity of a set of prompts.
//!
//! The answer token of a prompt is its first target, `targets[0]`: the first token of the
//! answer under [`kn_model::AnswerPolicy::FirstToken`] and `SingleToken`, and the first of the
//! teacher-forced tokens under `WholeAnswer` (always at the answer position). Probabilities
//! are the softmax of the float32 logits computed in float64. A token's rank is 1 plus the
//! number of tokens with a strictly higher logit, so "top-1" means no token scores higher.

use crate::error::{check_batch_size, torch, EditError, Result};
use kn_model::tch::{Device, Kind, Tensor};
use kn_model::{ActivationEdit, EncodedPrompt, KnowledgeModel, ModelError};
pub use kn_schema::report::edit::AnswerQuality;
use serde::{Deserialize, Serialize};

/// Probability and rank of one token at one prompt's answer position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct TokenScore {
    /// The token id.
    pub token: i64,
    /// Its probability.
    pub prob: f64,
    /// Its log-probability (natural log).
    pub log_prob: f64,
    /// 1 + the number of tokens with a strictly higher logit.
    pub rank: usize,
}

/// Scores of one prompt in one pass.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PromptScores {
    /// The prompt's answer token.
    pub answer: TokenScore,
    /// The extra tokens asked for, in order.
    pub extra: Vec<TokenScore>,
    /// The most probable token (lowest id among ties).
    pub top: i64,
}

/// The answer token of a prompt: its first target ([`EditError::MissingAnswer`] if none).
pub(crate) fn answer_token(prompt: &EncodedPrompt) -> Result<i64> {
    match prompt.targets.first() {
        Some(&(position, token)) if position == prompt.answer_position => Ok(token),
        Some(&(position, _)) => Err(EditError::Model(ModelError::InvalidArgument(format!(
            "the first target of {:?} is at position {position}, not at the answer position {}",
            prompt.text, prompt.answer_position
        )))),
        None => Err(EditError::MissingAnswer {
            prompt: prompt.text.clone(),
        }),
    }
}

/// Checks that every prompt has an answer and that there is at least one prompt.
pub(crate) fn check_prompts(prompts: &[EncodedPrompt], context: &str) -> Result<()> {
    if prompts.is_empty() {
        return Err(EditError::NoPrompts {
            context: context.to_string(),
        });
    }
    for prompt in prompts {
        answer_token(prompt)?;
    }
    Ok(())
}

/// Checks a token id against the vocabulary.
pub(crate) fn check_token(model: &dyn KnowledgeModel, token: i64) -> Result<()> {
    let vocab = model.info().vocab_size;
    if token < 0 || token as u64 >= vocab as u64 {
        return Err(EditError::Model(ModelError::TokenOutOfRange {
            id: token,
            vocab,
        }));
    }
    Ok(())
}

/// Scores every prompt in passes of `batch_size` with `edits` applied.
pub(crate) fn score_all(
    model: &dyn KnowledgeModel,
    prompts: &[EncodedPrompt],
    edits: &[ActivationEdit],
    extra: &[i64],
    batch_size: usize,
) -> Result<Vec<PromptScores>> {
    check_batch_size(batch_size)?;
    for &token in extra {
        check_token(model, token)?;
    }
    let mut scores = Vec::with_capacity(prompts.len());
    for batch in prompts.chunks(batch_size) {
        scores.extend(score_batch(model, batch, edits, extra)?);
    }
    Ok(scores)
}

/// Scores one batch in one forward pass.
pub(crate) fn score_batch(
    model: &dyn KnowledgeModel,
    batch: &[EncodedPrompt],
    edits: &[ActivationEdit],
    extra: &[i64],
) -> Result<Vec<PromptScores>> {
    let answers = batch
        .iter()
        .map(answer_token)
        .collect::<Result<Vec<i64>>>()?;
    let logits = model.forward(batch, edits, false)?.logits;
    let width = 1 + extra.len();
    let mut ids = Vec::with_capacity(batch.len() * width);
    for &answer in &answers {
        ids.push(answer);
        ids.extend_from_slice(extra);
    }
    let rows = batch.len() as i64;
    let (log_probs, ranks, top) = torch(|| -> std::result::Result<_, kn_model::tch::TchError> {
        let logits = logits.to_device(Device::Cpu).to_kind(Kind::Double);
        let ids = Tensor::from_slice(&ids).reshape([rows, width as i64]);
        let chosen = logits.gather(1, &ids, false);
        let ranks = logits
            .unsqueeze(1)
            .gt_tensor(&chosen.unsqueeze(2))
            .sum_dim_intlist([2i64].as_slice(), false, Kind::Int64)
            + 1;
        let log_probs = logits.log_softmax(-1, Kind::Double).gather(1, &ids, false);
        let top = logits.argmax(-1, false);
        Ok((
            Vec::<f64>::try_from(&log_probs.flatten(0, -1))?,
            Vec::<i64>::try_from(&ranks.flatten(0, -1))?,
            Vec::<i64>::try_from(&top.flatten(0, -1))?,
        ))
    })?
    .map_err(ModelError::from)?;
    let mut out = Vec::with_capacity(batch.len());
    for (row, &top) in top.iter().enumerate() {
        let mut tokens = Vec::with_capacity(width);
        for column in 0..width {
            let index = row * width + column;
            let (Some(&token), Some(&log_prob), Some(&rank)) =
                (ids.get(index), log_probs.get(index), ranks.get(index))
            else {
                return Err(EditError::Model(ModelError::Torch(
                    "scores of a batch have the wrong size".into(),
                )));
            };
            tokens.push(TokenScore {
                token,
                prob: log_prob.exp(),
                log_prob,
                rank: rank.max(1) as usize,
            });
        }
        let mut tokens = tokens.into_iter();
        let Some(answer) = tokens.next() else {
            return Err(EditError::Model(ModelError::Torch(
                "empty score row".into(),
            )));
        };
        out.push(PromptScores {
            answer,
            extra: tokens.collect(),
            top,
        });
    }
    Ok(out)
}

/// The accuracy, perplexity and mean probability of `scores` (`None` for none).
pub(crate) fn quality_of(scores: &[TokenScore]) -> Option<AnswerQuality> {
    if scores.is_empty() {
        return None;
    }
    let n = scores.len() as f64;
    Some(AnswerQuality {
        prompts: scores.len(),
        accuracy: scores.iter().filter(|s| s.rank == 1).count() as f64 / n,
        perplexity: (-scores.iter().map(|s| s.log_prob).sum::<f64>() / n).exp(),
        mean_prob: scores.iter().map(|s| s.prob).sum::<f64>() / n,
    })
}

/// Accuracy (answer top-1) and perplexity (`exp` of the mean negative log-probability of the
/// first answer token) of `prompts`, in passes of `batch_size`. Every prompt needs an answer.
pub fn answer_quality(
    model: &dyn KnowledgeModel,
    prompts: &[EncodedPrompt],
    batch_size: usize,
) -> Result<AnswerQuality> {
    quality_and_tops(model, prompts, batch_size).map(|(quality, _)| quality)
}

/// [`answer_quality`] and, from the same pass, each prompt's top-1 token.
pub(crate) fn quality_and_tops(
    model: &dyn KnowledgeModel,
    prompts: &[EncodedPrompt],
    batch_size: usize,
) -> Result<(AnswerQuality, Vec<i64>)> {
    check_prompts(prompts, "measuring accuracy and perplexity")?;
    let scores = score_all(model, prompts, &[], &[], batch_size)?;
    let tops = scores.iter().map(|s| s.top).collect();
    let answers: Vec<TokenScore> = scores.into_iter().map(|s| s.answer).collect();
    let quality = quality_of(&answers).ok_or_else(|| EditError::NoPrompts {
        context: "measuring perplexity".into(),
    })?;
    Ok((quality, tops))
}

/// [`quality_and_tops`] of `prompts`, `None` and no tokens without prompts.
pub(crate) fn quality_if_any(
    model: &dyn KnowledgeModel,
    prompts: &[EncodedPrompt],
    batch_size: usize,
) -> Result<(Option<AnswerQuality>, Vec<i64>)> {
    if prompts.is_empty() {
        return Ok((None, Vec::new()));
    }
    let (quality, tops) = quality_and_tops(model, prompts, batch_size)?;
    Ok((Some(quality), tops))
}

/// Share of positions where `before` and `after` hold the same token (`None` for none).
pub(crate) fn agreement(before: &[i64], after: &[i64]) -> Option<f64> {
    (!before.is_empty() && before.len() == after.len()).then(|| {
        before.iter().zip(after).filter(|(a, b)| a == b).count() as f64 / before.len() as f64
    })
}

/// Among `prompts` whose answer was the top-1 token `before`, the share whose answer is not
/// top-1 `after`, and how many were answered before (`None` and 0 when none was).
pub(crate) fn forgetting(
    prompts: &[EncodedPrompt],
    before: &[i64],
    after: &[i64],
) -> Result<(Option<f64>, usize)> {
    let mut answered = 0;
    let mut forgotten = 0;
    for ((prompt, before), after) in prompts.iter().zip(before).zip(after) {
        let answer = answer_token(prompt)?;
        if *before == answer {
            answered += 1;
            forgotten += usize::from(*after != answer);
        }
    }
    Ok((
        (answered > 0).then(|| forgotten as f64 / answered as f64),
        answered,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(prob: f64, rank: usize) -> TokenScore {
        TokenScore {
            token: 0,
            prob,
            log_prob: prob.ln(),
            rank,
        }
    }

    #[test]
    fn quality_of_scores() {
        let q = quality_of(&[score(0.5, 1), score(0.125, 3)]).unwrap();
        assert_eq!(q.prompts, 2);
        assert_eq!(q.accuracy, 0.5);
        // exp(-(ln 0.5 + ln 0.125)/2) = exp(ln 16 / 2) = 4
        assert!((q.perplexity - 4.0).abs() < 1e-12);
        assert!((q.mean_prob - 0.3125).abs() < 1e-12);
        assert!(quality_of(&[]).is_none());
    }

    #[test]
    fn prompts_without_answers_are_refused() {
        let prompt = EncodedPrompt {
            text: "x".into(),
            token_ids: vec![1, 2],
            answer_position: 1,
            answer_ids: vec![],
            targets: vec![],
        };
        assert!(matches!(
            answer_token(&prompt),
            Err(EditError::MissingAnswer { .. })
        ));
        assert!(matches!(
            check_prompts(&[], "t"),
            Err(EditError::NoPrompts { .. })
        ));
        let prompt = EncodedPrompt {
            targets: vec![(1, 7)],
            ..prompt
        };
        assert_eq!(answer_token(&prompt).unwrap(), 7);
        let prompt = EncodedPrompt {
            answer_position: 0,
            ..prompt
        };
        assert!(answer_token(&prompt).is_err());
    }
}
