//! Options shared by every subcommand that runs a model: `--model`, `--device`, `--threads`,
//! verbosity.

use crate::exit::CliError;
use kn_model::KnowledgeModel;

/// Which model to run and where.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelOptions {
    /// The model: `default` (SmolLM2-135M-Instruct, fetched by scripts/fetch-model.sh), a
    /// GGUF file, or a Hugging Face style directory (BERT or Llama).
    #[arg(long, default_value = "default")]
    pub model: String,
    /// Device to run on: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Threads for libtorch (0: libtorch's default, usually the number of cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print progress and timing details on stderr.
    #[arg(short, long)]
    pub verbose: bool,
}

impl ModelOptions {
    /// Loads the model these options name.
    pub fn load(&self) -> Result<Box<dyn KnowledgeModel>, CliError> {
        kn_model::set_threads(self.threads);
        let device = kn_model::parse_device(&self.device)?;
        let started = std::time::Instant::now();
        let model = kn_model::load_model(&self.model, device)?;
        if self.verbose {
            let info = model.info();
            eprintln!(
                "kn: loaded {} ({} layers, FFN {}, vocabulary {}) from {} in {:.2} s",
                info.architecture,
                info.num_layers,
                info.ffn_width,
                info.vocab_size,
                info.source,
                started.elapsed().as_secs_f64()
            );
        }
        Ok(model)
    }
}
