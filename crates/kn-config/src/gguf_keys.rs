//! Reading an architecture's `ARCH.*` metadata keys from a GGUF file, with the rules every
//! configuration key follows (sizes bounded, reals finite and positive, each error naming the
//! key): what the GGUF mappings of `arch/` share.

use crate::limits::{check_positive, check_size, ConfigError, Size};

/// The `ARCH.*` keys of one GGUF file.
pub(crate) struct GgufKeys<'a> {
    file: &'a kn_gguf::GgufFile,
    arch: &'static str,
}

impl<'a> GgufKeys<'a> {
    pub(crate) fn new(file: &'a kn_gguf::GgufFile, arch: &'static str) -> Self {
        Self { file, arch }
    }

    fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.arch)
    }

    /// A size that must be there.
    pub(crate) fn size(&self, name: &str, kind: Size) -> Result<usize, ConfigError> {
        let key = self.key(name);
        let value = self
            .file
            .get_u64(&key)
            .map_err(|e| ConfigError::new(key.clone(), e.to_string()))?;
        check_size(&key, value, kind)
    }

    /// A size that may be missing.
    pub(crate) fn optional(&self, name: &str, kind: Size) -> Result<Option<usize>, ConfigError> {
        match self.file.get(&self.key(name)) {
            Some(_) => self.size(name, kind).map(Some),
            None => Ok(None),
        }
    }

    /// A finite positive real that may be missing.
    pub(crate) fn real(&self, name: &str) -> Result<Option<f64>, ConfigError> {
        let key = self.key(name);
        match self.file.get(&key) {
            None => Ok(None),
            Some(_) => {
                let value = self
                    .file
                    .get_f32(&key)
                    .map_err(|e| ConfigError::new(key.clone(), e.to_string()))?;
                check_positive(&key, f64::from(value)).map(Some)
            }
        }
    }

    /// A finite positive real that must be there.
    pub(crate) fn required_real(&self, name: &str) -> Result<f64, ConfigError> {
        self.real(name)?
            .ok_or_else(|| ConfigError::new(self.key(name), "missing"))
    }

    /// `ARCH.vocab_size`, else the tokenizer's size.
    pub(crate) fn vocab_size(&self, tokenizer_size: usize) -> Result<usize, ConfigError> {
        match self.optional("vocab_size", Size::Vocabulary)? {
            Some(v) => Ok(v),
            None => check_size(
                "tokenizer.ggml.tokens",
                tokenizer_size as u64,
                Size::Vocabulary,
            ),
        }
    }

    /// The width of a head: `ARCH.<name>` if the file has it, else the hidden size over the heads.
    pub(crate) fn head_dim(
        &self,
        name: &str,
        hidden_size: usize,
        heads: usize,
    ) -> Result<usize, ConfigError> {
        match self.optional(name, Size::HeadDim)? {
            Some(dim) => Ok(dim),
            None => check_size(
                &format!(
                    "{} / {}",
                    self.key("embedding_length"),
                    self.key("attention.head_count")
                ),
                (hidden_size / heads) as u64,
                Size::HeadDim,
            ),
        }
    }

    /// Refuses RoPE scaling, which no GGUF mapping here implements.
    pub(crate) fn refuse_rope_scaling(&self) -> Result<(), ConfigError> {
        let key = self.key("rope.scaling.type");
        match self.file.get_str(&key) {
            Ok("none") => Ok(()),
            Ok(kind) => Err(ConfigError::new(
                key,
                format!("RoPE scaling {kind:?} from GGUF metadata is not supported"),
            )),
            Err(_) if self.file.get(&key).is_some() => Err(ConfigError::new(
                key,
                "RoPE scaling from GGUF metadata is not supported",
            )),
            Err(_) => Ok(()),
        }
    }
}
