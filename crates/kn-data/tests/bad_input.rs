//! Bad input: missing files, malformed JSON, unknown relations, misaligned or malformed BINGREL.

mod common;

use common::{copy_dir, Scratch};
use kn_data::{Bingrel, DataError, Pararel, UserFacts};

/// A scratch copy of the bundled PARAREL to damage.
fn pararel_copy() -> Scratch {
    let s = Scratch::new();
    copy_dir(&Pararel::bundled_dir(), s.path());
    s
}

#[test]
fn missing_directory() {
    let s = Scratch::new();
    let dir = s.path().join("nope");
    match Pararel::load(&dir) {
        Err(DataError::NotFound { path }) => assert_eq!(path, dir),
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_files_are_named() {
    for file in ["query_pairs.json", "relations.jsonl", "patterns/P36.jsonl"] {
        let s = pararel_copy();
        std::fs::remove_file(s.path().join(file)).unwrap();
        match Pararel::load(s.path()) {
            Err(e @ DataError::NotFound { .. }) => assert!(e.to_string().contains(file), "{e}"),
            other => panic!("{file}: {other:?}"),
        }
    }
}

#[test]
fn malformed_query_pairs() {
    let s = pararel_copy();
    s.write(
        "query_pairs.json",
        "{\n  \"P36\": [[\"France\", \"Paris\"],\n",
    );
    let e = Pararel::load(s.path()).unwrap_err();
    assert!(matches!(e, DataError::Json { .. }), "{e:?}");
    assert!(e.to_string().contains("line 3"), "{e}");
    // Right syntax, wrong shape: a pair with three members.
    s.write("query_pairs.json", r#"{"P36": [["France", "Paris", "x"]]}"#);
    assert!(matches!(
        Pararel::load(s.path()),
        Err(DataError::Json { .. })
    ));
}

#[test]
fn malformed_jsonl_lines_are_numbered() {
    let s = pararel_copy();
    let mut lines: Vec<String> = std::fs::read_to_string(s.path().join("relations.jsonl"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines[4] = "{\"relation\": \"P36\", ".into();
    s.write("relations.jsonl", &lines.join("\n"));
    match Pararel::load(s.path()) {
        Err(DataError::Line { line, message, .. }) => {
            assert_eq!(line, 5);
            assert!(message.starts_with("invalid JSON"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    lines[4] = r#"{"relation": "P36", "label": "capital"}"#.into();
    s.write("relations.jsonl", &lines.join("\n"));
    let e = Pararel::load(s.path()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: line 5: missing field \"type\"",
            s.path().join("relations.jsonl").display()
        )
    );
    lines[4] = r#"{"relation": "P36", "label": "capital", "type": "1-N"}"#.into();
    s.write("relations.jsonl", &lines.join("\n"));
    assert!(matches!(
        Pararel::load(s.path()),
        Err(DataError::Line { line: 5, .. })
    ));
}

#[test]
fn relation_without_metadata() {
    let s = pararel_copy();
    let text = std::fs::read_to_string(s.path().join("relations.jsonl")).unwrap();
    let kept: Vec<&str> = text.lines().filter(|l| !l.contains("\"P36\"")).collect();
    s.write("relations.jsonl", &kept.join("\n"));
    match Pararel::load(s.path()) {
        Err(DataError::MissingRelationMetadata { relation, .. }) => assert_eq!(relation, "P36"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_and_missing_templates() {
    let s = pararel_copy();
    s.write(
        "patterns/P36.jsonl",
        "{\"pattern\": \"[X] is [Y].\"}\n\n{\"pattern\": \"The capital is [Y].\"}\n",
    );
    match Pararel::load(s.path()) {
        Err(DataError::BadTemplate {
            line,
            pattern,
            reason,
            ..
        }) => {
            assert_eq!(line, 3);
            assert_eq!(pattern, "The capital is [Y].");
            assert!(reason.contains("[X]"));
        }
        other => panic!("{other:?}"),
    }
    s.write("patterns/P36.jsonl", "\n");
    assert!(matches!(
        Pararel::load(s.path()),
        Err(DataError::NoTemplates { .. })
    ));
    s.write("patterns/P36.jsonl", "{\"lemma\": \"capital\"}\n");
    match Pararel::load(s.path()) {
        Err(DataError::Line {
            line: 1, message, ..
        }) => assert_eq!(message, "missing field \"pattern\""),
        other => panic!("{other:?}"),
    }
}

#[test]
fn user_fact_file_errors() {
    let s = Scratch::new();
    let missing = s.path().join("facts.jsonl");
    assert!(matches!(
        UserFacts::load(&missing),
        Err(DataError::NotFound { .. })
    ));
    let good = r#"{"relation": "capital", "subject": "France", "object": "Paris", "templates": ["The capital of [X] is [Y]."]}"#;
    let bad = r#"{"relation": "capital", "subject": "Italy", "templates": ["The capital of [X] is [Y]."]}"#;
    let text = format!("{good}\n{good}\n\n{good}\n\n\n{bad}\n");
    let path = s.write("facts.jsonl", &text);
    let e = UserFacts::load(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}: line 7: missing field \"object\"", path.display())
    );
    let path = s.write("facts.jsonl", &format!("{good}\n{{not json}}\n"));
    match UserFacts::load(&path) {
        Err(DataError::Line {
            line: 2, message, ..
        }) => assert!(message.contains("invalid JSON at column 2"), "{message}"),
        other => panic!("{other:?}"),
    }
    let path = s.write("facts.jsonl", &format!("{good}\n"));
    let data = UserFacts::load(&path).unwrap();
    assert!(matches!(
        data.select().relations(&["P36"]),
        Err(DataError::UnknownRelation { .. })
    ));
}

#[test]
fn bingrel_missing_misaligned_malformed_and_empty() {
    let s = Scratch::new();
    match Bingrel::load_relation(s.path(), "P36", 703) {
        Err(e @ DataError::NotFound { .. }) => assert!(
            e.to_string().contains("final_distant_allbags_P36_new.json"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    let data = Pararel::load_bundled().unwrap();
    // The fixture holds 5 bags of P36, which has 703 facts.
    match Bingrel::load_for(&Bingrel::fixture_dir(), &data, "P36") {
        Err(
            e @ DataError::MisalignedBags {
                expected: 703,
                found: 5,
                ..
            },
        ) => {
            assert!(e.to_string().contains("misaligned"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Bingrel::load_for(s.path(), &data, "P17"),
        Err(DataError::UnknownRelation { .. })
    ));
    s.write(
        &Bingrel::file_name("P36"),
        "[{\"th_bags\": [], \"h_bags\": []},",
    );
    assert!(matches!(
        Bingrel::load_relation(s.path(), "P36", 1),
        Err(DataError::Json { .. })
    ));
    s.write(&Bingrel::file_name("P36"), "[{\"th_bags\": [\"a\"]}]");
    let e = Bingrel::load_relation(s.path(), "P36", 1).unwrap_err();
    assert!(e.to_string().contains("h_bags"), "{e}");
    s.write(&Bingrel::file_name("P36"), "{}");
    assert!(matches!(
        Bingrel::load_relation(s.path(), "P36", 0),
        Err(DataError::Json { .. })
    ));
    // Empty bags are valid, and an empty file aligns with a relation without facts.
    s.write(
        &Bingrel::file_name("P36"),
        "[{\"th_bags\": [], \"h_bags\": []}]",
    );
    let bags = Bingrel::load_relation(s.path(), "P36", 1).unwrap();
    assert_eq!(bags.sentence_counts(), (0, 0));
    s.write(&Bingrel::file_name("P36"), "[]");
    assert!(Bingrel::load_relation(s.path(), "P36", 0)
        .unwrap()
        .is_empty());
    assert!(matches!(
        Bingrel::load_relation(s.path(), "P36", 2),
        Err(DataError::MisalignedBags { found: 0, .. })
    ));
}

/// A compressed file that is not gzip, or not JSON inside, is an error naming the `.gz` file.
#[test]
fn a_broken_compressed_bingrel_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("final_distant_allbags_P36_new.json.gz");
    std::fs::write(&path, b"not gzip at all").unwrap();
    let error = Bingrel::load_relation(dir.path(), "P36", 1).unwrap_err();
    assert!(error.to_string().contains(".json.gz"), "{error}");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, b"[{oops").unwrap();
    std::fs::write(&path, encoder.finish().unwrap()).unwrap();
    let error = Bingrel::load_relation(dir.path(), "P36", 1).unwrap_err();
    assert!(matches!(error, DataError::Json { .. }), "{error:?}");
}
