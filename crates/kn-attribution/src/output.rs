//! Writing a score matrix to disk: NumPy `.npy` (float32, C order) or JSON
//! (`{"layers": [...], "scores": [[...], ...]}`), chosen by the file extension. Files are
//! written to a temporary sibling and renamed, so a failed write never leaves half a file.

use ndarray::Array2;
use std::path::Path;

/// Errors while saving scores.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The extension is neither `.npy` nor `.json`.
    #[error("cannot save scores to {0}: use a .npy or .json file name")]
    UnknownFormat(String),
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The target file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The bytes of a `.npy` (format 1.0) file holding `scores` as little-endian float32, in C
/// order (`kn_schema::npy::npy_bytes`, the project's one `.npy` writer).
pub fn npy_bytes(scores: &Array2<f32>) -> Vec<u8> {
    let (rows, cols) = scores.dim();
    // `iter` walks the logical row-major order whatever the array's memory layout.
    kn_schema::npy::npy_bytes(rows, cols, scores.iter().copied())
}

/// Saves `scores` (row `r` = layer `layers[r]`) as `.npy` or `.json` according to `path`.
pub fn save_scores(path: &Path, layers: &[usize], scores: &Array2<f32>) -> Result<(), SaveError> {
    let name = path.display().to_string();
    let bytes = match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => npy_bytes(scores),
        Some("json") => {
            let rows: Vec<Vec<f32>> = scores.outer_iter().map(|row| row.to_vec()).collect();
            let value = serde_json::json!({ "layers": layers, "scores": rows });
            value.to_string().into_bytes()
        }
        _ => return Err(SaveError::UnknownFormat(name)),
    };
    write_atomically(path, &bytes).map_err(|source| SaveError::Io { path: name, source })
}

/// The project's one atomic writer (see `kn_schema::atomic`), re-exported where it always was.
pub use kn_schema::write_atomically;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_data_follows() {
        let scores = Array2::from_shape_vec((2, 3), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let bytes = npy_bytes(&scores);
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        assert!(std::str::from_utf8(&bytes[10..10 + header_len])
            .unwrap()
            .contains("'shape': (2, 3)"));
        assert_eq!(bytes.len(), 10 + header_len + 24);
        assert_eq!(
            &bytes[10 + header_len..10 + header_len + 4],
            &1f32.to_le_bytes()
        );
    }

    #[test]
    fn unknown_extension_is_refused() {
        let scores = Array2::zeros((1, 1));
        assert!(matches!(
            save_scores(Path::new("/tmp/x.csv"), &[0], &scores),
            Err(SaveError::UnknownFormat(_))
        ));
    }

    #[test]
    fn json_round_trips() {
        let dir = std::env::temp_dir().join(format!("kn-save-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.json");
        let scores = Array2::from_shape_vec((1, 2), vec![0.5, -1.0]).unwrap();
        save_scores(&path, &[7], &scores).unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(value["layers"][0], 7);
        assert_eq!(value["scores"][0][1], -1.0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
