//! Model architectures (placeholder: being written)
