//! Fuzz target `neurons_jsonl`: feeds arbitrary text to the one reader of a run's
//! `neurons.jsonl` (`kn_schema::parse_neurons`), as a resumed run (torn last line dropped) and
//! as a reader (every line read). A file that parses must hold each fact once, with valid ids
//! filed under their own relation, and a consistent byte count; a failure must be an error
//! naming a line, never a panic.
#![no_main]

use kn_schema::{parse_fact_id, parse_neurons, TornTail};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for tail in [TornTail::Drop, TornTail::Read] {
        match parse_neurons(text, Path::new("neurons.jsonl"), tail) {
            Ok(file) => {
                assert!(file.whole_bytes <= text.len());
                assert!(text.is_char_boundary(file.whole_bytes));
                assert_eq!(file.records.len(), file.lines.len());
                let unique: BTreeSet<&str> = file.records.iter().map(|r| r.fact.as_str()).collect();
                assert_eq!(unique.len(), file.records.len(), "a fact counted twice");
                for record in &file.records {
                    let (relation, _) = parse_fact_id(&record.fact).expect("a valid id");
                    assert_eq!(relation, record.relation);
                }
            }
            Err(error) => assert!(error.to_string().contains("line ")),
        }
    }
});
