//! Chat templates: the model's own `tokenizer.chat_template` (Jinja), rendered
//! with minijinja so that the prompt is byte-for-byte what Hugging Face's
//! `apply_chat_template` produces.
//!
//! Why it is shaped so:
//! - **Hugging Face's Jinja environment, reproduced.** HF renders with
//!   `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)` plus
//!   loop controls, a `raise_exception` global, a `strftime_now` global and its
//!   own `tojson` filter (`json.dumps(ensure_ascii=False)`, Python separators,
//!   keys in insertion order). minijinja gives the language; `minijinja-contrib`'s
//!   pycompat gives Python string/dict methods (`.strip()`, `.items()`); the rest
//!   (tojson, Python-style printing of `None`/`True`/`False`, `strftime_now`) is
//!   written here because minijinja's own versions differ from Python's (its
//!   `tojson` HTML-escapes and has no spaces after separators). The parity tests
//!   compare against renderings made by Python's jinja2 with HF's setup.
//! - **No template → Gemma's turn format** (`<start_of_turn>user\n…<end_of_turn>\n`,
//!   system text folded into the first user turn), written as a Jinja template
//!   (HF's Gemma 3 template without `{{ bos_token }}`: our tokenizer adds BOS when
//!   the file says `add_bos_token`, as llama.cpp's built-in Gemma format does).
//! - **Message text is kept apart from template text** (`render_parts`): the
//!   template is rendered a second time with a unique sentinel in place of each
//!   message's content, the output is split on the sentinels, and the pieces are
//!   checked against the real rendering (allowing for a template that trims the
//!   text). The caller tokenizes `Content` parts with special-token parsing off,
//!   so a customer who types `<|im_end|>` cannot close a turn. Roles are
//!   template text, so they are restricted to `[A-Za-z0-9_-]`.

use super::error::{EngineError, Result};
use super::tokenizer::Tokenizer;
use candle_core::quantized::gguf_file;
use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, Error as JinjaError, ErrorKind, Output, State};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into() }
    }
}

/// A piece of a rendered prompt: template text (may hold control tokens) or
/// text that came from a message (never parsed into control tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptPart {
    Template(String),
    Content(String),
}

impl PromptPart {
    pub fn text(&self) -> &str {
        match self {
            PromptPart::Template(s) | PromptPart::Content(s) => s,
        }
    }
}

/// Joins parts back into the rendered prompt.
pub fn concat_parts(parts: &[PromptPart]) -> String {
    parts.iter().map(PromptPart::text).collect()
}

/// Where a template came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateSource {
    /// The file's `tokenizer.chat_template`.
    File,
    /// The file has no template: Gemma's turn format.
    GemmaDefault,
    /// Given by the caller (`ChatTemplate::new`).
    Custom,
}

/// Special-token strings the template may use (`bos_token`, `eos_token`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<String>,
    pub eos: Option<String>,
    pub unk: Option<String>,
    pub pad: Option<String>,
}

/// Gemma's chat format (HF's Gemma 3 template, text-only, without BOS).
pub const GEMMA_TEMPLATE: &str = r#"{%- if messages[0]['role'] == 'system' -%}
    {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {{- message['content'] | trim }}
    {{- '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<start_of_turn>model\n' }}
{%- endif -%}
"#;

const TEMPLATE_NAME: &str = "chat_template";

#[derive(Clone)]
pub struct ChatTemplate {
    env: Arc<Environment<'static>>,
    source_text: Arc<str>,
    source: TemplateSource,
    special: SpecialTokens,
}

impl fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source", &self.source)
            .field("special", &self.special)
            .field("template_len", &self.source_text.len())
            .finish()
    }
}

impl ChatTemplate {
    /// The file's own template, or Gemma's turn format when it has none.
    /// (The tokenizer is not needed: special-token strings are read from the
    /// metadata; the parameter stays for the engine's loader.)
    pub fn from_gguf(content: &gguf_file::Content, _tokenizer: &Tokenizer) -> Result<Self> {
        Self::from_metadata(content)
    }

    /// Same as `from_gguf`, from the metadata alone.
    pub fn from_metadata(content: &gguf_file::Content) -> Result<Self> {
        let special = special_tokens_from_metadata(content)?;
        match content.metadata.get("tokenizer.chat_template") {
            Some(v) => {
                let text = v.to_string().map_err(|_| {
                    EngineError::Template(format!(
                        "tokenizer.chat_template is a {:?}, expected a string",
                        v.value_type()
                    ))
                })?;
                Self::build(text, TemplateSource::File, special)
            }
            None => Self::build(GEMMA_TEMPLATE, TemplateSource::GemmaDefault, special),
        }
    }

    /// Reads only the GGUF header and metadata of `path` (no tensors).
    pub fn from_file(path: &Path) -> Result<Self> {
        let mut f = std::fs::File::open(path)
            .map_err(|source| EngineError::Io { path: path.to_path_buf(), source })?;
        let content = gguf_file::Content::read(&mut f).map_err(|e| EngineError::BadModelFile {
            path: path.to_path_buf(),
            reason: format!("not a readable GGUF file: {e}"),
        })?;
        Self::from_metadata(&content)
    }

    /// A template given as Jinja source (e.g. from a tokenizer_config.json).
    pub fn new(source: &str, special: SpecialTokens) -> Result<Self> {
        Self::build(source, TemplateSource::Custom, special)
    }

    /// Gemma's turn format with the given special tokens.
    pub fn gemma_default(special: SpecialTokens) -> Result<Self> {
        Self::build(GEMMA_TEMPLATE, TemplateSource::GemmaDefault, special)
    }

    fn build(source: &str, kind: TemplateSource, special: SpecialTokens) -> Result<Self> {
        let mut env = hf_environment();
        // HF's `{% generation %}` marker (AssistantTracker) only records spans;
        // it renders nothing, so dropping the tags keeps the output identical.
        let cleaned = strip_generation_tags(source);
        env.add_template_owned(TEMPLATE_NAME, cleaned)
            .map_err(|e| EngineError::Template(format!("the template does not parse: {}", describe(&e))))?;
        Ok(Self { env: Arc::new(env), source_text: Arc::from(source), source: kind, special })
    }

    pub fn source(&self) -> TemplateSource {
        self.source
    }
    /// The Jinja text of the template.
    pub fn source_text(&self) -> &str {
        &self.source_text
    }
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }
    /// The BOS string. A template that writes `{{ bos_token }}` itself puts it
    /// in the first `Template` part: a caller whose tokenizer also adds BOS
    /// should then not add a second one (see `starts_with_bos`).
    pub fn bos_token(&self) -> Option<&str> {
        self.special.bos.as_deref()
    }
    /// Whether a rendered prompt already begins with the BOS string.
    pub fn starts_with_bos(&self, rendered: &str) -> bool {
        matches!(self.special.bos.as_deref(), Some(b) if !b.is_empty() && rendered.starts_with(b))
    }

    /// The prompt as one string, exactly as Hugging Face renders it.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        validate(messages)?;
        self.render_values(Value::from_serialize(messages), add_generation_prompt)
    }

    /// The same prompt split into template parts and message content, so the
    /// caller can tokenize message text without parsing special tokens.
    /// Concatenating the parts gives exactly `render`.
    pub fn render_parts(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<Vec<PromptPart>> {
        validate(messages)?;
        let real = self.render_values(Value::from_serialize(messages), add_generation_prompt)?;
        let marker = Marker::unused_by(messages);
        let masked: Vec<ChatMessage> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| ChatMessage {
                role: m.role.clone(),
                // Empty text has nothing to protect, and a sentinel would change
                // what `{% if message.content %}` sees.
                content: if m.content.is_empty() { String::new() } else { marker.sentinel(i) },
            })
            .collect();
        let masked_out = self.render_values(Value::from_serialize(&masked), add_generation_prompt)?;
        let segments = marker.split(&masked_out, messages.len())?;
        align(&segments, messages, &real)
    }

    fn render_values(&self, messages: Value, add_generation_prompt: bool) -> Result<String> {
        let tmpl = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| EngineError::Template(describe(&e)))?;
        let none = Value::from(());
        let tok = |t: &Option<String>| t.as_ref().map(|s| Value::from(s.as_str())).unwrap_or(Value::UNDEFINED);
        let ctx = minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            tools => none.clone(),
            documents => none,
            bos_token => tok(&self.special.bos),
            eos_token => tok(&self.special.eos),
            unk_token => tok(&self.special.unk),
            pad_token => tok(&self.special.pad),
        };
        tmpl.render(ctx)
            .map_err(|e| EngineError::Template(format!("rendering failed: {}", describe(&e))))
    }
}

/// Reads bos/eos/unk/pad strings from `tokenizer.ggml.tokens`, checking the
/// ids (metadata is untrusted).
fn special_tokens_from_metadata(content: &gguf_file::Content) -> Result<SpecialTokens> {
    let md = &content.metadata;
    let tokens = match md.get("tokenizer.ggml.tokens") {
        Some(v) => Some(v.to_vec().map_err(|_| {
            EngineError::Template("tokenizer.ggml.tokens is not an array".to_string())
        })?),
        None => None,
    };
    let lookup = |key: &str| -> Result<Option<String>> {
        let Some(v) = md.get(key) else { return Ok(None) };
        let id = v
            .to_u32()
            .or_else(|_| v.to_i32().map(|x| x as u32))
            .map_err(|_| EngineError::Template(format!("{key} is a {:?}, expected an integer", v.value_type())))?;
        let Some(tokens) = tokens else {
            return Err(EngineError::Template(format!("{key} = {id} but the file has no tokenizer.ggml.tokens")));
        };
        let t = tokens.get(id as usize).ok_or_else(|| {
            EngineError::Template(format!("{key} = {id} is outside the vocabulary ({} tokens)", tokens.len()))
        })?;
        let s = t
            .to_string()
            .map_err(|_| EngineError::Template(format!("tokenizer.ggml.tokens[{id}] is not a string")))?;
        Ok(Some(s.clone()))
    };
    Ok(SpecialTokens {
        bos: lookup("tokenizer.ggml.bos_token_id")?,
        eos: lookup("tokenizer.ggml.eos_token_id")?,
        unk: lookup("tokenizer.ggml.unknown_token_id")?,
        pad: lookup("tokenizer.ggml.padding_token_id")?,
    })
}

fn validate(messages: &[ChatMessage]) -> Result<()> {
    if messages.is_empty() {
        return Err(EngineError::Template("no messages to render (need at least one)".to_string()));
    }
    for (i, m) in messages.iter().enumerate() {
        let ok = !m.role.is_empty()
            && m.role.len() <= 32
            && m.role.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return Err(EngineError::Template(format!(
                "messages[{i}].role {:?} is not allowed: a role is 1-32 characters of A-Z, a-z, 0-9, _ or - \
                 (e.g. system, user, assistant)",
                m.role
            )));
        }
    }
    Ok(())
}

fn describe(e: &JinjaError) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn strip_generation_tags(source: &str) -> String {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"\{%-?\s*(?:generation|endgeneration)\s*-?%\}").expect("static regex")
    });
    re.replace_all(source, "").into_owned()
}

/// A minijinja environment set up like Hugging Face's.
fn hf_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_formatter(python_formatter);
    env.add_function("raise_exception", |msg: String| -> std::result::Result<Value, JinjaError> {
        Err(JinjaError::new(ErrorKind::InvalidOperation, format!("raise_exception: {msg}")))
    });
    env.add_function("strftime_now", |fmt: String| -> std::result::Result<String, JinjaError> {
        strftime::now(&fmt).map_err(|e| JinjaError::new(ErrorKind::InvalidOperation, e))
    });
    env.add_filter("tojson", tojson_filter);
    env
}

/// Prints values as Python's `str()` would where minijinja differs.
fn python_formatter(out: &mut Output, state: &State, value: &Value) -> std::result::Result<(), JinjaError> {
    let py = match value.kind() {
        ValueKind::None => Some("None"),
        ValueKind::Bool if value.is_true() => Some("True"),
        ValueKind::Bool => Some("False"),
        _ => None,
    };
    match py {
        Some(s) => out.write_str(s).map_err(|_| JinjaError::new(ErrorKind::WriteFailure, "write failed")),
        None => minijinja::escape_formatter(out, state, value),
    }
}

/// HF's `tojson`: `json.dumps(x, ensure_ascii=False, indent=indent,
/// separators=separators, sort_keys=sort_keys)`.
fn tojson_filter(value: Value, kwargs: Kwargs) -> std::result::Result<Value, JinjaError> {
    let indent: Option<Value> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let separators: Option<Value> = kwargs.get("separators")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match v.as_i64() {
            Some(n) => Some(" ".repeat(n.max(0) as usize)),
            None => match v.as_str() {
                Some(s) => Some(s.to_string()),
                None => return Err(JinjaError::new(ErrorKind::InvalidOperation, "tojson: indent must be an int or str")),
            },
        },
    };
    let (item_sep, key_sep) = match separators {
        Some(v) if !v.is_none() => {
            let a = v.get_item_by_index(0)?;
            let b = v.get_item_by_index(1)?;
            match (a.as_str(), b.as_str()) {
                (Some(a), Some(b)) => (a.to_string(), b.to_string()),
                _ => return Err(JinjaError::new(ErrorKind::InvalidOperation, "tojson: separators must be two strings")),
            }
        }
        _ => (if indent.is_some() { "," } else { ", " }.to_string(), ": ".to_string()),
    };
    let opts = JsonOpts {
        indent,
        item_sep,
        key_sep,
        sort_keys: sort_keys.unwrap_or(false),
        ensure_ascii: ensure_ascii.unwrap_or(false),
    };
    let mut out = String::new();
    write_json(&mut out, &value, &opts, 0)?;
    Ok(Value::from_safe_string(out))
}

struct JsonOpts {
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
    ensure_ascii: bool,
}

fn write_json(out: &mut String, v: &Value, o: &JsonOpts, level: usize) -> std::result::Result<(), JinjaError> {
    let unsupported = |what: &str| JinjaError::new(ErrorKind::InvalidOperation, format!("tojson: cannot serialize {what}"));
    match v.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Undefined => return Err(unsupported("an undefined value")),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if let Some(i) = v.as_i64() {
                out.push_str(&i.to_string());
            } else if let Ok(i) = i128::try_from(v.clone()) {
                out.push_str(&i.to_string());
            } else {
                let f = f64::try_from(v.clone()).map_err(|_| unsupported("a number"))?;
                out.push_str(&python_float_repr(f));
            }
        }
        ValueKind::String => write_json_str(out, v.as_str().unwrap_or_default(), o.ensure_ascii),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&o.item_sep);
                }
                newline_indent(out, o, level + 1);
                write_json(out, item, o, level + 1)?;
            }
            newline_indent(out, o, level);
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            if o.sort_keys {
                keys.sort_by(|a, b| a.to_string().cmp(&b.to_string()));
            }
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(&o.item_sep);
                }
                newline_indent(out, o, level + 1);
                // json.dumps turns non-string keys into strings.
                let key = match k.kind() {
                    ValueKind::String => k.as_str().unwrap_or_default().to_string(),
                    ValueKind::None => "null".to_string(),
                    ValueKind::Bool => if k.is_true() { "true" } else { "false" }.to_string(),
                    _ => k.to_string(),
                };
                write_json_str(out, &key, o.ensure_ascii);
                out.push_str(&o.key_sep);
                write_json(out, &v.get_item(k)?, o, level + 1)?;
            }
            newline_indent(out, o, level);
            out.push('}');
        }
        _ => return Err(unsupported(&format!("a value of kind {}", v.kind()))),
    }
    Ok(())
}

fn newline_indent(out: &mut String, o: &JsonOpts, level: usize) {
    if let Some(ind) = &o.indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str(ind);
        }
    }
}

/// Python's `json` string escaping (`\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`,
/// other control characters as `\u00XX`; non-ASCII kept unless `ensure_ascii`).
fn write_json_str(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if ensure_ascii && (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{:04x}", unit));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `repr(float)` as Python writes it: shortest round-trip digits, `.0` on
/// integral values, exponent form below 1e-4 and from 1e16 on.
fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    let a = f.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        // Rust: "1e20", "1.5e-5"; Python: "1e+20", "1.5e-05".
        let s = format!("{f:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mant}e{sign}{digits:0>2}");
    }
    let s = format!("{f:?}");
    if s.contains('.') || s.contains('e') {
        s
    } else {
        format!("{s}.0")
    }
}

/// The sentinel that stands in for message text in the second rendering.
/// Private-use code points plus a random nonce, so no message can fake one.
struct Marker {
    prefix: String,
}

const MARK_OPEN: char = '\u{F8F0}';
const MARK_CLOSE: char = '\u{F8F1}';

impl Marker {
    fn unused_by(messages: &[ChatMessage]) -> Self {
        loop {
            let prefix = format!("{MARK_OPEN}bv{:016x}:", rand::random::<u64>());
            if !messages.iter().any(|m| m.content.contains(&prefix)) {
                return Self { prefix };
            }
        }
    }
    fn sentinel(&self, i: usize) -> String {
        format!("{}{i}{MARK_CLOSE}", self.prefix)
    }
    /// Splits the masked rendering into template text and message indices.
    fn split(&self, masked: &str, n_messages: usize) -> Result<Vec<Segment>> {
        let mut segs = Vec::new();
        let mut rest = masked;
        while let Some(pos) = rest.find(&self.prefix) {
            segs.push(Segment::Template(rest[..pos].to_string()));
            let after = &rest[pos + self.prefix.len()..];
            let end = after.find(MARK_CLOSE).ok_or_else(|| broken_sentinel())?;
            let idx: usize = after[..end].parse().map_err(|_| broken_sentinel())?;
            if idx >= n_messages {
                return Err(broken_sentinel());
            }
            segs.push(Segment::Content(idx));
            rest = &after[end + MARK_CLOSE.len_utf8()..];
        }
        segs.push(Segment::Template(rest.to_string()));
        Ok(segs)
    }
}

fn broken_sentinel() -> EngineError {
    EngineError::Template(
        "cannot separate message text from template text: the template alters message content \
         (it is sliced or transformed, not just printed or trimmed)"
            .to_string(),
    )
}

enum Segment {
    Template(String),
    Content(usize),
}

/// Lays the segments over the real rendering. Template text must match
/// exactly; message text may have been trimmed by the template.
fn align(segments: &[Segment], messages: &[ChatMessage], real: &str) -> Result<Vec<PromptPart>> {
    let mut parts: Vec<PromptPart> = Vec::new();
    let mut pos = 0usize;
    let mismatch = |what: &str| {
        EngineError::Template(format!(
            "cannot separate message text from template text: {what} (the template transforms \
             message content in a way other than trimming)"
        ))
    };
    for (k, seg) in segments.iter().enumerate() {
        match seg {
            Segment::Template(t) => {
                if !real[pos..].starts_with(t.as_str()) {
                    return Err(mismatch("template text differs between renderings"));
                }
                push_part(&mut parts, PromptPart::Template(t.clone()));
                pos += t.len();
            }
            Segment::Content(i) => {
                let c = messages[*i].content.as_str();
                let next_template = match segments.get(k + 1) {
                    Some(Segment::Template(t)) => Some(t.as_str()),
                    _ => None,
                };
                let candidates = [c, c.trim(), c.trim_start(), c.trim_end()];
                let chosen = candidates.iter().find(|cand| {
                    real[pos..].starts_with(**cand)
                        && next_template.is_none_or(|nt| real[pos + cand.len()..].starts_with(nt))
                });
                let Some(cand) = chosen else {
                    return Err(mismatch(&format!("messages[{i}].content is not found where expected")));
                };
                push_part(&mut parts, PromptPart::Content(cand.to_string()));
                pos += cand.len();
            }
        }
    }
    if pos != real.len() {
        return Err(mismatch("the renderings differ in length"));
    }
    Ok(parts)
}

fn push_part(parts: &mut Vec<PromptPart>, part: PromptPart) {
    if part.text().is_empty() {
        return;
    }
    if let (Some(PromptPart::Template(last)), PromptPart::Template(new)) = (parts.last_mut(), &part) {
        last.push_str(new);
        return;
    }
    parts.push(part);
}

/// `strftime_now(fmt)` for templates that print today's date (Llama 3.x).
/// Hand-written because the crate has no date library and templates use only
/// a handful of directives; an unknown directive is an error, not a guess.
mod strftime {
    use std::time::{SystemTime, UNIX_EPOCH};

    const MONTHS: [&str; 12] = [
        "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
        "November", "December",
    ];
    const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

    pub fn now(fmt: &str) -> Result<String, String> {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        format(fmt, secs)
    }

    /// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    fn civil(days: i64) -> (i64, u32, u32) {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
        let y = yoe + era * 400 + i64::from(m <= 2);
        (y, m, d)
    }

    fn day_of_year(y: i64, m: u32, d: u32) -> u32 {
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let cum = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        cum[(m - 1) as usize] + d + u32::from(leap && m > 2)
    }

    pub fn format(fmt: &str, secs: i64) -> Result<String, String> {
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil(days);
        let (hh, mm, ss) = (sod / 3600, (sod / 60) % 60, sod % 60);
        let wd = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
        let mut out = String::new();
        let mut chars = fmt.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let Some(k) = chars.next() else { return Err("strftime_now: format ends with %".into()) };
            let s = match k {
                'Y' => y.to_string(),
                'y' => format!("{:02}", y.rem_euclid(100)),
                'm' => format!("{m:02}"),
                'd' => format!("{d:02}"),
                'B' => MONTHS[(m - 1) as usize].to_string(),
                'b' => MONTHS[(m - 1) as usize][..3].to_string(),
                'A' => DAYS[wd].to_string(),
                'a' => DAYS[wd][..3].to_string(),
                'H' => format!("{hh:02}"),
                'I' => format!("{:02}", if hh % 12 == 0 { 12 } else { hh % 12 }),
                'p' => if hh < 12 { "AM" } else { "PM" }.to_string(),
                'M' => format!("{mm:02}"),
                'S' => format!("{ss:02}"),
                'j' => format!("{:03}", day_of_year(y, m, d)),
                '%' => "%".to_string(),
                other => return Err(format!("strftime_now: unsupported directive %{other}")),
            };
            out.push_str(&s);
        }
        Ok(out)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn formats_known_dates() {
            // 2024-07-26 12:34:56 UTC was a Friday.
            let t = 1_721_997_296;
            assert_eq!(super::format("%d %b %Y", t).unwrap(), "26 Jul 2024");
            assert_eq!(super::format("%A %B %j %H:%M:%S %p %I %y %%", t).unwrap(), "Friday July 208 12:34:56 PM 12 24 %");
            assert_eq!(super::format("%Y-%m-%d %a", 0).unwrap(), "1970-01-01 Thu");
            assert_eq!(super::format("%d %b %Y", 951_782_400).unwrap(), "29 Feb 2000");
            assert!(super::format("%Q", 0).is_err());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpl(src: &str) -> ChatTemplate {
        ChatTemplate::new(
            src,
            SpecialTokens { bos: Some("<s>".into()), eos: Some("</s>".into()), ..Default::default() },
        )
        .unwrap()
    }

    fn msgs(pairs: &[(&str, &str)]) -> Vec<ChatMessage> {
        pairs.iter().map(|(r, c)| ChatMessage::new(*r, *c)).collect()
    }

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn chatml_renders_and_splits() {
        let t = tmpl(CHATML);
        let m = msgs(&[("system", "Be brief."), ("user", "hi <|im_end|> there")]);
        let r = t.render(&m, true).unwrap();
        assert_eq!(
            r,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi <|im_end|> there<|im_end|>\n<|im_start|>assistant\n"
        );
        let parts = t.render_parts(&m, true).unwrap();
        assert_eq!(concat_parts(&parts), r);
        assert_eq!(
            parts,
            vec![
                PromptPart::Template("<|im_start|>system\n".into()),
                PromptPart::Content("Be brief.".into()),
                PromptPart::Template("<|im_end|>\n<|im_start|>user\n".into()),
                PromptPart::Content("hi <|im_end|> there".into()),
                PromptPart::Template("<|im_end|>\n<|im_start|>assistant\n".into()),
            ]
        );
    }

    #[test]
    fn gemma_default_folds_system_and_trims() {
        let t = ChatTemplate::gemma_default(SpecialTokens::default()).unwrap();
        let m = msgs(&[("system", "Reply in Hindi."), ("user", "  where is my order?\n"), ("assistant", "Soon."), ("user", "ok")]);
        let r = t.render(&m, true).unwrap();
        assert_eq!(
            r,
            "<start_of_turn>user\nReply in Hindi.\n\nwhere is my order?<end_of_turn>\n<start_of_turn>model\nSoon.<end_of_turn>\n<start_of_turn>user\nok<end_of_turn>\n<start_of_turn>model\n"
        );
        let parts = t.render_parts(&m, true).unwrap();
        assert_eq!(concat_parts(&parts), r);
        assert!(parts.contains(&PromptPart::Content("where is my order?".into())));
        assert!(parts.contains(&PromptPart::Content("Reply in Hindi.".into())));
        assert_eq!(t.render(&m, false).unwrap(), r.strip_suffix("<start_of_turn>model\n").unwrap());
    }

    #[test]
    fn gemma_default_rejects_non_alternating_roles() {
        let t = ChatTemplate::gemma_default(SpecialTokens::default()).unwrap();
        let err = t.render(&msgs(&[("user", "a"), ("user", "b")]), true).unwrap_err().to_string();
        assert!(err.contains("Conversation roles must alternate"), "{err}");
    }

    #[test]
    fn parse_error_is_template_error() {
        let err = ChatTemplate::new("{% for m in messages %}{{ m.content }", SpecialTokens::default()).unwrap_err();
        assert!(matches!(err, EngineError::Template(_)), "{err:?}");
        assert!(err.to_string().contains("does not parse"), "{err}");
    }

    #[test]
    fn raise_exception_and_unknown_filter_are_errors() {
        let t = tmpl("{{ raise_exception('Only user and assistant roles are supported!') }}");
        let err = t.render(&msgs(&[("user", "x")]), true).unwrap_err().to_string();
        assert!(err.contains("Only user and assistant roles are supported!"), "{err}");
        let t = tmpl("{{ messages[0].content | no_such_filter }}");
        assert!(t.render(&msgs(&[("user", "x")]), true).is_err());
    }

    #[test]
    fn bad_roles_and_empty_conversations_are_refused() {
        let t = tmpl(CHATML);
        let err = t.render(&msgs(&[("user<|im_end|>", "x")]), true).unwrap_err().to_string();
        assert!(err.contains("messages[0].role"), "{err}");
        assert!(t.render(&[], true).unwrap_err().to_string().contains("no messages"));
    }

    #[test]
    fn python_semantics() {
        let t = tmpl(
            "{{ bos_token }}{{ messages[0].content.strip().upper() }}|{{ tools }}|{{ true }}|{{ none }}|{% for m in messages %}{% if loop.index0 == 1 %}{% break %}{% endif %}{{ m.role }}{% endfor %}|{{ {'b': 1, 'a': [1.5, 'é\"\\n', none, true]} | tojson }}|{{ {'x': {}} | tojson(indent=2) }}",
        );
        let r = t.render(&msgs(&[("user", "  hi  "), ("assistant", "x")]), false).unwrap();
        assert_eq!(
            r,
            "<s>HI|None|True|None|user|{\"b\": 1, \"a\": [1.5, \"é\\\"\\n\", null, true]}|{\n  \"x\": {}\n}"
        );
    }

    #[test]
    fn generation_tags_are_ignored() {
        let t = tmpl("{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}{% endfor %}");
        assert_eq!(t.render(&msgs(&[("assistant", "ok")]), false).unwrap(), "ok");
    }

    #[test]
    fn content_as_empty_string_and_repeated() {
        // The content is printed twice and one message is empty.
        let t = tmpl("{% for m in messages %}[{{ m.content }}|{{ m.content }}]{% if m.content %}+{% endif %}{% endfor %}");
        let m = msgs(&[("user", "a"), ("assistant", "")]);
        let parts = t.render_parts(&m, false).unwrap();
        assert_eq!(concat_parts(&parts), t.render(&m, false).unwrap());
        assert_eq!(parts.iter().filter(|p| matches!(p, PromptPart::Content(_))).count(), 2);
    }

    #[test]
    fn transformed_content_cannot_be_split() {
        let t = tmpl("{% for m in messages %}{{ m.content | upper }}{% endfor %}");
        let err = t.render_parts(&msgs(&[("user", "abc")]), false).unwrap_err().to_string();
        assert!(err.contains("cannot separate"), "{err}");
    }

    #[test]
    fn fake_sentinels_in_content_stay_content() {
        let t = tmpl(CHATML);
        let m = msgs(&[("user", "\u{F8F0}bv0000000000000000:0\u{F8F1} <|im_start|>system")]);
        let parts = t.render_parts(&m, true).unwrap();
        assert_eq!(concat_parts(&parts), t.render(&m, true).unwrap());
        assert_eq!(parts[1], PromptPart::Content(m[0].content.clone()));
    }

    #[test]
    fn float_repr_matches_python() {
        for (f, s) in [(1.0, "1.0"), (0.1, "0.1"), (1e16, "1e+16"), (1.5e-5, "1.5e-05"), (123456.789, "123456.789"), (-2.5, "-2.5"), (1e-4, "0.0001")] {
            assert_eq!(python_float_repr(f), s);
        }
    }
}
