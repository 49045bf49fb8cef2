//! NumPy `.npy` files of attribution scores, the one writer and the one reader: `kn attribute
//! --out FILE.npy` and `kn discover --save-scores` (`DIR/scores/<fact>.npy`) write a 2-D
//! little-endian float32 array in C order, format version 1.0 ([`npy_bytes`]); the report reads
//! it back ([`read_npy`]; 2.0 and 3.0, which only widen the header length, are accepted too).
//!
//! Layout: the magic `\x93NUMPY`, a major and a minor version byte, the header length (`u16`
//! little-endian for 1.x, `u32` for 2.x/3.x), the header (a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (30, 1536), }`, padded with spaces and a
//! newline) and the raw data. Anything else (another dtype, Fortran order, not 2-D, a data
//! length that does not match the shape) is refused with an [`NpyError`] saying why.

use std::path::Path;

/// What is wrong with a `.npy` file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NpyError {
    /// The file does not start with `\x93NUMPY` or is shorter than its preamble.
    #[error("not a .npy file (no \\x93NUMPY magic)")]
    NotNpy,
    /// A format version other than 1.0, 2.0 or 3.0.
    #[error("unsupported .npy format version {0}.{1}")]
    Version(u8, u8),
    /// The header is cut short, not text, or not the expected dict literal.
    #[error("bad .npy header: {0}")]
    Header(String),
    /// The array is not float32 little-endian (`'<f4'`).
    #[error("unsupported dtype {0:?}: expected '<f4' (little-endian float32)")]
    Dtype(String),
    /// The array is in Fortran (column-major) order.
    #[error("Fortran-order arrays are not supported: expected C order")]
    FortranOrder,
    /// The array is not 2-D.
    #[error("expected a 2-D array, found shape {0:?}")]
    Shape(Vec<usize>),
    /// The data after the header is not `rows * cols * 4` bytes.
    #[error("data holds {found} bytes but shape {rows}x{cols} needs {expected}")]
    Length {
        /// Rows of the shape.
        rows: usize,
        /// Columns of the shape.
        cols: usize,
        /// Bytes the shape needs.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
}

/// A 2-D float32 array, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// `rows * cols` values, row after row.
    pub data: Vec<f32>,
}

impl Matrix {
    /// Row `r` (`None` past the last row).
    pub fn row(&self, r: usize) -> Option<&[f32]> {
        if r >= self.rows {
            return None;
        }
        self.data.get(r * self.cols..(r + 1) * self.cols)
    }
}

/// The scores file name of a fact: its id with `:` (and any path separator) replaced by `_`,
/// plus `.npy` (`P36:12` -> `P36_12.npy`).
pub fn scores_file_name(fact: &str) -> String {
    let stem: String = fact
        .chars()
        .map(|c| {
            if matches!(c, ':' | '/' | '\\') {
                '_'
            } else {
                c
            }
        })
        .collect();
    format!("{stem}.npy")
}

/// The scores file of `fact` in run directory `dir`: `dir/scores/<scores_file_name(fact)>`.
pub fn scores_path(dir: &Path, fact: &str) -> std::path::PathBuf {
    dir.join("scores").join(scores_file_name(fact))
}

/// Parses the bytes of a `.npy` file holding a 2-D `'<f4'` C-order array.
pub fn parse_npy(bytes: &[u8]) -> Result<Matrix, NpyError> {
    let magic = b"\x93NUMPY";
    if bytes.len() < 10 || !bytes.starts_with(magic) {
        return Err(NpyError::NotNpy);
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, header_start): (usize, usize) = match (major, minor) {
        (1, 0) => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        (2, 0) | (3, 0) => {
            let raw = bytes
                .get(8..12)
                .ok_or_else(|| NpyError::Header("cut short".into()))?;
            let len = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
            let len = usize::try_from(len).map_err(|_| NpyError::Header("too long".into()))?;
            (len, 12)
        }
        _ => return Err(NpyError::Version(major, minor)),
    };
    let data_start = header_start
        .checked_add(header_len)
        .ok_or_else(|| NpyError::Header("too long".into()))?;
    let header = bytes
        .get(header_start..data_start)
        .ok_or_else(|| NpyError::Header(format!("declares {header_len} bytes, file is shorter")))?;
    let header = std::str::from_utf8(header).map_err(|_| NpyError::Header("not text".into()))?;
    let fields = parse_header(header)?;
    if fields.descr != "<f4" {
        return Err(NpyError::Dtype(fields.descr));
    }
    if fields.fortran_order {
        return Err(NpyError::FortranOrder);
    }
    let (rows, cols) = match fields.shape.as_slice() {
        &[rows, cols] => (rows, cols),
        other => return Err(NpyError::Shape(other.to_vec())),
    };
    let data = &bytes[data_start..];
    let expected = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(4))
        .ok_or_else(|| NpyError::Shape(fields.shape.clone()))?;
    if data.len() != expected {
        return Err(NpyError::Length {
            rows,
            cols,
            expected,
            found: data.len(),
        });
    }
    let data = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Matrix { rows, cols, data })
}

/// A `.npy` file that could not be read, naming it.
#[derive(Debug, thiserror::Error)]
pub enum ReadNpyError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a 2-D float32 C-order `.npy` array.
    #[error("{path}: {source}")]
    Npy {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        source: NpyError,
    },
}

/// Reads and parses a `.npy` file (see [`parse_npy`]); errors name the file.
pub fn read_npy(path: &Path) -> Result<Matrix, ReadNpyError> {
    let bytes = std::fs::read(path).map_err(|source| ReadNpyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_npy(&bytes).map_err(|source| ReadNpyError::Npy {
        path: path.to_path_buf(),
        source,
    })
}

/// The bytes of a `.npy` (format 1.0) file holding `values` (`rows x cols`, row after row) as
/// little-endian float32 in C order, its header padded to a multiple of 64 bytes as NumPy
/// writes it. `values` must hold exactly `rows x cols` numbers (checked: a mismatch panics in
/// debug builds; the file would not read back).
pub fn npy_bytes(rows: usize, cols: usize, values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + header length (2) + header + '\n' must be a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + rows * cols * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    let start = bytes.len();
    for value in values {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    debug_assert_eq!(
        bytes.len() - start,
        rows * cols * 4,
        "npy_bytes: values != rows x cols"
    );
    bytes
}

/// The three keys of a `.npy` header.
#[derive(Debug, PartialEq)]
struct HeaderFields {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Parses the header dict literal: `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`
/// (keys in any order, single or double quotes, optional trailing commas, whitespace anywhere).
fn parse_header(header: &str) -> Result<HeaderFields, NpyError> {
    let bad = |what: &str| NpyError::Header(format!("{what} in {:?}", header.trim_end()));
    let mut p = Parser {
        rest: header.trim(),
    };
    p.expect('{').map_err(|_| bad("no '{'"))?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.skip_ws();
        if p.eat('}') {
            break;
        }
        let key = p.string().ok_or_else(|| bad("expected a quoted key"))?;
        p.expect(':').map_err(|_| bad("expected ':'"))?;
        match key.as_str() {
            "descr" => descr = Some(p.string().ok_or_else(|| bad("descr is not a string"))?),
            "fortran_order" => {
                fortran = Some(
                    p.boolean()
                        .ok_or_else(|| bad("fortran_order is not True/False"))?,
                )
            }
            "shape" => {
                shape = Some(
                    p.tuple()
                        .ok_or_else(|| bad("shape is not a tuple of integers"))?,
                )
            }
            _ => return Err(bad(&format!("unexpected key {key:?}"))),
        }
        p.skip_ws();
        if !p.eat(',') {
            p.expect('}').map_err(|_| bad("expected ',' or '}'"))?;
            break;
        }
    }
    if !p.rest.trim().is_empty() {
        return Err(bad("text after the dict"));
    }
    Ok(HeaderFields {
        descr: descr.ok_or_else(|| bad("no descr"))?,
        fortran_order: fortran.ok_or_else(|| bad("no fortran_order"))?,
        shape: shape.ok_or_else(|| bad("no shape"))?,
    })
}

/// A cursor over the header text.
struct Parser<'a> {
    rest: &'a str,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, c: char) -> Result<(), ()> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(())
        }
    }

    fn string(&mut self) -> Option<String> {
        self.skip_ws();
        let quote = self
            .rest
            .chars()
            .next()
            .filter(|c| *c == '\'' || *c == '"')?;
        let body = &self.rest[1..];
        let end = body.find(quote)?;
        let value = body[..end].to_string();
        self.rest = &body[end + 1..];
        Some(value)
    }

    fn boolean(&mut self) -> Option<bool> {
        self.skip_ws();
        for (word, value) in [("True", true), ("False", false)] {
            if let Some(rest) = self.rest.strip_prefix(word) {
                self.rest = rest;
                return Some(value);
            }
        }
        None
    }

    fn tuple(&mut self) -> Option<Vec<usize>> {
        if !self.eat('(') {
            return None;
        }
        let mut values = Vec::new();
        loop {
            if self.eat(')') {
                return Some(values);
            }
            self.skip_ws();
            let digits = self.rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            values.push(self.rest[..digits].parse().ok()?);
            self.rest = &self.rest[digits..];
            if !self.eat(',') {
                return self.eat(')').then_some(values);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The bytes of a version-1.0 `.npy` file with `header` (padded as NumPy does) and `data`.
    pub(crate) fn npy_with_header(header: &str, data: &[u8]) -> Vec<u8> {
        let mut header = header.to_string();
        let unpadded = 10 + header.len() + 1;
        header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    /// A `'<f4'` C-order `.npy` file of `rows` x `cols` values, as the writer makes it.
    fn npy_f32(rows: usize, cols: usize, values: &[f32]) -> Vec<u8> {
        npy_bytes(rows, cols, values.iter().copied())
    }

    #[test]
    fn reads_a_c_order_float32_matrix() {
        let bytes = npy_f32(2, 3, &[1.0, -2.0, 3.5, 4.0, 5.0, f32::MIN_POSITIVE]);
        assert_eq!(
            (10 + usize::from(u16::from_le_bytes([bytes[8], bytes[9]]))) % 64,
            0
        );
        let m = parse_npy(&bytes).unwrap();
        assert_eq!((m.rows, m.cols), (2, 3));
        assert_eq!(m.row(0).unwrap(), &[1.0, -2.0, 3.5]);
        assert_eq!(m.row(1).unwrap()[2], f32::MIN_POSITIVE);
        assert!(m.row(2).is_none());
    }

    #[test]
    fn header_variants_are_accepted() {
        let data = [0u8; 8];
        for header in [
            "{'shape': (1, 2), 'fortran_order': False, 'descr': '<f4'}",
            "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (1,2,)}",
            "{ 'descr' : '<f4' , 'fortran_order' : False , 'shape' : ( 1 , 2 ) , }",
        ] {
            let m = parse_npy(&npy_with_header(header, &data)).unwrap();
            assert_eq!((m.rows, m.cols), (1, 2), "{header}");
        }
        // Version 2.0: a 4-byte header length.
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }\n";
        let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
        bytes.extend_from_slice(&u32::try_from(header.len()).unwrap().to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&7f32.to_le_bytes());
        assert_eq!(parse_npy(&bytes).unwrap().data, vec![7.0]);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let four = [0u8; 4];
        let header = |descr: &str, fortran: &str, shape: &str| {
            format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}")
        };
        assert_eq!(parse_npy(b"PK\x03\x04 not numpy"), Err(NpyError::NotNpy));
        assert_eq!(parse_npy(b"\x93NUM"), Err(NpyError::NotNpy));
        let mut v9 = npy_f32(1, 1, &[1.0]);
        v9[6] = 9;
        assert_eq!(parse_npy(&v9), Err(NpyError::Version(9, 0)));
        assert_eq!(
            parse_npy(&npy_with_header(&header("<f8", "False", "(1, 1)"), &[0; 8])),
            Err(NpyError::Dtype("<f8".into()))
        );
        assert_eq!(
            parse_npy(&npy_with_header(&header(">f4", "False", "(1, 1)"), &four)),
            Err(NpyError::Dtype(">f4".into()))
        );
        assert_eq!(
            parse_npy(&npy_with_header(&header("<f4", "True", "(1, 1)"), &four)),
            Err(NpyError::FortranOrder)
        );
        assert_eq!(
            parse_npy(&npy_with_header(&header("<f4", "False", "(4,)"), &[0; 16])),
            Err(NpyError::Shape(vec![4]))
        );
        assert_eq!(
            parse_npy(&npy_with_header(
                &header("<f4", "False", "(1, 1, 1)"),
                &four
            )),
            Err(NpyError::Shape(vec![1, 1, 1]))
        );
        assert!(matches!(
            parse_npy(&npy_with_header(&header("<f4", "False", "(2, 2)"), &four)),
            Err(NpyError::Length {
                expected: 16,
                found: 4,
                ..
            })
        ));
        for broken in [
            "{'descr': '<f4', 'fortran_order': False}",
            "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1, 1)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, x)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), 'extra': 1}",
            "['descr', '<f4']",
            "{'descr': '<f4' 'fortran_order': False, 'shape': (1, 1)}",
        ] {
            assert!(
                matches!(
                    parse_npy(&npy_with_header(broken, &four)),
                    Err(NpyError::Header(_))
                ),
                "{broken}"
            );
        }
        // A header length past the end of the file.
        let mut short = npy_f32(1, 1, &[1.0]);
        short[8] = 0xff;
        short[9] = 0xff;
        assert!(matches!(parse_npy(&short), Err(NpyError::Header(_))));
        // Not UTF-8.
        let mut binary = npy_f32(1, 1, &[1.0]);
        binary[12] = 0xff;
        assert!(matches!(parse_npy(&binary), Err(NpyError::Header(_))));
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("P36_1.npy");
        std::fs::write(&path, b"garbage").unwrap();
        let error = read_npy(&path).unwrap_err();
        assert!(error.to_string().contains("P36_1.npy"), "{error}");
        let missing = read_npy(&dir.path().join("none.npy")).unwrap_err();
        assert!(missing.to_string().contains("none.npy"));
    }

    #[test]
    fn scores_names_replace_colons() {
        assert_eq!(scores_file_name("P36:12"), "P36_12.npy");
        assert_eq!(scores_file_name("a/b\\c"), "a_b_c.npy");
        assert_eq!(
            scores_path(Path::new("run"), "P1:2"),
            Path::new("run").join("scores").join("P1_2.npy")
        );
    }
}
