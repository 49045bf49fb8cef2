//! Knowledge-neuron selection, refinement and statistics
