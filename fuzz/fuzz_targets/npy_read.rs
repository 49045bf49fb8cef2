//! Fuzz target `npy_read`: feeds arbitrary bytes to the `.npy` reader of run directories
//! (`kn_report::npy::parse_npy`, which reads `scores/*.npy`). What parses must be consistent
//! (`rows * cols` values, every row readable); anything else must be an `NpyError`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(matrix) = kn_report::npy::parse_npy(data) {
        assert_eq!(Some(matrix.data.len()), matrix.rows.checked_mul(matrix.cols));
        for r in 0..matrix.rows.min(4) {
            assert_eq!(matrix.row(r).map(<[f32]>::len), Some(matrix.cols));
        }
        assert!(matrix.row(matrix.rows).is_none());
    }
});
