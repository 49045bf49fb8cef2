//! The float32 CPU tensors this crate's kernels compute on, read and written as slices.

use tch::{Device, Kind, TchError, Tensor};

/// A new contiguous float32 CPU tensor of `shape` whose values `fill` writes (it gets every
/// element, in row-major order); `Err` when libtorch cannot allocate it.
pub fn new_float_tensor(shape: &[i64], fill: impl FnOnce(&mut [f32])) -> Result<Tensor, TchError> {
    let tensor = Tensor::f_empty(shape, (Kind::Float, Device::Cpu))?;
    if tensor.numel() == 0 {
        // An empty tensor may have no storage to point into.
        fill(&mut []);
    } else {
        // SAFETY: `tensor` is a fresh contiguous float32 CPU tensor that nothing else refers
        // to until this function returns it.
        fill(unsafe { floats_mut(&tensor) });
    }
    Ok(tensor)
}

/// Whether this crate's element-wise kernels compute on `t`: float32, on the CPU,
/// contiguous, outside autograd (anything else goes to libtorch).
pub fn is_plain_float(t: &Tensor) -> bool {
    t.kind() == Kind::Float && t.device() == Device::Cpu && t.is_contiguous() && !t.requires_grad()
}

/// The elements of a tensor that [`is_plain_float`] accepts.
///
/// # Safety
/// `t` must be one [`is_plain_float`] accepts, and nothing may write to it while the slice lives.
pub unsafe fn floats(t: &Tensor) -> &[f32] {
    std::slice::from_raw_parts(t.data_ptr() as *const f32, t.numel())
}

/// The elements of a tensor that [`is_plain_float`] accepts, to write.
///
/// # Safety
/// As [`floats`], and nothing else may read or write `t` while the slice lives (a fresh tensor).
// A tensor handle is shared (`&Tensor`) while its storage is written: libtorch's model, which the
// safety contract above makes sound.
#[allow(clippy::mut_from_ref)]
pub unsafe fn floats_mut(t: &Tensor) -> &mut [f32] {
    std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, t.numel())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_tensors_are_filled_in_row_major_order() {
        let tensor = new_float_tensor(&[2, 3], |out| {
            for (i, slot) in out.iter_mut().enumerate() {
                *slot = i as f32;
            }
        })
        .unwrap();
        let values = Vec::<f32>::try_from(tensor.flatten(0, -1)).unwrap();
        assert_eq!(values, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!(is_plain_float(&tensor));
        let empty = new_float_tensor(&[0, 4], |out| assert!(out.is_empty())).unwrap();
        assert_eq!(empty.size(), [0, 4]);
        assert!(new_float_tensor(&[1 << 46], |_| {}).is_err());
    }
}
