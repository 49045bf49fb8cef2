//! Umbrella crate: re-exports the knowledge-neuron libraries.
pub use kn_attribution as attribution;
pub use kn_model as model;
