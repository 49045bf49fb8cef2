//! Property: any sequence of edits (raw values, fact updates, erasures; on random neuron sets
//! of tiny-llama), undone in reverse order, gives back the original weights bit for bit; and a
//! single edit saved as a patch and re-applied reproduces the edited weights exactly.

mod common;

use common::*;
use kn_edit::{
    apply_patch, edit_value_slots, erase_neurons, update_tokens, EditHandle, ErasureValue,
    NeuronFrequencies, NeuronSet, Patch, UpdateConfig,
};
use kn_model::KnowledgeModel;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

#[derive(Debug, Clone)]
enum Edit {
    /// Raw values from a seed, with a magnitude exponent (covers tiny and huge floats).
    Values {
        neurons: Vec<(usize, usize)>,
        seed: u64,
        exponent: i32,
    },
    /// The update formula between two tokens.
    Update {
        neurons: Vec<(usize, usize)>,
        old: i64,
        new: i64,
        scale_by_norm: bool,
        lambda: f64,
    },
    /// Erasure with zeros or a token's embedding.
    Erase {
        neurons: Vec<(usize, usize)>,
        token: Option<i64>,
    },
}

fn neurons() -> impl Strategy<Value = Vec<(usize, usize)>> {
    proptest::collection::vec((0usize..3, 0usize..96), 1..12)
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (neurons(), any::<u64>(), -40i32..40).prop_map(|(neurons, seed, exponent)| Edit::Values {
            neurons,
            seed,
            exponent
        }),
        (
            neurons(),
            0i64..600,
            0i64..600,
            any::<bool>(),
            -10.0f64..10.0
        )
            .prop_filter("distinct tokens", |(_, a, b, _, _)| a != b)
            .prop_map(|(neurons, old, new, scale_by_norm, lambda)| Edit::Update {
                neurons,
                old,
                new,
                scale_by_norm,
                lambda
            }),
        (neurons(), proptest::option::of(0i64..600))
            .prop_map(|(neurons, token)| Edit::Erase { neurons, token }),
    ]
}

/// Deterministic finite pseudo-random values.
fn values(count: usize, seed: u64, exponent: i32) -> Vec<f32> {
    let mut state = seed | 1;
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            unit * 2f32.powi(exponent)
        })
        .collect()
}

fn apply(model: &mut dyn KnowledgeModel, edit: &Edit) -> EditHandle {
    match edit {
        Edit::Values {
            neurons,
            seed,
            exponent,
        } => {
            let set = NeuronSet::new(neurons.iter().copied());
            let v = values(set.len() * model.info().hidden_size, *seed, *exponent);
            edit_value_slots(model, set.as_slice(), &v, "proptest").unwrap()
        }
        Edit::Update {
            neurons,
            old,
            new,
            scale_by_norm,
            lambda,
        } => {
            let config = UpdateConfig {
                lambda_add: *lambda,
                scale_by_norm: *scale_by_norm,
                ..UpdateConfig::default()
            };
            let set = NeuronSet::new(neurons.iter().copied());
            update_tokens(
                model,
                &set,
                *old,
                *new,
                &NeuronFrequencies::default(),
                &config,
            )
            .unwrap()
            .handle
        }
        Edit::Erase { neurons, token } => {
            let value = token.map_or(ErasureValue::Zero, ErasureValue::Token);
            erase_neurons(
                model,
                &NeuronSet::new(neurons.iter().copied()),
                &value,
                "proptest",
            )
            .unwrap()
            .handle
        }
    }
}

#[test]
fn edits_undone_in_reverse_order_restore_the_weights_exactly() {
    let model = std::cell::RefCell::new(tiny_llama());
    let original = snapshot(model.borrow().as_ref());
    let mut runner = TestRunner::new(Config {
        cases: 64,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(edit(), 1..5), |edits| {
            let mut model = model.borrow_mut();
            let handles: Vec<EditHandle> = edits.iter().map(|e| apply(model.as_mut(), e)).collect();
            for handle in handles.iter().rev() {
                handle.restore(model.as_mut()).unwrap();
            }
            prop_assert!(
                same(&snapshot(model.as_ref()), &original),
                "weights differ after restoring {edits:?}"
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_saved_patch_reapplies_exactly() {
    let model = std::cell::RefCell::new(tiny_llama());
    let original = snapshot(model.borrow().as_ref());
    let mut runner = TestRunner::new(Config {
        cases: 32,
        ..Config::default()
    });
    runner
        .run(&edit(), |edit| {
            let mut model = model.borrow_mut();
            let handle = apply(model.as_mut(), &edit);
            let edited = snapshot(model.as_ref());
            let bytes = handle.patch().to_bytes().unwrap();
            handle.restore(model.as_mut()).unwrap();
            prop_assert!(same(&snapshot(model.as_ref()), &original));
            let again = apply_patch(model.as_mut(), &Patch::from_bytes(&bytes).unwrap()).unwrap();
            prop_assert!(
                same(&snapshot(model.as_ref()), &edited),
                "patch of {edit:?} differs"
            );
            again.restore(model.as_mut()).unwrap();
            prop_assert!(same(&snapshot(model.as_ref()), &original));
            Ok(())
        })
        .unwrap();
}
