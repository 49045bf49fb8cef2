//! A pass resumed from a clean pass (`forward_from_layers`, the path attribution runs on)
//! equals a full forward pass with the same activations written in: for every layer, for
//! answers scored at one position and at several (the causal model then recomputes several
//! positions, masked causally among themselves), and for a one-token prompt (no cached
//! prefix to attend to).

use kn_model::tch::{self, Device, Tensor};
use kn_model::{load_model, ActivationEdit, ActivationOp, AnswerPolicy, CleanPass, KnowledgeModel};
use std::path::{Path, PathBuf};

const TOLERANCE: f64 = 1e-4;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// A word the tiny Llama tokenizes as one token (a prompt with no cached prefix before its
/// answer position).
fn one_token_prompt(model: &dyn KnowledgeModel) -> &'static str {
    ["The", "A", "a", "I", "T"]
        .into_iter()
        .find(|word| {
            model
                .encode(word, Some("France"), AnswerPolicy::FirstToken)
                .unwrap()
                .answer_position
                == 0
        })
        .expect("some one-token prompt")
}

/// Clean passes of first-token prompts.
fn clean_passes(model: &dyn KnowledgeModel, prompts: &[(&str, &str)]) -> Vec<CleanPass> {
    prompts
        .iter()
        .map(|(prompt, answer)| {
            let encoded = model
                .encode(prompt, Some(answer), AnswerPolicy::FirstToken)
                .unwrap();
            model.clean_pass(&encoded).unwrap()
        })
        .collect()
}

/// `(clean pass, starts)` runs as the batched methods take them.
fn as_runs<'a>(
    cleans: &'a [CleanPass],
    starts: &'a [Vec<(usize, Tensor)>],
) -> Vec<(&'a CleanPass, &'a [(usize, Tensor)])> {
    cleans
        .iter()
        .zip(starts)
        .map(|(clean, starts)| (clean, starts.as_slice()))
        .collect()
}

/// For each layer: the clean activations scaled by `factor` and resumed from that layer,
/// against the full forward pass with every neuron of that layer scaled by `factor`.
fn check_resumed_equals_full(
    model: &dyn KnowledgeModel,
    prompt: &str,
    answer: &str,
    policy: AnswerPolicy,
) {
    let encoded = model.encode(prompt, Some(answer), policy).unwrap();
    let clean = model.clean_pass(&encoded).unwrap();
    let (layers, width) = (model.info().num_layers, model.info().ffn_width);
    for factor in [0.0, 0.5, 2.0] {
        for layer in 0..layers {
            let scaled: Tensor = clean.activations.get(layer as i64).unsqueeze(0) * factor;
            let resumed = model
                .forward_from_layers(&clean, &[(layer, scaled)])
                .unwrap(); // [1, targets, vocab]
            let edits: Vec<ActivationEdit> = (0..width)
                .map(|neuron| ActivationEdit {
                    layer,
                    neuron,
                    op: ActivationOp::Scale(factor),
                })
                .collect();
            let full = model
                .forward(&[encoded.clone()], &edits, false)
                .unwrap()
                .logits; // [1, vocab], answer position
            let difference = (resumed.get(0).get(0) - full.get(0))
                .abs()
                .max()
                .double_value(&[]);
            assert!(
                difference < TOLERANCE,
                "{prompt:?} -> {answer:?} ({policy:?}), layer {layer} x {factor}: resumed logits differ by {difference}"
            );
        }
    }
}

#[test]
fn tiny_llama_resumed_passes_equal_full_passes() {
    let model = load_model(repo("fixtures/tiny-llama").to_str().unwrap(), Device::Cpu).unwrap();
    check_resumed_equals_full(
        model.as_ref(),
        "The capital of France is",
        "Paris",
        AnswerPolicy::FirstToken,
    );
    let whole = model
        .encode(
            "Bill Gates works for",
            Some("Microsoft"),
            AnswerPolicy::WholeAnswer,
        )
        .unwrap();
    assert!(
        whole.targets.len() > 1,
        "the tiny vocabulary splits Microsoft"
    );
    check_resumed_equals_full(
        model.as_ref(),
        "Bill Gates works for",
        "Microsoft",
        AnswerPolicy::WholeAnswer,
    );
    let single = one_token_prompt(model.as_ref());
    check_resumed_equals_full(model.as_ref(), single, "France", AnswerPolicy::FirstToken);
}

/// The resumed path equals a full recompute on every decoder architecture (a sliding window
/// changes which cached keys a resumed row sees; a parallel residual or sandwich norm what the
/// FFN's output is added to): first-token answers (one recomputed
/// position) and whole answers (several, masked within the window among themselves).
#[test]
fn decoder_architectures_resumed_passes_equal_full_passes() {
    for dir in FAMILY_DIRS {
        let model = load_model(repo(dir).to_str().unwrap(), Device::Cpu).unwrap();
        for (prompt, answer, policy) in [
            (
                "The native language of Vladimir Putin is",
                "Russian",
                AnswerPolicy::FirstToken,
            ),
            (
                "Bill Gates works for",
                "Microsoft",
                AnswerPolicy::WholeAnswer,
            ),
            (
                "The capital of France is",
                "Paris",
                AnswerPolicy::WholeAnswer,
            ),
        ] {
            check_resumed_equals_full(model.as_ref(), prompt, answer, policy);
        }
        let single = one_token_prompt(model.as_ref());
        check_resumed_equals_full(model.as_ref(), single, "France", AnswerPolicy::FirstToken);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]
    /// Resumed == full for random prompts on every decoder architecture: the prompt's length
    /// against each layer's window decides which cached keys a resumed row may see.
    #[test]
    fn resumed_passes_equal_full_passes_on_random_prompts(
        family in 0usize..FAMILY_DIRS.len(),
        words in proptest::collection::vec(proptest::sample::select(WORDS.to_vec()), 1..9),
        whole in proptest::bool::ANY,
    ) {
        let model = family_model(family);
        let prompt = words.join(" ");
        let policy = if whole { AnswerPolicy::WholeAnswer } else { AnswerPolicy::FirstToken };
        check_resumed_equals_full(model, &prompt, "Paris", policy);
    }
}

const FAMILY_DIRS: [&str; 9] = [
    "fixtures/family/tiny-llama3",
    "fixtures/family/tiny-mistral",
    "fixtures/family/tiny-qwen2",
    "fixtures/family/tiny-qwen3",
    "fixtures/family/tiny-gemma3",
    "fixtures/family/tiny-phi3",
    "fixtures/family/tiny-gpt2",
    "fixtures/family/tiny-gpt-neo",
    "fixtures/family/tiny-gpt-neox",
];

const WORDS: [&str; 12] = [
    "The",
    "capital",
    "of",
    "France",
    "is",
    "native",
    "language",
    "Rome",
    "works",
    "for",
    "continent",
    "Italy",
];

/// The tiny model of `FAMILY_DIRS[index]`, loaded once per test binary.
fn family_model(index: usize) -> &'static dyn KnowledgeModel {
    use std::sync::OnceLock;
    static MODELS: OnceLock<Vec<Box<dyn KnowledgeModel + Sync>>> = OnceLock::new();
    MODELS.get_or_init(|| {
        FAMILY_DIRS
            .iter()
            .map(|dir| {
                kn_model::DecoderLm::load_hf_dir(&repo(dir), Device::Cpu, kn_model::Dtype::F32)
                    .map(|m| Box::new(m) as Box<dyn KnowledgeModel + Sync>)
                    .unwrap()
            })
            .collect()
    })[index]
        .as_ref()
}

#[test]
fn tiny_bert_resumed_passes_equal_full_passes() {
    let model = load_model(repo("fixtures/tiny-bert").to_str().unwrap(), Device::Cpu).unwrap();
    check_resumed_equals_full(
        model.as_ref(),
        "The capital of France is [MASK] .",
        "Paris",
        AnswerPolicy::FirstToken,
    );
}

/// Runs of several prompts (different lengths, so different cached prefixes and RoPE
/// positions) put through one batched pass give each run's features as a pass of its own.
fn check_batch_equals_single_runs(model: &dyn KnowledgeModel, prompts: &[(&str, &str)]) {
    let cleans = clean_passes(model, prompts);
    let layers = model.info().num_layers;
    let starts: Vec<Vec<(usize, Tensor)>> = cleans
        .iter()
        .enumerate()
        .map(|(r, clean)| {
            (0..layers)
                .rev()
                .map(|l| {
                    (
                        l,
                        clean.activations.get(l as i64).unsqueeze(0).repeat([2, 1])
                            * (0.3 + 0.2 * r as f64),
                    )
                })
                .collect()
        })
        .collect();
    let runs = as_runs(&cleans, &starts);
    let batched = model.forward_features_batch(&runs).unwrap();
    assert_eq!(batched.len(), runs.len());
    for (r, (clean, starts)) in runs.iter().enumerate() {
        let alone = model.forward_features_from_layers(clean, starts).unwrap();
        assert_eq!(batched[r].size(), alone.size());
        let difference = (&batched[r] - alone).abs().max().double_value(&[]);
        assert!(
            difference < 1e-5,
            "run {r} ({:?}) differs by {difference} when batched",
            clean.prompt.text
        );
    }
}

#[test]
fn batched_runs_equal_single_runs() {
    let prompts = [
        ("The capital of France is", "Paris"),
        ("Bill Gates works for", "Microsoft"),
        ("The official language of the Netherlands is", "Dutch"),
    ];
    let llama = load_model(repo("fixtures/tiny-llama").to_str().unwrap(), Device::Cpu).unwrap();
    check_batch_equals_single_runs(llama.as_ref(), &prompts);
    let bert = load_model(repo("fixtures/tiny-bert").to_str().unwrap(), Device::Cpu).unwrap();
    let masked: Vec<(String, &str)> = prompts
        .iter()
        .map(|(p, a)| (format!("{p} [MASK] ."), *a))
        .collect();
    let masked: Vec<(&str, &str)> = masked.iter().map(|(p, a)| (p.as_str(), *a)).collect();
    check_batch_equals_single_runs(bert.as_ref(), &masked);
}

/// The gradients `start_gradients_batch` gives (on the CPU, for the architectures it covers:
/// the hand-written pass of `decoder/backward.rs`) against autograd through the same features,
/// with a head whose gradient is a fixed random tensor: runs of prompts of different lengths (a
/// one-token prompt among them, which has no cached prefix; the others longer than the sliding
/// windows), starts at every layer in scrambled order, two starts at one layer, and activations
/// scaled differently per row. Also the features the head sees.
#[test]
fn llama_hand_written_backward_equals_autograd() {
    check_hand_written_backward("fixtures/tiny-llama");
}

/// The same for every other architecture the hand-written pass covers: Llama 3 scaling,
/// Mistral's windows, Qwen2's biases and windows, Qwen3's query/key norms, and Gemma-3 (`1 + w`
/// and sandwich norms, GELU-tanh gate, query/key norms, `query_pre_attn_scalar`, local and
/// global layers with their own RoPE bases).
#[test]
fn decoder_architectures_hand_written_backward_equals_autograd() {
    for (dir, covered) in [
        ("fixtures/family/tiny-llama3", true),
        ("fixtures/family/tiny-mistral", true),
        ("fixtures/family/tiny-qwen2", true),
        ("fixtures/family/tiny-qwen3", true),
        ("fixtures/family/tiny-gemma3", true),
        ("fixtures/family/tiny-phi3", false),
        ("fixtures/family/tiny-gpt2", false),
        ("fixtures/family/tiny-gpt-neo", false),
        ("fixtures/family/tiny-gpt-neox", false),
    ] {
        let config = kn_config::DecoderConfig::from_hf_json(
            &std::fs::read_to_string(repo(dir).join("config.json")).unwrap(),
            false,
        )
        .unwrap();
        assert_eq!(
            kn_model::hand_written_backward_covers(&config),
            covered,
            "{dir}"
        );
        check_hand_written_backward(dir);
    }
}

/// The same on a thread where libtorch runs on one thread, as attribution's concurrent passes
/// do: there the pass's products go through `kn_kernels::matmul` (the `gemm` crate, or its
/// few-rows kernel, which this small model's products use).
#[test]
fn llama_hand_written_backward_equals_autograd_on_one_thread() {
    kn_model::on_new_thread(1, || {
        assert_eq!(tch::get_num_threads(), 1);
        check_hand_written_backward("fixtures/tiny-llama");
        check_hand_written_backward("fixtures/family/tiny-gemma3");
    });
}

fn check_hand_written_backward(dir: &str) {
    let model = load_model(repo(dir).to_str().unwrap(), Device::Cpu).unwrap();
    let single = one_token_prompt(model.as_ref());
    let prompts = [
        ("The capital of France is", "Paris"),
        (single, "France"),
        ("The official language of the Netherlands is", "Dutch"),
    ];
    let cleans = clean_passes(model.as_ref(), &prompts);
    let layers = model.info().num_layers;
    let mut order: Vec<usize> = (0..layers).collect();
    order.swap(0, layers - 1);
    order.insert(1, layers / 2); // two starts at one layer
    let starts: Vec<Vec<(usize, Tensor)>> = cleans
        .iter()
        .enumerate()
        .map(|(r, clean)| {
            order
                .iter()
                .enumerate()
                .map(|(i, &l)| {
                    let rows = 1 + ((i + r) % 3) as i64;
                    let scales = Tensor::linspace(
                        0.1,
                        1.7 + r as f64,
                        rows,
                        (tch::Kind::Float, Device::Cpu),
                    )
                    .unsqueeze(1);
                    (l, clean.activations.get(l as i64).unsqueeze(0) * scales)
                })
                .collect()
        })
        .collect();
    let runs = as_runs(&cleans, &starts);
    tch::manual_seed(7);
    let head_gradients: Vec<Tensor> = runs
        .iter()
        .map(|(_, starts)| {
            let rows: i64 = starts.iter().map(|(_, a)| a.size()[0]).sum();
            Tensor::randn(
                [rows, 1, model.info().hidden_size as i64],
                (tch::Kind::Float, Device::Cpu),
            )
        })
        .collect();
    let mut seen = Vec::new();
    let mut head = |features: &[Tensor]| {
        seen.push(features.iter().map(Tensor::copy).collect::<Vec<_>>());
        Ok(head_gradients.iter().map(Tensor::shallow_clone).collect())
    };
    let by_model = model.start_gradients_batch(&runs, &mut head).unwrap();
    let by_autograd =
        kn_model::start_gradients_by_autograd(model.as_ref(), &runs, &mut head).unwrap();
    assert_eq!(seen.len(), 2);
    for (r, (a, b)) in seen[0].iter().zip(&seen[1]).enumerate() {
        let difference = (a - b).abs().max().double_value(&[]);
        assert!(
            difference < 1e-5,
            "{dir}: run {r}: features differ by {difference}"
        );
    }
    assert_eq!(by_model.len(), runs.len());
    for (r, (mine, reference)) in by_model.iter().zip(&by_autograd).enumerate() {
        assert_eq!(mine.len(), starts[r].len());
        for (i, (a, b)) in mine.iter().zip(reference).enumerate() {
            assert_eq!(a.size(), b.size());
            let scale = b.abs().max().double_value(&[]).max(1e-12);
            let difference = (a - b).abs().max().double_value(&[]) / scale;
            assert!(
                difference < 1e-5,
                "{dir}: run {r} start {i} (layer {}): gradients differ by {difference} of the \
                 largest",
                starts[r][i].0
            );
        }
    }
}
