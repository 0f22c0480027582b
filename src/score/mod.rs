//! Tone-consistency scorers: each goal scored 0–100 with a one-line reason.
//! (This file holds only the politeness module here; the lead merges it with
//! the rest of the tone score.)

pub mod politeness;
