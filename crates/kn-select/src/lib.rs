//! Knowledge-neuron selection, refinement and statistics (Dai et al., ACL 2022, §3.2 and §4,
//! following the authors' `2_get_kn.py` / `2_analyze_kn.py` where the text is silent).
//!
//! Pure Rust (no tch, no ndarray). The pipeline for one fact:
//! 1. each prompt's attribution scores, a [`ScoreMatrix`] (row-major, row `r` = layer
//!    `layers[r]`; see [`neuron`] for the one-line conversion from kn-attribution's `Array2`);
//! 2. [`coarse_select`] with a [`CoarseRule`] (paper: score > 0.2 x max);
//! 3. [`FactCounts`]: how many prompts selected each neuron;
//! 4. [`refine_relation`] / [`refine_all`]: keep neurons selected in more than a fraction `p` of
//!    the prompts ([`RefineConfig`], paper: 0.7, at least 3 prompts), optionally adapting `p` per
//!    relation ([`AdaptiveShare`]) and subtracting neurons common in other relations
//!    ([`subtract_other_relations`]);
//! 5. [`relation_neurons`], and [`stats`]: neurons per fact, layer distribution, neurons shared
//!    within and across relations.
//!
//! Every result type is serde-serializable; a [`Neuron`] is written `[layer, index]`.
//!
//! ```
//! use kn_select::*;
//! let scores = ScoreMatrix::new(vec![0, 1], 3, vec![0.9, 0.1, 0.0, 0.5, 0.0, 0.05]).unwrap();
//! let coarse = coarse_select(&scores, &CoarseRule::default()).unwrap();
//! assert_eq!(coarse, [Neuron::new(0, 0), Neuron::new(1, 0)]);
//! let fact = refine_fact("P36:0", "P36", &[coarse.clone(), coarse.clone(), vec![Neuron::new(0, 0)]],
//!                        &RefineConfig::default()).unwrap();
//! assert_eq!(fact.neurons, [Neuron::new(0, 0)]); // 3/3 > 0.7, but 2/3 is not
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod coarse;
pub mod error;
pub mod neuron;
pub mod refine;
pub mod stats;

pub use coarse::{coarse_select, coarse_select_all, percentile_of, CoarseRule, PAPER_RATIO};
pub use error::{Result, SelectError};
pub use neuron::{Neuron, ScoreMatrix};
pub use refine::{
    compare_relations, refine_all, refine_fact, refine_relation, relation_neurons,
    subtract_other_relations, AdaptiveShare, AdaptiveStop, FactCounts, FactNeurons, NegativeFilter,
    NegativeReport, NeuronCount, RefineConfig, RelationNeuron, RelationRefinement, ShareComparison,
    ShareStep, SkippedFact,
};
pub use stats::{
    intersection_size, layer_distribution, neuron_counts, paper_inter_sampled, sharing,
    sharing_sampled, summarize, CountStats, LayerCount, LayerDistribution, PairMean,
    RelationLayers, SharingStats, Summary,
};
