//! Device selection: parse `cpu`, `cuda` or `cuda:N` and check that the device is usable with
//! the installed libtorch.

use crate::error::{ModelError, Result};
use tch::Device;

/// Parses a device name (`cpu`, `cuda`, `cuda:N`) and checks that it can be used.
pub fn parse_device(name: &str) -> Result<Device> {
    let name = name.trim();
    let device = match name {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => Device::Cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(index)) => Device::Cuda(index),
            _ => {
                return Err(ModelError::InvalidArgument(format!(
                    "unknown device {name:?}: use cpu, cuda or cuda:N"
                )))
            }
        },
    };
    let Device::Cuda(index) = device else {
        return Ok(device);
    };
    if !tch::Cuda::is_available() {
        return Err(ModelError::DeviceUnavailable {
            device: name.to_string(),
            reason: "this libtorch has no usable CUDA (install it with KN_TORCH_CUDA=1 scripts/setup-libtorch.sh on a machine with an NVIDIA GPU)".into(),
        });
    }
    let count = tch::Cuda::device_count();
    if index as i64 >= count {
        return Err(ModelError::DeviceUnavailable {
            device: name.to_string(),
            reason: format!("only {count} CUDA device(s) are visible"),
        });
    }
    Ok(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_parses() {
        assert_eq!(parse_device("cpu").ok(), Some(Device::Cpu));
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(matches!(
            parse_device("tpu"),
            Err(ModelError::InvalidArgument(_))
        ));
        assert!(matches!(
            parse_device("cuda:x"),
            Err(ModelError::InvalidArgument(_))
        ));
    }

    #[test]
    fn cuda_without_gpu_is_a_clear_error() {
        if !tch::Cuda::is_available() {
            assert!(matches!(
                parse_device("cuda"),
                Err(ModelError::DeviceUnavailable { .. })
            ));
        }
    }
}
