//! Probe sentences for the activation experiment (the paper's Figure 5 / Table 4), built from
//! BINGREL as plain text.
//!
//! For a fact (head = subject, tail = object) the paper compares knowledge-neuron activations
//! at the hidden position of three kinds of sentence:
//! - **T1** ([`tail_probes`]): head+tail sentences with the tail hidden;
//! - **T2** ([`head_only_probes`]): head-only sentences with a random non-head word hidden;
//! - **T3** ([`random_probes`]): sentences of other facts with a random word hidden.
//!
//! "Hidden" depends on the [`PromptStyle`]: masked LMs get the span replaced by the mask token,
//! causal LMs get the sentence cut just before it (trailing whitespace stripped), so that the
//! last position predicts the hidden word.
//!
//! Rules, made precise:
//! - The tail is located by [`find_tail`]: its first occurrence that is word-bounded (when the
//!   tail starts/ends with a letter or digit, the neighbouring character must not be one) and
//!   does not overlap an occurrence of the head (any case; as in the authors' code, so that
//!   "Fiat" is not found inside "Fiat Multipla"); case-sensitive first, then ignoring case.
//! - Sentences where the tail (T1) or an eligible word (T2, T3) is not found are skipped and
//!   counted in [`ProbeCounts::target_missing`]; causal cuts that leave no text are skipped and
//!   counted in [`ProbeCounts::no_context`].
//! - A "word" (T2, T3) is a whitespace-separated token among the first 50 of the sentence (as in
//!   the authors' code), with leading and trailing non-alphanumeric characters excluded from
//!   the hidden span; it must contain a letter or digit and, for T2, must not overlap the head.
//!   One is drawn uniformly from the eligible words with the caller's seeded generator.

use serde::{Deserialize, Serialize};

use crate::bingrel::{FactBags, RelationBags};
use crate::fact::{Fact, FactId, PromptStyle};
use crate::seed::{below, rng_for, ChaCha8Rng};

/// How many leading words of a sentence are eligible for hiding (as in the authors' code).
pub const MAX_WORD_POSITION: usize = 50;

/// Where the tail was found in a sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailMatch {
    /// Byte offset of the first character of the occurrence.
    pub start: usize,
    /// Byte offset just past the occurrence.
    pub end: usize,
    /// Whether the occurrence matched with the same case (false: found ignoring case).
    pub exact_case: bool,
}

/// Finds the tail in a sentence (see the module docs for the rules); `head` occurrences are
/// protected when given.
pub fn find_tail(sentence: &str, tail: &str, head: Option<&str>) -> Option<TailMatch> {
    if tail.is_empty() {
        return None;
    }
    let protected = head.map(|h| occurrences(sentence, h)).unwrap_or_default();
    for exact_case in [true, false] {
        for (start, _) in sentence.char_indices() {
            let Some(end) = match_at(sentence, start, tail, !exact_case) else {
                continue;
            };
            if bounded(sentence, start, end, tail) && !overlaps(&protected, start, end) {
                return Some(TailMatch {
                    start,
                    end,
                    exact_case,
                });
            }
        }
    }
    None
}

/// Hides `sentence[start..end]` in `style`: masked -> the span replaced by the mask token;
/// causal -> the text before the span, trailing whitespace stripped. `None` if the span is not
/// a valid char range or the causal cut leaves no text.
pub fn hide(sentence: &str, start: usize, end: usize, style: &PromptStyle) -> Option<String> {
    let before = sentence.get(..start)?;
    let after = sentence.get(end..)?;
    if start > end {
        return None;
    }
    match style {
        PromptStyle::Masked { mask_token } => Some(format!("{before}{mask_token}{after}")),
        PromptStyle::Causal => {
            let text = before.trim_end();
            (!text.is_empty()).then(|| text.to_string())
        }
    }
}

/// One probe sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// The text for the model (masked or cut).
    pub text: String,
    /// The hidden span, as it appeared in the sentence.
    pub hidden: String,
    /// The position of the source sentence in the list it came from.
    pub sentence: usize,
}

/// What happened to the input sentences.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeCounts {
    /// Sentences looked at.
    pub sentences: usize,
    /// Probes produced.
    pub kept: usize,
    /// Sentences skipped because the tail (T1) or an eligible word (T2, T3) was not found.
    pub target_missing: usize,
    /// Sentences skipped because the causal cut left no text.
    pub no_context: usize,
}

impl ProbeCounts {
    /// Adds another set of counts to this one.
    pub fn add(&mut self, other: &ProbeCounts) {
        self.sentences += other.sentences;
        self.kept += other.kept;
        self.target_missing += other.target_missing;
        self.no_context += other.no_context;
    }
}

/// Probes and the counts of what was skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeSet {
    /// The probes, in input order.
    pub probes: Vec<Probe>,
    /// Counts of kept and skipped sentences.
    pub counts: ProbeCounts,
}

impl ProbeSet {
    fn push(
        &mut self,
        sentence: usize,
        text: &str,
        span: Option<(usize, usize)>,
        style: &PromptStyle,
    ) {
        self.counts.sentences += 1;
        let Some((start, end)) = span else {
            self.counts.target_missing += 1;
            return;
        };
        match (hide(text, start, end, style), text.get(start..end)) {
            (Some(hidden_text), Some(hidden)) => {
                self.counts.kept += 1;
                self.probes.push(Probe {
                    text: hidden_text,
                    hidden: hidden.to_string(),
                    sentence,
                });
            }
            _ => self.counts.no_context += 1,
        }
    }
}

/// T1: head+tail sentences with the tail hidden.
pub fn tail_probes<S: AsRef<str>>(
    sentences: &[S],
    head: &str,
    tail: &str,
    style: &PromptStyle,
) -> ProbeSet {
    let mut set = ProbeSet::default();
    for (i, s) in sentences.iter().enumerate() {
        let s = s.as_ref();
        let found = find_tail(s, tail, Some(head));
        // For causal LMs a tail at the very start leaves no context; try a later occurrence.
        let found = match (found, style) {
            (Some(m), PromptStyle::Causal)
                if s.get(..m.start).is_some_and(|b| b.trim().is_empty()) =>
            {
                later_tail(s, tail, head, m).or(Some(m))
            }
            (m, _) => m,
        };
        set.push(i, s, found.map(|m| (m.start, m.end)), style);
    }
    set
}

/// The next acceptable tail occurrence after `first` with the same case rule, if any.
fn later_tail(sentence: &str, tail: &str, head: &str, first: TailMatch) -> Option<TailMatch> {
    let protected = occurrences(sentence, head);
    sentence
        .char_indices()
        .map(|(i, _)| i)
        .filter(|&i| i >= first.end)
        .find_map(|start| {
            let end = match_at(sentence, start, tail, !first.exact_case)?;
            (bounded(sentence, start, end, tail) && !overlaps(&protected, start, end)).then_some(
                TailMatch {
                    start,
                    end,
                    exact_case: first.exact_case,
                },
            )
        })
}

/// T2: head-only sentences with a random non-head word hidden.
pub fn head_only_probes<S: AsRef<str>>(
    sentences: &[S],
    head: &str,
    style: &PromptStyle,
    rng: &mut ChaCha8Rng,
) -> ProbeSet {
    let mut set = ProbeSet::default();
    for (i, s) in sentences.iter().enumerate() {
        let s = s.as_ref();
        let span = pick_word(s, &occurrences(s, head), style, rng);
        set.push(i, s, span, style);
    }
    set
}

/// T3: the given sentences with a random word hidden.
pub fn random_probes<S: AsRef<str>>(
    sentences: &[S],
    style: &PromptStyle,
    rng: &mut ChaCha8Rng,
) -> ProbeSet {
    let mut set = ProbeSet::default();
    for (i, s) in sentences.iter().enumerate() {
        let s = s.as_ref();
        let span = pick_word(s, &[], style, rng);
        set.push(i, s, span, style);
    }
    set
}

/// Every sentence of some relations' bags (head+tail and head-only), tagged with its fact, to
/// draw T3 sentences from.
#[derive(Debug, Clone)]
pub struct SentencePool<'a> {
    entries: Vec<(&'a str, usize, &'a str)>,
}

impl<'a> SentencePool<'a> {
    /// Pools the sentences of `bags`, in order.
    pub fn new(bags: &'a [RelationBags]) -> Self {
        let mut entries = Vec::new();
        for relation in bags {
            for (index, bag) in relation.bags.iter().enumerate() {
                for s in bag.th_bags.iter().chain(&bag.h_bags) {
                    entries.push((relation.relation.as_str(), index, s.as_str()));
                }
            }
        }
        Self { entries }
    }

    /// The number of pooled sentences.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Draws up to `n` distinct sentences that do not belong to `fact`, uniformly without
    /// replacement (rejection sampling; if fewer than `n` other sentences exist, all of them,
    /// in pool order).
    pub fn sample_excluding(&self, fact: &FactId, n: usize, rng: &mut ChaCha8Rng) -> Vec<&'a str> {
        let own = |e: &(&str, usize, &str)| e.0 == fact.relation && e.1 == fact.index;
        let others = self.entries.iter().filter(|e| !own(e)).count();
        if others <= n {
            return self
                .entries
                .iter()
                .filter(|e| !own(e))
                .map(|e| e.2)
                .collect();
        }
        let mut chosen = std::collections::BTreeSet::new();
        let mut out = Vec::with_capacity(n);
        // others > n, so at least half of the draws are new while chosen.len() < n <= others;
        // expected draws are bounded, but cap them anyway and fall back to a scan.
        let mut attempts = 0usize;
        while out.len() < n && attempts < 64 * n + 1024 {
            attempts += 1;
            let i = below(rng, self.entries.len());
            if let Some(e) = self.entries.get(i) {
                if !own(e) && chosen.insert(i) {
                    out.push(e.2);
                }
            }
        }
        if out.len() < n {
            for (i, e) in self.entries.iter().enumerate() {
                if out.len() == n {
                    break;
                }
                if !own(e) && chosen.insert(i) {
                    out.push(e.2);
                }
            }
        }
        out
    }
}

/// The three probe sets of one fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactProbes {
    /// The fact.
    pub fact: FactId,
    /// T1: head+tail sentences, tail hidden.
    pub tail: ProbeSet,
    /// T2: head-only sentences, a random non-head word hidden.
    pub head_only: ProbeSet,
    /// T3: as many random sentences of other facts as T1 kept, a random word hidden.
    pub random: ProbeSet,
}

/// Builds T1, T2 and T3 for a fact. Randomness comes from generators seeded with `(seed,
/// "h:" + fact id)` and `(seed, "rd:" + fact id)`, so a fact's probes do not depend on which
/// other facts are processed or in which order.
pub fn fact_probes(
    fact: &Fact,
    bags: &FactBags,
    pool: &SentencePool<'_>,
    style: &PromptStyle,
    seed: u64,
) -> FactProbes {
    let tail = tail_probes(&bags.th_bags, &fact.subject, &fact.object, style);
    let mut rng = rng_for(seed, &format!("h:{}", fact.id));
    let head_only = head_only_probes(&bags.h_bags, &fact.subject, style, &mut rng);
    let mut rng = rng_for(seed, &format!("rd:{}", fact.id));
    let sentences = pool.sample_excluding(&fact.id, tail.counts.kept, &mut rng);
    let random = random_probes(&sentences, style, &mut rng);
    FactProbes {
        fact: fact.id.clone(),
        tail,
        head_only,
        random,
    }
}

/// Draws an eligible word span (see the module docs), or `None` if there is none.
fn pick_word(
    sentence: &str,
    protected: &[(usize, usize)],
    style: &PromptStyle,
    rng: &mut ChaCha8Rng,
) -> Option<(usize, usize)> {
    let candidates: Vec<(usize, usize)> = words(sentence)
        .take(MAX_WORD_POSITION)
        .filter_map(|(start, end)| core(sentence, start, end))
        .filter(|&(s, e)| !overlaps(protected, s, e))
        .filter(|&(s, _)| match style {
            PromptStyle::Causal => sentence.get(..s).is_some_and(|b| !b.trim().is_empty()),
            PromptStyle::Masked { .. } => true,
        })
        .collect();
    candidates.get(below(rng, candidates.len())).copied()
}

/// Byte spans of whitespace-separated tokens.
fn words(sentence: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut start: Option<usize> = None;
    let mut chars = sentence
        .char_indices()
        .chain(std::iter::once((sentence.len(), ' ')));
    std::iter::from_fn(move || {
        for (i, c) in chars.by_ref() {
            match (c.is_whitespace(), start) {
                (false, None) => start = Some(i),
                (true, Some(s)) => {
                    start = None;
                    return Some((s, i));
                }
                _ => {}
            }
        }
        None
    })
}

/// The token span without leading/trailing non-alphanumeric characters; `None` if nothing is
/// left.
fn core(sentence: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let token = sentence.get(start..end)?;
    let lead = token.char_indices().find(|(_, c)| c.is_alphanumeric())?.0;
    let (last, c) = token
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_alphanumeric())?;
    Some((start + lead, start + last + c.len_utf8()))
}

/// All occurrences of `needle` in `hay`, ignoring case and word boundaries.
fn occurrences(hay: &str, needle: &str) -> Vec<(usize, usize)> {
    if needle.is_empty() {
        return Vec::new();
    }
    hay.char_indices()
        .filter_map(|(i, _)| match_at(hay, i, needle, true).map(|end| (i, end)))
        .collect()
}

/// Whether `needle` occurs at byte `start` of `hay`; the end offset if so.
fn match_at(hay: &str, start: usize, needle: &str, ignore_case: bool) -> Option<usize> {
    let mut hay_chars = hay.get(start..)?.char_indices();
    let mut end = start;
    for n in needle.chars() {
        let (offset, h) = hay_chars.next()?;
        if h != n && !(ignore_case && h.to_lowercase().eq(n.to_lowercase())) {
            return None;
        }
        end = start + offset + h.len_utf8();
    }
    (end > start).then_some(end)
}

/// Word-boundary check for a match of `needle` at `start..end`.
fn bounded(hay: &str, start: usize, end: usize, needle: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let before = hay.get(..start).and_then(|b| b.chars().next_back());
    let after = hay.get(end..).and_then(|a| a.chars().next());
    let first = needle.chars().next();
    let last = needle.chars().next_back();
    let glued_before = alnum(first) && alnum(before);
    let glued_after = alnum(last) && alnum(after);
    !glued_before && !glued_after
}

fn overlaps(spans: &[(usize, usize)], start: usize, end: usize) -> bool {
    spans.iter().any(|&(a, b)| start < b && a < end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked() -> PromptStyle {
        PromptStyle::Masked {
            mask_token: "[MASK]".into(),
        }
    }

    #[test]
    fn tail_is_word_bounded_and_prefers_exact_case() {
        let m = find_tail("Parisian life in Paris", "Paris", None).unwrap();
        assert_eq!((m.start, m.end, m.exact_case), (17, 22, true));
        let m = find_tail("PARIS and paris", "Paris", None).unwrap();
        assert_eq!((m.start, m.exact_case), (0, false));
        assert!(find_tail("Parisian", "Paris", None).is_none());
        assert!(find_tail("", "Paris", None).is_none());
        assert!(find_tail("Paris", "", None).is_none());
        // Non-alphanumeric tail edges need no boundary.
        assert_eq!(
            find_tail("I like C++11", "C++", None).map(|m| m.start),
            Some(7)
        );
        // Punctuation counts as a boundary.
        assert_eq!(
            find_tail("(Paris)", "Paris", None).map(|m| m.start),
            Some(1)
        );
        assert_eq!(
            find_tail("Renault-varaosat", "Renault", None).map(|m| m.start),
            Some(0)
        );
    }

    #[test]
    fn head_occurrences_are_protected() {
        let s =
            "The Fiat Multipla is a compact MPV manufactured by Italian automaker Fiat since 1998.";
        let m = find_tail(s, "Fiat", Some("Fiat Multipla")).unwrap();
        assert_eq!(&s[m.start..m.end], "Fiat");
        assert_eq!(m.start, s.rfind("Fiat").unwrap());
        // Head == tail: nothing left to find.
        assert!(find_tail("Augsburg is in Augsburg", "Augsburg", Some("Augsburg")).is_none());
        // Protection ignores case.
        assert!(find_tail("renault vel satis", "Renault", Some("Renault Vel Satis")).is_none());
    }

    #[test]
    fn unicode_is_handled_by_char() {
        let s = "Größe von Straße in STRASSE";
        assert_eq!(
            find_tail(s, "Straße", None).map(|m| &s[m.start..m.end]),
            Some("Straße")
        );
        let s = "Ünïcödé café Café";
        let m = find_tail(s, "CAFÉ", None).unwrap();
        assert_eq!(&s[m.start..m.end], "café");
        assert!(!m.exact_case);
    }

    #[test]
    fn hide_masks_or_cuts() {
        let s = "We visited Baku, Azerbaijan.";
        let m = find_tail(s, "Baku", Some("Azerbaijan")).unwrap();
        assert_eq!(
            hide(s, m.start, m.end, &masked()).unwrap(),
            "We visited [MASK], Azerbaijan."
        );
        assert_eq!(
            hide(s, m.start, m.end, &PromptStyle::Causal).unwrap(),
            "We visited"
        );
        assert_eq!(hide(s, 0, 2, &PromptStyle::Causal), None);
        assert_eq!(hide(s, 5, 2, &masked()), None);
        assert_eq!(hide(s, 0, 999, &masked()), None);
        assert_eq!(hide("é", 1, 2, &masked()), None);
    }

    #[test]
    fn tail_probes_count_skips() {
        let sentences = [
            "Baku is the capital of Azerbaijan.",
            "Azerbaijan has no such word.",
            "In Azerbaijan, BAKU is big.",
            "Baku, Baku and Azerbaijan.",
        ];
        let set = tail_probes(&sentences, "Azerbaijan", "Baku", &masked());
        assert_eq!(
            set.counts,
            ProbeCounts {
                sentences: 4,
                kept: 3,
                target_missing: 1,
                no_context: 0
            }
        );
        assert_eq!(set.probes[0].text, "[MASK] is the capital of Azerbaijan.");
        assert_eq!(set.probes[1].text, "In Azerbaijan, [MASK] is big.");
        assert_eq!(set.probes[1].hidden, "BAKU");
        assert_eq!(set.probes[1].sentence, 2);
        let set = tail_probes(&sentences, "Azerbaijan", "Baku", &PromptStyle::Causal);
        // Sentence 0: the only Baku is first -> no context; sentence 3: the second Baku is used.
        assert_eq!(
            set.counts,
            ProbeCounts {
                sentences: 4,
                kept: 2,
                target_missing: 1,
                no_context: 1
            }
        );
        assert_eq!(set.probes[0].text, "In Azerbaijan,");
        assert_eq!(set.probes[1].text, "Baku,");
    }

    #[test]
    fn head_only_probes_avoid_the_head() {
        let sentences = ["Fiat Multipla is a car.", "Fiat Multipla", "..."];
        let mut rng = rng_for(1, "t");
        for _ in 0..20 {
            let set = head_only_probes(&sentences, "Fiat Multipla", &masked(), &mut rng);
            assert_eq!(set.counts.sentences, 3);
            assert_eq!(set.counts.kept, 1);
            assert_eq!(set.counts.target_missing, 2);
            let p = &set.probes[0];
            assert!(["is", "a", "car"].contains(&p.hidden.as_str()), "{p:?}");
            assert!(p.text.starts_with("Fiat Multipla"));
            assert!(p.text.contains("[MASK]"));
        }
        let mut rng = rng_for(1, "t");
        let causal = head_only_probes(&["car Fiat"], "Fiat", &PromptStyle::Causal, &mut rng);
        // "car" is first (no context), "Fiat" is the head.
        assert_eq!(causal.counts.target_missing, 1);
    }

    #[test]
    fn words_and_cores() {
        let s = "  (Hello,  world!) ok ";
        let spans: Vec<&str> = words(s).map(|(a, b)| &s[a..b]).collect();
        assert_eq!(spans, ["(Hello,", "world!)", "ok"]);
        let cores: Vec<&str> = words(s)
            .filter_map(|(a, b)| core(s, a, b))
            .map(|(a, b)| &s[a..b])
            .collect();
        assert_eq!(cores, ["Hello", "world", "ok"]);
        assert_eq!(words("").count(), 0);
        let long: String = (0..80).map(|i| format!("w{i} ")).collect();
        let mut rng = rng_for(3, "t");
        for _ in 0..50 {
            let (a, b) = pick_word(&long, &[], &masked(), &mut rng).unwrap();
            let n: usize = long[a + 1..b].parse().unwrap();
            assert!(n < MAX_WORD_POSITION);
        }
    }

    #[test]
    fn pool_excludes_own_fact() {
        let bags = vec![RelationBags {
            relation: "P1".into(),
            bags: vec![
                FactBags {
                    th_bags: vec!["a one".into()],
                    h_bags: vec!["a two".into()],
                },
                FactBags {
                    th_bags: vec!["b one".into(), "b two".into()],
                    h_bags: vec![],
                },
                FactBags::default(),
            ],
        }];
        let pool = SentencePool::new(&bags);
        assert_eq!(pool.len(), 4);
        let mut rng = rng_for(0, "p");
        for _ in 0..20 {
            let got = pool.sample_excluding(&FactId::new("P1", 0), 1, &mut rng);
            assert_eq!(got.len(), 1);
            assert!(got[0].starts_with('b'));
        }
        let all = pool.sample_excluding(&FactId::new("P1", 1), 5, &mut rng);
        assert_eq!(all, ["a one", "a two"]);
        let two = pool.sample_excluding(&FactId::new("P1", 2), 3, &mut rng);
        let mut sorted = two.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 3);
    }

    #[test]
    fn fact_probes_are_deterministic() {
        let bags = vec![RelationBags {
            relation: "P36".into(),
            bags: vec![
                FactBags {
                    th_bags: vec![
                        "Baku is in Azerbaijan.".into(),
                        "Azerbaijan's capital is Baku.".into(),
                    ],
                    h_bags: vec!["Azerbaijan is a country by the Caspian Sea.".into()],
                },
                FactBags {
                    th_bags: vec!["Paris is in France.".into()],
                    h_bags: vec!["France has wine and cheese.".into()],
                },
            ],
        }];
        let pool = SentencePool::new(&bags);
        let fact = Fact {
            id: FactId::new("P36", 0),
            subject: "Azerbaijan".into(),
            object: "Baku".into(),
        };
        let a = fact_probes(&fact, &bags[0].bags[0], &pool, &masked(), 5);
        let b = fact_probes(&fact, &bags[0].bags[0], &pool, &masked(), 5);
        assert_eq!(a, b);
        assert_eq!(a.tail.counts.kept, 2);
        assert_eq!(a.head_only.counts.kept, 1);
        assert_eq!(a.random.counts.sentences, 2);
        assert!(a.random.probes.iter().all(|p| !p.text.contains("Baku")));
    }
}
