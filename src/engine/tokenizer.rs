//! (being written by the tokenizer work) Tokenizer built from GGUF metadata.
//! The API below is the contract other engine modules code against.

use super::error::Result;
use candle_core::quantized::gguf_file;

#[derive(Debug, Clone)]
pub struct Tokenizer {}

impl Tokenizer {
    /// Builds the tokenizer from `tokenizer.ggml.*` metadata.
    pub fn from_gguf(_content: &gguf_file::Content) -> Result<Self> {
        unimplemented!("tokenizer being written")
    }
    /// Token ids of `text`, no BOS added. With `parse_special`, special-token
    /// strings in the text become their control ids; without, they are plain text.
    pub fn encode(&self, _text: &str, _parse_special: bool) -> Result<Vec<u32>> {
        unimplemented!()
    }
    /// Text of `ids`; special tokens are dropped when `skip_special`.
    pub fn decode(&self, _ids: &[u32], _skip_special: bool) -> String {
        unimplemented!()
    }
    /// The raw bytes a token stands for (byte-fallback tokens give their byte),
    /// for streaming detokenisation that emits only valid UTF-8.
    pub fn token_bytes(&self, _id: u32) -> Vec<u8> {
        unimplemented!()
    }
    pub fn vocab_size(&self) -> usize {
        unimplemented!()
    }
    pub fn token_to_id(&self, _token: &str) -> Option<u32> {
        unimplemented!()
    }
    pub fn id_to_token(&self, _id: u32) -> Option<&str> {
        unimplemented!()
    }
    pub fn bos_id(&self) -> Option<u32> {
        unimplemented!()
    }
    pub fn eos_id(&self) -> Option<u32> {
        unimplemented!()
    }
    /// Whether the model wants BOS prepended (`tokenizer.ggml.add_bos_token`).
    pub fn add_bos(&self) -> bool {
        unimplemented!()
    }
    /// End-of-generation ids: eos, eot, `<|im_end|>`, `<end_of_turn>`, … .
    pub fn eog_ids(&self) -> &[u32] {
        unimplemented!()
    }
    pub fn is_special(&self, _id: u32) -> bool {
        unimplemented!()
    }
}
