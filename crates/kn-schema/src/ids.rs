//! The rules for identifiers that come from data files and end up in file names and terminal
//! output: relation ids (`P36`, a user's `capital`) and fact ids (`RELATION:INDEX`).
//!
//! A relation id names files (`patterns/P36.jsonl`, `scores/P36_12.npy`), so it must not be able
//! to leave the directory it names a file in: no path separators, no leading dot (so neither
//! `.` nor `..`), no NUL or other control characters, at most [`MAX_RELATION_ID_BYTES`] bytes.

/// The longest relation id accepted.
pub const MAX_RELATION_ID_BYTES: usize = 128;

/// Checks a relation id against the rules above; the error says which one it breaks.
pub fn check_relation_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("a relation id cannot be empty".into());
    }
    if id.len() > MAX_RELATION_ID_BYTES {
        return Err(format!(
            "relation id of {} bytes is longer than {MAX_RELATION_ID_BYTES}",
            id.len()
        ));
    }
    if id.starts_with('.') {
        return Err(format!(
            "relation id {:?} starts with a dot (ids name files)",
            id
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|&c| c == '/' || c == '\\' || c.is_control())
    {
        return Err(format!(
            "relation id {id:?} holds {c:?}: ids name files, so path separators and control characters are refused"
        ));
    }
    Ok(())
}

/// Splits a fact id `RELATION:INDEX` (the last `:` separates the index) and checks both parts.
pub fn parse_fact_id(id: &str) -> Result<(&str, usize), String> {
    let bad = |why: &str| format!("fact id {id:?} is not RELATION:INDEX ({why})");
    let (relation, index) = id.rsplit_once(':').ok_or_else(|| bad("no ':'"))?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("the index is not a number"));
    }
    let index = index
        .parse::<usize>()
        .map_err(|_| bad("the index is too large"))?;
    check_relation_id(relation).map_err(|why| bad(&why))?;
    Ok((relation, index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ordinary_ids_pass() {
        for id in ["P36", "P1001", "capital", "born in", "wd:P36", "x-y_z.2"] {
            check_relation_id(id).unwrap();
        }
        assert_eq!(parse_fact_id("P36:12").unwrap(), ("P36", 12));
        assert_eq!(parse_fact_id("wd:P36:0").unwrap(), ("wd:P36", 0));
    }

    #[test]
    fn path_like_ids_are_refused() {
        for id in [
            "",
            ".",
            "..",
            "../../../x",
            "a/b",
            "a\\b",
            ".hidden",
            "a\u{0}b",
            "a\nb",
        ] {
            assert!(check_relation_id(id).is_err(), "{id:?}");
        }
        for id in [
            "garbage",
            "P36:",
            "P36:x",
            ":1",
            "../x:1",
            "P36:99999999999999999999999",
        ] {
            assert!(parse_fact_id(id).is_err(), "{id:?}");
        }
    }

    proptest! {
        /// Whatever is accepted stays inside the directory it names a file in.
        #[test]
        fn accepted_relation_ids_name_a_single_path_component(id in "\\PC{0,40}") {
            if check_relation_id(&id).is_ok() {
                let path = std::path::Path::new("base").join(format!("{id}.jsonl"));
                let components: Vec<_> = path.components().collect();
                prop_assert_eq!(components.len(), 2);
                prop_assert!(matches!(components[1], std::path::Component::Normal(_)));
            }
        }
    }
}
