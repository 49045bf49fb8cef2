//! Options shared by every subcommand that runs a model: `--model`, `--device`, `--dtype`,
//! `--threads` (verbosity is global: see `log`).

use crate::exit::CliError;
use kn_model::KnowledgeModel;

/// Which model to run and where.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelOptions {
    /// The model: `default` (SmolLM2-135M-Instruct, fetched by scripts/fetch-model.sh),
    /// `gemma-3-270m` (scripts/fetch-model.sh --model gemma-3-270m), a GGUF file (llama, gemma3)
    /// or a Hugging Face style directory (BERT or a decoder: Llama, Mistral, Qwen2/3, Gemma-3,
    /// Phi-3, GPT-2, GPT-Neo, GPT-NeoX).
    #[arg(long, default_value = "default")]
    pub model: String,
    /// Device to run on: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// The type the weight matrices are held and multiplied in: f32 (the paper-exact default),
    /// bf16 or f16 (half the weights' memory; norms, softmax and attribution's sums stay
    /// float32; agreement with f32 in docs/performance.md). Decoders only: BERT runs in f32.
    #[arg(long, default_value = "f32")]
    pub dtype: kn_model::Dtype,
    /// Threads for libtorch (0: libtorch's default, usually the number of cores; at most
    /// 4 x the machine's cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

impl ModelOptions {
    /// Loads the model these options name.
    pub fn load(&self) -> Result<Box<dyn KnowledgeModel>, CliError> {
        let started = std::time::Instant::now();
        let report = crate::log::report("load");
        let model = kn_run::predict::load_model(
            &self.model,
            &self.device,
            self.dtype,
            self.threads,
            &report,
        )?;
        let info = model.info();
        crate::log::detail(
            "load",
            format!(
                "{} ({} layers, FFN {}, vocabulary {}, {}) from {} in {:.2} s",
                info.architecture,
                info.num_layers,
                info.ffn_width,
                info.vocab_size,
                info.dtype,
                info.source,
                started.elapsed().as_secs_f64()
            ),
        );
        Ok(model)
    }
}

pub use kn_run::options::{at_least_one, parse_layers};
