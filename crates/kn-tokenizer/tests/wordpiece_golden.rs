//! WordPiece against `transformers.BertTokenizer` ids (fixtures/golden/wordpiece_tokens.json),
//! cased and uncased vocabularies.

mod common;

use common::{fixture, ids, read_json};
use kn_tokenizer::{Tokenizer, WordPiece};
use serde_json::Value;

fn check(name: &str, lowercase: bool) {
    let g = read_json("golden/wordpiece_tokens.json");
    let reference = &g["reference"][name];
    let vocab_path = fixture(
        reference["vocab"]
            .as_str()
            .expect("vocab")
            .trim_start_matches("fixtures/"),
    );
    let tok = WordPiece::from_vocab_file(&vocab_path, lowercase, lowercase).expect("load vocab");
    assert_eq!(
        tok.vocab_size() as u64,
        reference["vocab_size"].as_u64().expect("size")
    );
    let sid = |t: &str| reference["special_ids"][t].as_u64().map(|x| x as u32);
    assert_eq!(tok.pad_id(), sid("[PAD]"));
    assert_eq!(Some(tok.unk_id()), sid("[UNK]"));
    assert_eq!(tok.cls_id(), sid("[CLS]"));
    assert_eq!(tok.sep_id(), sid("[SEP]"));
    assert_eq!(tok.mask_id(), sid("[MASK]"));

    let cases = g["cases"].as_array().expect("cases");
    assert!(cases.iter().filter(|c| c["kind"] == "pararel").count() >= 100);
    let mut bad = Vec::new();
    for case in cases {
        let prompt = case["prompt"].as_str().expect("prompt");
        let want = ids(&case[format!("{name}_ids").as_str()]);
        match tok.encode(prompt) {
            Ok(got) if got == want => {}
            Ok(got) => {
                let toks: Vec<&str> = got
                    .iter()
                    .map(|&i| tok.id_to_token(i).unwrap_or("?"))
                    .collect();
                bad.push(format!(
                    "{prompt:?}: got {toks:?}, want {:?}",
                    case[format!("{name}_tokens").as_str()]
                ));
            }
            Err(e) => bad.push(format!("{prompt:?}: error {e}")),
        }
        let want_decoded = &case[format!("{name}_decoded").as_str()];
        match tok.decode(&want) {
            Ok(d) if Value::String(d.clone()) == *want_decoded => {}
            Ok(d) => bad.push(format!(
                "decode of {prompt:?}: got {d:?}, want {want_decoded}"
            )),
            Err(e) => bad.push(format!("decode of {prompt:?}: error {e}")),
        }
    }
    assert!(
        bad.is_empty(),
        "{name}: {} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn cased_matches_transformers() {
    check("cased", false);
}

#[test]
fn uncased_matches_transformers() {
    check("uncased", true);
}

#[test]
fn mask_in_text_is_the_mask_id() {
    let tok = WordPiece::from_vocab_file(&fixture("tokenizer/bert-vocab-cased.txt"), false, false)
        .expect("load");
    let ids = tok
        .encode("The capital of France is [MASK].")
        .expect("encode");
    assert!(ids.contains(&tok.mask_id().expect("mask")));
    assert!(
        !ids.contains(&tok.cls_id().expect("cls")),
        "encode must not add [CLS]"
    );
    assert!(
        !ids.contains(&tok.sep_id().expect("sep")),
        "encode must not add [SEP]"
    );
}
