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
        check_thread_count("--threads", self.threads)?;
        kn_model::set_threads(self.threads);
        let device = kn_model::parse_device(&self.device)?;
        let started = std::time::Instant::now();
        if self.dtype == kn_model::Dtype::F16 && device == kn_model::tch::Device::Cpu {
            crate::log::warn(
                "load",
                "--dtype f16 on a CPU runs libtorch's slow float16 products (about 13x slower \
                 than f32 on an AVX512-BF16 CPU, docs/performance.md); bf16 is the CPU's half \
                 precision",
            );
        }
        let model = kn_model::load_model_as(&self.model, device, self.dtype)?;
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

/// The most threads (or concurrent passes) a command accepts: 4 per core of this machine.
/// More only adds contention; 10,000 threads would take minutes and gigabytes to start.
pub fn max_thread_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from) * 4
}

/// Refuses a thread count above [`max_thread_count`] (`option` names the option).
pub fn check_thread_count(option: &str, count: usize) -> Result<(), CliError> {
    let max = max_thread_count();
    if count > max {
        return Err(CliError::BadInput(format!(
            "{option} {count} is more than {max} (4 per core of this machine's {}); 0 picks a sensible default",
            max / 4
        )));
    }
    Ok(())
}

/// `--memory-budget` in GiB as bytes (0 stays 0: automatic).
pub fn memory_budget_bytes(gib: f64) -> Result<u64, CliError> {
    if !gib.is_finite() || gib < 0.0 || gib > 1e6 {
        return Err(CliError::BadInput(format!(
            "--memory-budget {gib} is not a number of GiB between 0 (automatic) and 1000000"
        )));
    }
    Ok((gib * (1u64 << 30) as f64) as u64)
}

/// Parses a layer list: `all`, `3`, `0-29`, `0,5,7-9` (checked against `num_layers`).
pub fn parse_layers(spec: &str, num_layers: usize) -> Result<Vec<usize>, CliError> {
    let bad = |why: String| CliError::BadInput(format!("--layers {spec:?}: {why}"));
    if spec.trim() == "all" {
        return Ok((0..num_layers).collect());
    }
    let mut layers = Vec::new();
    for part in spec.split(',').map(str::trim) {
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| bad(format!("{s:?} is not a layer number")))
        };
        let (start, end) = match part.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(part)?, number(part)?),
        };
        if start > end {
            return Err(bad(format!("the range {part} is empty")));
        }
        if end >= num_layers {
            return Err(bad(format!(
                "layer {end} is out of range: the model has {num_layers} layers (0-{})",
                num_layers.saturating_sub(1)
            )));
        }
        for layer in start..=end {
            if !layers.contains(&layer) {
                layers.push(layer);
            }
        }
    }
    Ok(layers)
}

/// Refuses 0 for an option that counts something (`--batch-size`, `--steps`, `--top`).
pub fn at_least_one(value: usize, option: &str) -> Result<(), CliError> {
    match value {
        0 => Err(CliError::BadInput(format!("{option} must be at least 1"))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitCode;

    #[test]
    fn thread_counts_are_bounded_by_the_machine() {
        let max = max_thread_count();
        assert!(max >= 4);
        for ok in [0, 1, max] {
            check_thread_count("--threads", ok).unwrap();
        }
        for bad in [max + 1, 10_000, usize::MAX] {
            let error = check_thread_count("--threads", bad).unwrap_err();
            assert_eq!(error.exit_code(), 2);
        }
    }

    #[test]
    fn layer_lists_parse() {
        assert_eq!(parse_layers("all", 3).unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_layers("0-2", 30).unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_layers("5, 1-2,5", 30).unwrap(), vec![5, 1, 2]);
        assert!(parse_layers("0-30", 30).is_err());
        assert!(parse_layers("3-1", 30).is_err());
        assert!(parse_layers("x", 30).is_err());
    }
}
