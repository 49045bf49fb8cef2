//! Means with standard errors and the T1/T2/T3 triple: the types of activations.json, defined
//! in kn-schema and re-exported here.

pub use kn_schema::report::stats::{Paired, SentenceKind, Summary, Triple};
