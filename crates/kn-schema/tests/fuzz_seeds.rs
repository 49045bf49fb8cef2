//! Replays the committed seeds of the `neurons_jsonl` fuzz target (`fuzz/seeds/neurons_jsonl`)
//! without libFuzzer, through the one reader of `neurons.jsonl`.

use kn_schema::{parse_neurons, TornTail};
use std::path::Path;

#[test]
fn the_seeds_read_as_a_run_and_a_torn_one_is_repaired() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/neurons_jsonl");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let whole = parse_neurons(&read("three-facts.jsonl"), Path::new("n"), TornTail::Read).unwrap();
    assert_eq!(whole.records.len(), 3);
    let torn_text = read("torn-tail.jsonl");
    let torn = parse_neurons(&torn_text, Path::new("n"), TornTail::Drop).unwrap();
    assert!(torn.torn_tail && torn.records.len() == 1);
    assert!(torn_text[..torn.whole_bytes].ends_with('\n'));
    assert!(parse_neurons(&torn_text, Path::new("n"), TornTail::Read).is_err());
}
