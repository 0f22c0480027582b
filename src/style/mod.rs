//! Brand style guides and the rule engine (placeholder: being written)
