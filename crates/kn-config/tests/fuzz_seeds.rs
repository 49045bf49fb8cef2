//! Replays the committed seeds of the `model_config` fuzz target (`fuzz/seeds/model_config`)
//! without libFuzzer: each reads or is refused without a panic, and the real configurations
//! among them read as expected.

use kn_config::{BertConfig, LlamaConfig};
use std::path::Path;

fn seeds() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/model_config");
    let mut seeds: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    seeds.sort();
    seeds
}

#[test]
fn every_seed_reads_or_is_refused_and_the_real_ones_read() {
    let seeds = seeds();
    assert!(seeds.len() >= 4);
    for (name, text) in &seeds {
        let llama = LlamaConfig::from_hf_json(text, false);
        let bert = BertConfig::from_json(text);
        match name.as_str() {
            "tiny-llama-4x.json" | "tiny-llama-5x.json" => {
                let config = llama.unwrap();
                assert_eq!(config.num_layers, 3);
                assert!(config.is_plain_llama());
            }
            "tiny-bert.json" => assert_eq!(bert.unwrap().num_hidden_layers, 3),
            "llama3-scaling.json" => assert!(matches!(
                llama.unwrap().positions,
                kn_config::decoder::Positions::Rotary { ref ropes, .. }
                    if matches!(ropes[0].scaling, kn_config::RopeScaling::Llama3 { .. })
            )),
            _ => {}
        }
    }
}
