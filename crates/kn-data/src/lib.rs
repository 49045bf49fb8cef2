//! PARAREL and BINGREL datasets and user fact files
