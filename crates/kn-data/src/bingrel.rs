//! The BINGREL corpus: web sentences about PARAREL facts, for the paper's activation experiment.
//!
//! One file per relation, `final_distant_allbags_<relation>_new.json` (the authors' file
//! names), holding a list aligned position by position with that relation's facts in
//! PARAREL's `query_pairs.json`; entry `i` is `{"th_bags": [...], "h_bags": [...]}` for fact
//! `RELATION:i`: sentences with both head and tail, and sentences with the head only. Either
//! list may be empty (1,409 facts have no head+tail sentence).
//!
//! The full corpus (66 MB) is not in the repository: download it (see `data/README.md`) and
//! pass its directory. `fixtures/bingrel/` holds a small excerpt for tests.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{io_error, read_to_string, DataError, Result};

/// The sentences of one fact.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactBags {
    /// Sentences containing both the head (subject) and the tail (object).
    pub th_bags: Vec<String>,
    /// Sentences containing the head only.
    pub h_bags: Vec<String>,
}

/// The bags of one relation, `bags[i]` belonging to fact `relation:i`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationBags {
    /// The relation id.
    pub relation: String,
    /// One entry per fact, in fact index order.
    pub bags: Vec<FactBags>,
}

impl RelationBags {
    /// The bags of fact `relation:index`.
    pub fn get(&self, index: usize) -> Option<&FactBags> {
        self.bags.get(index)
    }

    /// The number of facts covered.
    pub fn len(&self) -> usize {
        self.bags.len()
    }

    /// Whether the file held no bag.
    pub fn is_empty(&self) -> bool {
        self.bags.is_empty()
    }

    /// The total numbers of head+tail and head-only sentences.
    pub fn sentence_counts(&self) -> (usize, usize) {
        self.bags.iter().fold((0, 0), |(th, h), b| {
            (th + b.th_bags.len(), h + b.h_bags.len())
        })
    }
}

/// The most a compressed BINGREL file may expand to (the largest of the corpus is 2.7 MB).
const MAX_DECOMPRESSED_BYTES: u64 = 256 << 20;

/// A gzip-compressed text file, decompressed up to [`MAX_DECOMPRESSED_BYTES`].
fn read_gzip_to_string(path: &Path) -> Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|error| io_error(path, error))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .take(MAX_DECOMPRESSED_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|error| io_error(path, error))?;
    if text.len() as u64 > MAX_DECOMPRESSED_BYTES {
        return Err(io_error(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("expands to more than {MAX_DECOMPRESSED_BYTES} bytes"),
            ),
        ));
    }
    Ok(text)
}

/// The BINGREL loader.
#[derive(Debug, Clone, Copy)]
pub struct Bingrel;

impl Bingrel {
    /// The file name of a relation's bags: `final_distant_allbags_<relation>_new.json`.
    pub fn file_name(relation: &str) -> String {
        format!("final_distant_allbags_{relation}_new.json")
    }

    /// The path of a relation's file in `dir`.
    pub fn path(dir: &Path, relation: &str) -> PathBuf {
        dir.join(Self::file_name(relation))
    }

    /// The excerpt committed for tests (`fixtures/bingrel`: the first 5 bags of P36, P47 and
    /// P176, at most 4 head+tail and 3 head-only sentences each), located from this crate's
    /// source directory at compile time.
    pub fn fixture_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("..")
            .join("fixtures")
            .join("bingrel")
    }

    /// Loads a relation's bags and checks that there are `expected_facts` of them. The file may
    /// also be gzip-compressed, `<file name>.gz`, when the plain one is absent.
    ///
    /// Errors: [`DataError::NotFound`] naming the missing file, [`DataError::Json`] for a
    /// malformed file, [`DataError::MisalignedBags`] when the count differs.
    pub fn load_relation(
        dir: &Path,
        relation: &str,
        expected_facts: usize,
    ) -> Result<RelationBags> {
        let plain = Self::path(dir, relation);
        let compressed = dir.join(format!("{}.gz", Self::file_name(relation)));
        let (path, text) = if !plain.exists() && compressed.exists() {
            let text = read_gzip_to_string(&compressed)?;
            (compressed, text)
        } else {
            let text = read_to_string(&plain)?;
            (plain, text)
        };
        let bags: Vec<FactBags> = serde_json::from_str(&text).map_err(|error| DataError::Json {
            path: path.clone(),
            error,
        })?;
        if bags.len() != expected_facts {
            return Err(DataError::MisalignedBags {
                path,
                relation: relation.to_string(),
                expected: expected_facts,
                found: bags.len(),
            });
        }
        Ok(RelationBags {
            relation: relation.to_string(),
            bags,
        })
    }

    /// Loads a relation's bags, checked against the number of facts `dataset` has for it
    /// ([`DataError::UnknownRelation`] if it has none).
    pub fn load_for(dir: &Path, dataset: &Dataset, relation: &str) -> Result<RelationBags> {
        let expected = dataset.facts_of(relation)?.len();
        Self::load_relation(dir, relation, expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_follow_the_release() {
        assert_eq!(
            Bingrel::file_name("P36"),
            "final_distant_allbags_P36_new.json"
        );
    }

    #[test]
    fn loads_the_fixture_and_checks_alignment() {
        let dir = Bingrel::fixture_dir();
        let bags = Bingrel::load_relation(&dir, "P47", 5).unwrap();
        assert_eq!(bags.len(), 5);
        assert!(bags.get(3).unwrap().th_bags.is_empty());
        assert!(bags.get(5).is_none());
        match Bingrel::load_relation(&dir, "P47", 922) {
            Err(DataError::MisalignedBags {
                expected: 922,
                found: 5,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        match Bingrel::load_relation(&dir, "P999", 5) {
            Err(DataError::NotFound { path }) => {
                assert!(path.ends_with("final_distant_allbags_P999_new.json"))
            }
            other => panic!("{other:?}"),
        }
    }
}
