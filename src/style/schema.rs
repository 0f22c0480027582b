//! Loading marketer-written YAML with every mistake reported at once.
//!
//! serde stops at the first error and forgets where it was. So a file is read
//! in three passes: `saphyr-parser`'s events (which carry line and column)
//! build a tree of positioned nodes; that tree is walked against the JSON
//! Schema that `schemars` generates from the Rust types — the same schema we
//! commit as `prompts/brand.schema.json` — collecting every unknown key,
//! missing key, wrong type and bad enum value with its key path and line;
//! only a clean tree is turned into a `serde_json::Value` and deserialised.
//! The schema walk also decides how a plain scalar is read (`2024` where text
//! is expected is the text "2024"), so a marketer never has to quote numbers.
//! Only the subset of JSON Schema that schemars emits for our types is
//! interpreted: `$ref`, `allOf`/`anyOf` (for `Option`), `type`, `enum`,
//! `properties`/`required`/`additionalProperties`, `items`, `minimum`.

use saphyr_parser::{Event, Parser, ScalarStyle, Span, SpannedEventReceiver};
use schemars::schema::{InstanceType, RootSchema, Schema, SchemaObject, SingleOrVec};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// One mistake in a YAML file: where it is and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GuideProblem {
    pub file: String,
    /// Key path such as `vocabulary.banned[2].term` (empty: the whole file).
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for GuideProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
        } else {
            write!(f, "{}:{}:{}: {}: {}", self.file, self.line, self.column, self.path, self.message)
        }
    }
}

/// A YAML node with its position (1-based line and column).
#[derive(Debug, Clone)]
pub struct Node {
    pub kind: NodeKind,
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Scalar { value: String, plain: bool },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    fn describe(&self) -> String {
        match &self.kind {
            NodeKind::Scalar { value, plain } if *plain && is_null(value) => "nothing".into(),
            NodeKind::Scalar { value, .. } => {
                let short: String = value.chars().take(40).collect();
                format!("`{short}{}`", if value.chars().count() > 40 { "…" } else { "" })
            }
            NodeKind::Seq(_) => "a list".into(),
            NodeKind::Map(_) => "a mapping".into(),
        }
    }

    fn key_name(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// The node at a key path (`a.b[2]["c d"]`), or the deepest one found.
    pub fn locate(&self, path: &str) -> &Node {
        let mut node = self;
        for seg in parse_path(path) {
            let next = match (&node.kind, seg) {
                (NodeKind::Map(entries), PathSeg::Key(k)) => {
                    entries.iter().find(|(key, _)| key.key_name() == Some(k.as_str())).map(|(_, v)| v)
                }
                (NodeKind::Seq(items), PathSeg::Index(i)) => items.get(i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }
}

enum PathSeg {
    Key(String),
    Index(usize),
}

fn parse_path(path: &str) -> Vec<PathSeg> {
    let mut out = Vec::new();
    let mut chars = path.char_indices().peekable();
    let mut cur = String::new();
    while let Some((_, c)) = chars.next() {
        match c {
            '.' => {
                if !cur.is_empty() {
                    out.push(PathSeg::Key(std::mem::take(&mut cur)));
                }
            }
            '[' => {
                if !cur.is_empty() {
                    out.push(PathSeg::Key(std::mem::take(&mut cur)));
                }
                if chars.peek().map(|(_, c)| *c) == Some('"') {
                    chars.next();
                    let mut k = String::new();
                    for (_, d) in chars.by_ref() {
                        if d == '"' {
                            break;
                        }
                        k.push(d);
                    }
                    // skip ']'
                    chars.next();
                    out.push(PathSeg::Key(k));
                } else {
                    let mut n = String::new();
                    for (_, d) in chars.by_ref() {
                        if d == ']' {
                            break;
                        }
                        n.push(d);
                    }
                    if let Ok(i) = n.parse() {
                        out.push(PathSeg::Index(i));
                    }
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(PathSeg::Key(cur));
    }
    out
}

/// Append a key to a path, quoting keys that are not plain identifiers.
pub fn join_key(path: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[\"{key}\"]"),
    }
}

fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

enum Frame {
    Seq(Node, Vec<Node>, usize),
    Map(Node, Vec<(Node, Node)>, Option<Node>, usize),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    anchors: HashMap<usize, Node>,
    problems: Vec<(usize, usize, String)>,
    done: bool,
}

impl Builder {
    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq(_, items, _)) => items.push(node),
            Some(Frame::Map(_, entries, pending, _)) => match pending.take() {
                None => {
                    if !matches!(node.kind, NodeKind::Scalar { .. }) {
                        self.problems.push((node.line, node.col, "expected a plain key, found a list or mapping used as a key".into()));
                    }
                    *pending = Some(node);
                }
                Some(key) => entries.push((key, node)),
            },
        }
    }
}

impl<'input> SpannedEventReceiver<'input> for Builder {
    fn on_event(&mut self, ev: Event<'input>, span: Span) {
        if self.done {
            return;
        }
        let at = |kind| Node { kind, line: span.start.line(), col: span.start.col() + 1 };
        match ev {
            Event::Scalar(value, style, anchor, _tag) => {
                let plain = matches!(style, ScalarStyle::Plain);
                self.finish(at(NodeKind::Scalar { value: value.into_owned(), plain }), anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq(at(NodeKind::Seq(vec![])), vec![], anchor)),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map(at(NodeKind::Map(vec![])), vec![], None, anchor)),
            Event::SequenceEnd => {
                if let Some(Frame::Seq(mut n, items, anchor)) = self.stack.pop() {
                    n.kind = NodeKind::Seq(items);
                    self.finish(n, anchor);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(mut n, entries, _, anchor)) = self.stack.pop() {
                    n.kind = NodeKind::Map(entries);
                    self.finish(n, anchor);
                }
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().unwrap_or_else(|| at(NodeKind::Scalar { value: String::new(), plain: true }));
                self.finish(node, 0);
            }
            Event::DocumentEnd => {
                if self.root.is_some() {
                    self.done = true;
                }
            }
            _ => {}
        }
    }
}

/// Parse YAML into a positioned tree. A syntax error stops the parse (YAML
/// cannot be read past it) and is returned as the only problem.
pub fn parse_tree(file: &str, text: &str) -> Result<Node, Vec<GuideProblem>> {
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut b, false) {
        return Err(vec![GuideProblem {
            file: file.into(),
            path: String::new(),
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: format!("YAML syntax error: {}", e.info()),
        }]);
    }
    if !b.problems.is_empty() {
        return Err(b.problems.into_iter().map(|(line, column, message)| GuideProblem { file: file.into(), path: String::new(), line, column, message }).collect());
    }
    b.root.ok_or_else(|| vec![GuideProblem { file: file.into(), path: String::new(), line: 1, column: 1, message: "the file is empty; expected a mapping of keys".into() }])
}

struct Validator<'a> {
    root: &'a RootSchema,
    problems: Vec<(String, usize, usize, String)>,
}

fn type_name(t: InstanceType) -> &'static str {
    match t {
        InstanceType::Null => "nothing",
        InstanceType::Boolean => "true or false",
        InstanceType::Object => "a mapping of keys",
        InstanceType::Array => "a list",
        InstanceType::Number => "a number",
        InstanceType::String => "text",
        InstanceType::Integer => "a whole number",
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let sub = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// "did you mean `x`?" for a near miss.
fn suggestion<'s>(word: &str, options: impl Iterator<Item = &'s str>) -> String {
    let best = options.map(|o| (edit_distance(&word.to_lowercase(), o), o)).min();
    match best {
        Some((d, o)) if d <= 2.max(word.len() / 3) => format!(" (did you mean `{o}`?)"),
        _ => String::new(),
    }
}

impl<'a> Validator<'a> {
    fn problem(&mut self, path: &str, node: &Node, msg: String) {
        self.problems.push((path.to_string(), node.line, node.col, msg));
    }

    fn resolve(&self, schema: &'a Schema) -> Option<&'a SchemaObject> {
        match schema {
            Schema::Bool(_) => None,
            Schema::Object(o) => match &o.reference {
                Some(r) => {
                    let name = r.rsplit('/').next().unwrap_or(r);
                    self.root.definitions.get(name).and_then(|s| self.resolve(s))
                }
                None => Some(o),
            },
        }
    }

    fn validate(&mut self, node: &Node, schema: &'a Schema, path: &str) -> Value {
        let Some(obj) = self.resolve(schema) else { return to_value_untyped(node) };
        if let Some(sub) = &obj.subschemas {
            if let Some(all) = &sub.all_of {
                if let Some(first) = all.first() {
                    return self.validate(node, first, path);
                }
            }
            let branches = sub.any_of.as_ref().or(sub.one_of.as_ref());
            if let Some(branches) = branches {
                let null_ok = branches.iter().any(|b| self.resolve(b).is_some_and(|o| allows(o, InstanceType::Null)));
                if null_ok && matches!(&node.kind, NodeKind::Scalar { value, plain: true } if is_null(value)) {
                    return Value::Null;
                }
                let mut best: Option<(Vec<_>, Value)> = None;
                for b in branches {
                    if self.resolve(b).is_some_and(|o| o.instance_type == Some(SingleOrVec::Single(Box::new(InstanceType::Null)))) {
                        continue;
                    }
                    let saved = std::mem::take(&mut self.problems);
                    let v = self.validate(node, b, path);
                    let found = std::mem::replace(&mut self.problems, saved);
                    if best.as_ref().is_none_or(|(p, _)| found.len() < p.len()) {
                        best = Some((found, v));
                    }
                }
                if let Some((p, v)) = best {
                    self.problems.extend(p);
                    return v;
                }
                return to_value_untyped(node);
            }
        }
        let types: Vec<InstanceType> = match &obj.instance_type {
            Some(SingleOrVec::Single(t)) => vec![**t],
            Some(SingleOrVec::Vec(v)) => v.clone(),
            None if obj.object.is_some() => vec![InstanceType::Object],
            None if obj.enum_values.is_some() => vec![InstanceType::String],
            None => return to_value_untyped(node),
        };
        let expected = || types.iter().filter(|t| **t != InstanceType::Null).map(|t| type_name(*t)).collect::<Vec<_>>().join(" or ");
        match &node.kind {
            NodeKind::Map(entries) => {
                if !types.contains(&InstanceType::Object) {
                    let msg = format!("expected {}, found {}", expected(), node.describe());
                    self.problem(path, node, msg);
                    return Value::Null;
                }
                let ov = obj.object.as_deref();
                let mut out = Map::new();
                for (k, v) in entries {
                    let key = k.key_name().unwrap_or_default().to_string();
                    let kpath = join_key(path, &key);
                    if out.contains_key(&key) {
                        self.problem(&kpath, k, format!("duplicate key `{key}`"));
                        continue;
                    }
                    let prop = ov.and_then(|o| o.properties.get(&key));
                    let value = match (prop, ov.and_then(|o| o.additional_properties.as_deref())) {
                        (Some(s), _) => self.validate(v, s, &kpath),
                        (None, Some(Schema::Bool(false))) => {
                            let known: Vec<&str> = ov.map(|o| o.properties.keys().map(String::as_str).collect()).unwrap_or_default();
                            let hint = suggestion(&key, known.iter().copied());
                            let msg = format!("unknown key `{key}`{hint}; expected one of: {}", known.join(", "));
                            self.problem(&kpath, k, msg);
                            continue;
                        }
                        (None, Some(s)) => self.validate(v, s, &kpath),
                        (None, None) => to_value_untyped(v),
                    };
                    out.insert(key, value);
                }
                if let Some(o) = ov {
                    for req in &o.required {
                        if !out.contains_key(req) && !entries.iter().any(|(k, _)| k.key_name() == Some(req)) {
                            let msg = format!("missing required key `{req}`");
                            self.problem(path, node, msg);
                        }
                    }
                }
                Value::Object(out)
            }
            NodeKind::Seq(items) => {
                if !types.contains(&InstanceType::Array) {
                    let msg = format!("expected {}, found {}", expected(), node.describe());
                    self.problem(path, node, msg);
                    return Value::Null;
                }
                let item_schema = obj.array.as_ref().and_then(|a| a.items.as_ref());
                Value::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, it)| {
                            let p = format!("{path}[{i}]");
                            match item_schema {
                                Some(SingleOrVec::Single(s)) => self.validate(it, s, &p),
                                _ => to_value_untyped(it),
                            }
                        })
                        .collect(),
                )
            }
            NodeKind::Scalar { value, plain } => {
                let v = self.scalar(value, *plain, &types, obj);
                match v {
                    Some(v) => {
                        if let Some(allowed) = &obj.enum_values {
                            if !allowed.contains(&v) {
                                let names: Vec<String> = allowed.iter().map(|a| a.as_str().map(String::from).unwrap_or_else(|| a.to_string())).collect();
                                let hint = suggestion(value, names.iter().map(String::as_str));
                                let msg = format!("expected one of: {}; found `{value}`{hint}", names.join(", "));
                                self.problem(path, node, msg);
                            }
                        }
                        if let (Value::Number(n), Some(num)) = (&v, &obj.number) {
                            let f = n.as_f64().unwrap_or_default();
                            if num.minimum.is_some_and(|m| f < m) {
                                let msg = format!("expected a number of at least {}, found {value}", num.minimum.unwrap_or_default());
                                self.problem(path, node, msg);
                            }
                        }
                        v
                    }
                    None => {
                        let msg = format!("expected {}, found {}", expected(), node.describe());
                        self.problem(path, node, msg);
                        Value::Null
                    }
                }
            }
        }
    }

    fn scalar(&self, value: &str, plain: bool, types: &[InstanceType], _obj: &SchemaObject) -> Option<Value> {
        if plain && is_null(value) {
            return types.contains(&InstanceType::Null).then_some(Value::Null);
        }
        if plain {
            if types.contains(&InstanceType::Boolean) {
                match value {
                    "true" | "True" | "TRUE" => return Some(Value::Bool(true)),
                    "false" | "False" | "FALSE" => return Some(Value::Bool(false)),
                    _ => {}
                }
            }
            if types.contains(&InstanceType::Integer) {
                if let Ok(i) = value.parse::<i64>() {
                    return Some(Value::from(i));
                }
            }
            if types.contains(&InstanceType::Number) {
                if let Ok(f) = value.parse::<f64>() {
                    return serde_json::Number::from_f64(f).map(Value::Number);
                }
            }
        }
        types.contains(&InstanceType::String).then(|| Value::String(value.to_string()))
    }
}

fn allows(o: &SchemaObject, t: InstanceType) -> bool {
    match &o.instance_type {
        Some(SingleOrVec::Single(x)) => **x == t,
        Some(SingleOrVec::Vec(v)) => v.contains(&t),
        None => false,
    }
}

fn to_value_untyped(node: &Node) -> Value {
    match &node.kind {
        NodeKind::Scalar { value, plain } => {
            if *plain {
                if is_null(value) {
                    return Value::Null;
                }
                if let Ok(b) = value.parse::<bool>() {
                    return Value::Bool(b);
                }
                if let Ok(i) = value.parse::<i64>() {
                    return Value::from(i);
                }
            }
            Value::String(value.clone())
        }
        NodeKind::Seq(items) => Value::Array(items.iter().map(to_value_untyped).collect()),
        NodeKind::Map(entries) => Value::Object(
            entries.iter().map(|(k, v)| (k.key_name().unwrap_or_default().to_string(), to_value_untyped(v))).collect(),
        ),
    }
}

/// A loaded file's positioned tree, kept to place later (semantic) problems.
#[derive(Debug, Clone)]
pub struct YamlDoc {
    pub file: String,
    pub root: Node,
}

impl YamlDoc {
    pub fn problem(&self, path: &str, message: impl Into<String>) -> GuideProblem {
        let n = self.root.locate(path);
        GuideProblem { file: self.file.clone(), path: path.to_string(), line: n.line, column: n.col, message: message.into() }
    }
}

/// The JSON Schema of a type, as we commit it and validate against it.
pub fn schema_of<T: JsonSchema>() -> RootSchema {
    schemars::schema_for!(T)
}

/// Read YAML text as `T`, reporting every schema problem with its position.
pub fn load_str<T: DeserializeOwned + JsonSchema>(file: &str, text: &str) -> Result<(T, YamlDoc), Vec<GuideProblem>> {
    let root = parse_tree(file, text)?;
    let schema = schema_of::<T>();
    let mut v = Validator { root: &schema, problems: Vec::new() };
    let top = Schema::Object(schema.schema.clone());
    let value = v.validate(&root, &top, "");
    let doc = YamlDoc { file: file.to_string(), root };
    if !v.problems.is_empty() {
        let mut ps: Vec<GuideProblem> = v
            .problems
            .into_iter()
            .map(|(path, line, column, message)| GuideProblem { file: file.to_string(), path, line, column, message })
            .collect();
        ps.sort_by(|a, b| (a.line, a.column).cmp(&(b.line, b.column)));
        ps.dedup();
        return Err(ps);
    }
    match serde_json::from_value::<T>(value) {
        Ok(t) => Ok((t, doc)),
        Err(e) => Err(vec![doc.problem("", format!("could not read the file: {e}"))]),
    }
}

/// Read a YAML file as `T`.
pub fn load_file<T: DeserializeOwned + JsonSchema>(path: &Path) -> Result<(T, YamlDoc), Vec<GuideProblem>> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&name, &text),
        Err(e) => Err(vec![GuideProblem { file: name, path: String::new(), line: 0, column: 0, message: format!("cannot read the file: {e}") }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, JsonSchema, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        term: String,
        #[serde(default)]
        count: Option<u32>,
    }

    #[derive(Debug, Deserialize, JsonSchema, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: String,
        items: Vec<Inner>,
        #[serde(default)]
        flag: bool,
    }

    #[test]
    fn reports_every_problem_with_lines() {
        let y = "name: 2024\nitems:\n  - term: a\n    cont: 3\n  - count: -1\nflag: maybe\nextra: 1\n";
        let errs = load_str::<Outer>("f.yaml", y).unwrap_err();
        let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            lines,
            vec![
                "f.yaml:4:5: items[0].cont: unknown key `cont` (did you mean `count`?); expected one of: count, term",
                "f.yaml:5:5: items[1]: missing required key `term`",
                "f.yaml:5:12: items[1].count: expected a number of at least 0, found -1",
                "f.yaml:6:7: flag: expected true or false, found `maybe`",
                "f.yaml:7:1: extra: unknown key `extra`; expected one of: flag, items, name",
            ]
        );
    }

    #[test]
    fn plain_numbers_read_as_text_where_text_is_expected() {
        let (o, _) = load_str::<Outer>("f", "name: 2024\nitems: []\n").unwrap();
        assert_eq!(o.name, "2024");
    }

    #[test]
    fn syntax_error_has_a_position() {
        let errs = load_str::<Outer>("f", "name: [a\nitems: x").unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.starts_with("YAML syntax error"), "{}", errs[0]);
        assert!(errs[0].line >= 1);
    }

    #[test]
    fn locate_paths() {
        let root = parse_tree("f", "a:\n  \"b c\":\n    - x\n    - y\n").unwrap();
        assert_eq!(root.locate("a[\"b c\"][1]").line, 4);
    }
}
