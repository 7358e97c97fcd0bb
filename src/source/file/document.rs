//! Reading one document (a [`Piece`] of a file) as a `VirtualService`, reporting every problem at once.
//!
//! - A YAML error inside the document (syntax, a duplicate key, nesting or aliases beyond the parser's limits) makes
//!   the document unreadable, reported with its line in the file; the file's other documents are not affected.
//! - A field that cannot be read as its type (`weight: "3"`, an unknown field, a number beyond 64 bits) is one
//!   problem; the field is left out (or given a neutral stand-in when it is required) and the rest of the document
//!   is still read, so that validation reports the object's other problems too and the object still names the
//!   service it asks for (which is then held, not deleted, until it is fixed).
//! - Files are meant to mean the same under `kubectl apply`, so `metadata.name` is required and must be a name
//!   Kubernetes accepts, as must `metadata.namespace` when given.

use serde::de::{Deserialize, Deserializer, EnumAccess, Error as _, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde_path_to_error::Segment;
use serde_yaml::Value;
use serde_yaml::value::{Tag, TaggedValue};

use super::split::Piece;
use super::words::in_words;
use crate::api::v1alpha1::{API_VERSION, KIND};
use crate::api::validate::{dns_label_problem, dns_subdomain_problem};
use crate::api::{ObjectId, ValidationError, VirtualService};

/// What one document turned out to be.
#[derive(Debug)]
pub(crate) enum Document {
    /// Nothing (`---` alone, an empty file).
    Empty,
    /// Not a `VirtualService` of this API, or not readable as one at all: every problem found.
    Unreadable(Vec<ValidationError>),
    /// A `VirtualService`; `problems` are the fields that could not be read (left out or stood in for, never
    /// programmed: the object is invalid while there are any) and identity problems.
    Object {
        /// What was read.
        object: Box<VirtualService>,
        /// What could not be.
        problems: Vec<ValidationError>,
    },
}

/// Top-level fields of a manifest; anything else is most likely a misplaced spec field.
const TOP_LEVEL_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];

/// At most this many fields of one document are reported as unreadable before the rest of it is given up.
const MAX_UNREADABLE_FIELDS: usize = 32;

/// The tag given to an integer too large for 64 bits (the YAML parser hands it over as 128 bits, or not at all).
const OUT_OF_RANGE_TAG: &str = "!ipvs-reconciler/out-of-range";

/// `piece`, the `index`-th document of `path`, as a YAML value, or what is wrong with its YAML (lines counted in
/// the file; the error names the object when its metadata can be made out from its lines).
pub(crate) fn parse(unnamed: ObjectId, piece: &Piece<'_>) -> Result<Value, ValidationError> {
    // A byte-order mark after the `---` line (the document's own start) is dropped too; it cannot be anywhere else
    // at a line's start but inside a scalar, where YAML forbids it anyway.
    let unmarked;
    let piece = if piece.text.contains("\n\u{feff}") {
        unmarked = piece.text.replace("\n\u{feff}", "\n");
        &Piece { text: &unmarked, line_offset: piece.line_offset }
    } else {
        piece
    };
    let Some(document) = serde_yaml::Deserializer::from_str(piece.text).next() else { return Ok(Value::Null) };
    match Loose::deserialize(document) {
        Ok(Loose(value)) => Ok(value),
        Err(e) => {
            let message = e.to_string();
            let message = match (duplicate_key_of(&message), e.location()) {
                (Some(key), Some(at)) => duplicate_message(piece, &message, key, at.line(), at.column(), at.index()),
                _ => shift_lines(&positions_as_lines(&message, piece.text), piece.line_offset),
            };
            let (namespace, name) = guess_metadata(piece.text);
            let id = unnamed.named(namespace.as_deref(), name.as_deref());
            Err(ValidationError::new(id, "", format!("invalid YAML: {message}")))
        }
    }
}

/// Reads a parsed document (`id` names it) as a `VirtualService`.
pub(crate) fn read_value(id: &ObjectId, mut value: Value) -> Document {
    let unreadable =
        |field: &str, message: String| Document::Unreadable(vec![ValidationError::new(id.clone(), field, message)]);
    if let Err(e) = value.apply_merge() {
        return unreadable("", format!("invalid YAML merge key: {e}"));
    }
    let Value::Mapping(mapping) = &mut value else {
        return match value {
            Value::Null => Document::Empty,
            other => unreadable("", format!("expected a mapping (a {KIND} object), found {}", type_name(&other))),
        };
    };
    let text = |key: &str| mapping.get(key).and_then(Value::as_str).map(str::to_owned);
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    if kind.as_deref() != Some(KIND) || api_version.as_deref() != Some(API_VERSION) {
        let field = if kind.as_deref() != Some(KIND) { "kind" } else { "apiVersion" };
        let found = |v: Option<String>| v.map_or_else(|| "none".to_owned(), |v| format!("`{v}`"));
        return unreadable(
            field,
            format!(
                "expected kind {KIND} of apiVersion {API_VERSION}, found kind {} of apiVersion {}",
                found(kind),
                found(api_version)
            ),
        );
    }
    let mut problems = Vec::new();
    let unknown: Vec<Value> =
        mapping.keys().filter(|key| !key.as_str().is_some_and(|k| TOP_LEVEL_FIELDS.contains(&k))).cloned().collect();
    for key in unknown {
        let name = key.as_str().map_or_else(|| format!("{key:?}"), str::to_owned);
        let expected = TOP_LEVEL_FIELDS.join("`, `");
        problems.push(ValidationError::new(
            id.clone(),
            &name,
            format!("unknown field `{name}`, expected one of `{expected}`"),
        ));
        mapping.remove(&key);
    }
    problems.extend(identity_problems(id, mapping));
    if !mapping.contains_key("metadata") {
        mapping.insert(Value::from("metadata"), Value::Mapping(Default::default()));
    }
    for _ in 0..MAX_UNREADABLE_FIELDS {
        let error = match serde_path_to_error::deserialize::<_, VirtualService>(&value) {
            Ok(object) => return Document::Object { object: Box::new(object), problems },
            Err(error) => error,
        };
        let segments: Vec<Segment> = error.path().iter().cloned().collect();
        let message = error.inner().to_string();
        let (field, problem) = schema_error(&error, &value);
        // A required field of the wrong type is left out, then missed: one problem, the first.
        if !problems.iter().any(|p| p.field == field) {
            problems.push(ValidationError::new(id.clone(), &field, problem));
        }
        let patched = match message.strip_prefix("missing field `").and_then(|r| r.strip_suffix('`')) {
            Some(missing) => stand_in_for_missing(&mut value, &segments, missing),
            None => leave_out(&mut value, &segments),
        };
        if !patched {
            break;
        }
    }
    Document::Unreadable(problems)
}

/// A schema error of `value` (read as any type), as the field it names and what is wrong in words.
pub(crate) fn schema_error(error: &serde_path_to_error::Error<serde_yaml::Error>, value: &Value) -> (String, String) {
    let segments: Vec<Segment> = error.path().iter().cloned().collect();
    let message = error.inner().to_string();
    match message.strip_prefix("missing field `").and_then(|r| r.strip_suffix('`')) {
        Some(missing) => (join(&field_of(error.path()), missing), "required".to_owned()),
        None => (field_of(error.path()), in_words(&message, out_of_range_at(value, &segments))),
    }
}

/// Problems of `metadata.name` and `metadata.namespace` (when they are strings: other types are the schema's).
fn identity_problems(id: &ObjectId, document: &serde_yaml::Mapping) -> Vec<ValidationError> {
    let metadata = document.get("metadata");
    if metadata.is_some_and(|m| !m.is_mapping() && !m.is_null()) {
        // Not even a mapping: the schema says so, once.
        return Vec::new();
    }
    let text = |field: &str| metadata.and_then(|m| m.get(field));
    let mut problems = Vec::new();
    match text("name") {
        None | Some(Value::Null) => problems.push(ValidationError::new(
            id.clone(),
            "metadata.name",
            "required: every object needs a name (kubectl apply refuses one without it)",
        )),
        Some(Value::String(name)) => {
            if let Some(problem) = dns_subdomain_problem(name) {
                problems.push(ValidationError::new(
                    id.clone(),
                    "metadata.name",
                    format!("not a valid name: {problem}"),
                ));
            }
        }
        Some(_) => {}
    }
    if let Some(Value::String(namespace)) = text("namespace")
        && let Some(problem) = dns_label_problem(namespace)
    {
        problems.push(ValidationError::new(
            id.clone(),
            "metadata.namespace",
            format!("not a valid namespace: {problem}"),
        ));
    }
    problems
}

/// `a.b[0].c` of a path; empty for the document itself.
fn field_of(path: &serde_path_to_error::Path) -> String {
    let path = path.to_string();
    if path == "." { String::new() } else { path }
}

/// `a.b[0].c`, as serde_path_to_error writes a path.
fn path_text(segments: &[Segment]) -> String {
    let mut text = String::new();
    for segment in segments {
        match segment {
            Segment::Seq { index } => text.push_str(&format!("[{index}]")),
            Segment::Map { key } if text.is_empty() => text.push_str(key),
            Segment::Map { key } => text.push_str(&format!(".{key}")),
            Segment::Enum { variant } => text.push_str(&format!(".{variant}")),
            Segment::Unknown => text.push_str(".?"),
        }
    }
    text
}

fn join(parent: &str, field: &str) -> String {
    if parent.is_empty() { field.to_owned() } else { format!("{parent}.{field}") }
}

/// The value at `segments` (a map key or a list index each).
fn value_at_mut<'a>(value: &'a mut Value, segments: &[Segment]) -> Option<&'a mut Value> {
    let mut at = value;
    for segment in segments {
        at = match (segment, at) {
            (Segment::Map { key }, Value::Mapping(mapping)) => mapping.get_mut(key.as_str())?,
            (Segment::Seq { index }, Value::Sequence(items)) => items.get_mut(*index)?,
            _ => return None,
        };
    }
    Some(at)
}

/// The digits of an integer beyond 64 bits found at `segments`, if that is what is there.
fn out_of_range_at<'a>(value: &'a Value, segments: &[Segment]) -> Option<&'a str> {
    let mut at = value;
    for segment in segments {
        at = match (segment, at) {
            (Segment::Map { key }, Value::Mapping(mapping)) => mapping.get(key.as_str())?,
            (Segment::Seq { index }, Value::Sequence(items)) => items.get(*index)?,
            _ => return None,
        };
    }
    match at {
        Value::Tagged(tagged) if tagged.tag == Tag::new(OUT_OF_RANGE_TAG) => tagged.value.as_str(),
        _ => None,
    }
}

/// Leaves out the field at `segments` (an unknown field, or one of the wrong type) so that reading can go on: a
/// mapping's key is removed (the field is then absent; a required one is stood in for on the next round), a
/// list's item is replaced by nothing, and nothing else can be done. Returns whether something changed.
fn leave_out(value: &mut Value, segments: &[Segment]) -> bool {
    let Some((last, parent)) = segments.split_last() else { return false };
    match (last, value_at_mut(value, parent)) {
        (Segment::Map { key }, Some(Value::Mapping(mapping))) => mapping.remove(key.as_str()).is_some(),
        (Segment::Seq { index }, Some(Value::Sequence(items))) => match items.get_mut(*index) {
            // An item that is already nothing and still does not read: give it an empty mapping (a list item
            // of this schema is always an object).
            Some(item @ Value::Null) => {
                *item = Value::Mapping(Default::default());
                true
            }
            Some(item) if !is_empty_mapping(item) => {
                *item = Value::Null;
                true
            }
            _ => false,
        },
        _ => false,
    }
}

fn is_empty_mapping(value: &Value) -> bool {
    matches!(value, Value::Mapping(m) if m.is_empty())
}

/// Gives the mapping at `segments` a stand-in for its required field `missing`: the first of nothing, a string, a
/// number, a list and a mapping that reads. Returns whether one did.
fn stand_in_for_missing(value: &mut Value, segments: &[Segment], missing: &str) -> bool {
    let candidates = [
        Value::from(""),
        Value::from(0),
        Value::Bool(false),
        Value::Sequence(Vec::new()),
        Value::Mapping(Default::default()),
    ];
    let field = join(&path_text(segments), missing);
    for candidate in candidates {
        let Some(Value::Mapping(mapping)) = value_at_mut(value, segments) else { return false };
        mapping.insert(Value::from(missing), candidate);
        match serde_path_to_error::deserialize::<_, VirtualService>(&*value) {
            Ok(_) => return true,
            Err(e) if e.path().to_string() != field => return true,
            Err(_) => {}
        }
    }
    false
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// The key named by a duplicate-key error of [`Loose`].
fn duplicate_key_of(message: &str) -> Option<&str> {
    let rest = &message[message.find("duplicate key `")? + "duplicate key `".len()..];
    Some(&rest[..rest.find('`')?])
}

/// The parser places a duplicate key's error at the start of its mapping: find the key's second occurrence among
/// the mapping's keys (the lines indented as its first key, from there on) and name both lines.
fn duplicate_message(piece: &Piece<'_>, message: &str, key: &str, line: usize, column: usize, start: usize) -> String {
    let indent = column.saturating_sub(1);
    let is_key_line = |text: &str| {
        let Some(rest) = text.get(indent..) else { return false };
        let leading = text.get(..indent).is_some_and(|l| l.chars().all(|c| c == ' ' || c == '-'));
        let rest = rest.trim_start_matches("- ");
        let name = rest.split_once(':').map(|(k, _)| k.trim().trim_matches(['"', '\'']));
        leading && name == Some(key)
    };
    let mut found = piece.text.lines().enumerate().skip(line.saturating_sub(1)).filter(|(_, text)| is_key_line(text));
    let path = message.split_once(": duplicate key").map(|(path, _)| path).filter(|p| !p.contains(' '));
    let at = path.map(|p| format!("{p}: ")).unwrap_or_default();
    let lines = match (found.next(), found.next()) {
        (Some((first, _)), Some((second, _))) => Some((first, second)),
        _ => flow_key_lines(piece.text, key, start),
    };
    match lines {
        Some((first, second)) => format!(
            "{at}duplicate key `{key}` at line {} (first at line {})",
            second + 1 + piece.line_offset,
            first + 1 + piece.line_offset
        ),
        _ => format!("{at}duplicate key `{key}` in the mapping at line {}", line + piece.line_offset),
    }
}

/// The lines (from 0) of the first two places after byte `at` where `key` is a key of a flow mapping (`{"port": 1,
/// "port": 2}`, JSON), for a duplicate the block layout did not show.
fn flow_key_lines(text: &str, key: &str, at: usize) -> Option<(usize, usize)> {
    let rest = text.get(at..)?;
    let mut places = Vec::new();
    for quote in ["\"", "'", ""] {
        let token = format!("{quote}{key}{quote}");
        for (offset, _) in rest.match_indices(&token) {
            let before = rest[..offset].chars().next_back();
            let after = rest[offset + token.len()..].trim_start_matches([' ', '\t']);
            let starts = before.is_none_or(|c| c.is_whitespace() || matches!(c, '{' | ','));
            if starts && after.starts_with(':') {
                places.push(at + offset);
            }
        }
    }
    places.sort_unstable();
    let line_of = |byte: usize| text[..byte].matches('\n').count();
    match places[..] {
        [first, second, ..] => Some((line_of(first), line_of(second))),
        _ => None,
    }
}

/// `message` with `at position N` (a byte of `text`, as the YAML reader reports bad characters) said as a line and
/// column.
fn positions_as_lines(message: &str, text: &str) -> String {
    let Some(at) = message.find("at position ") else { return message.to_owned() };
    let digits: String = message[at + "at position ".len()..].chars().take_while(char::is_ascii_digit).collect();
    let Ok(position) = digits.parse::<usize>() else { return message.to_owned() };
    let before = text.get(..position.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let end = at + "at position ".len() + digits.len();
    format!("{}at line {line} column {column}{}", &message[..at], &message[end..])
}

/// `message` with every `line N` moved down by `offset` lines (the parser counts from the document's start).
fn shift_lines(message: &str, offset: usize) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("line ") {
        let (before, after) = rest.split_at(at + "line ".len());
        out.push_str(before);
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// `metadata.namespace` and `metadata.name` of a document that does not parse, read off its lines when they are
/// plain (`metadata:` at column 0, then `  name: web`), so that even its syntax error names the object.
fn guess_metadata(text: &str) -> (Option<String>, Option<String>) {
    let (mut namespace, mut name) = (None, None);
    let mut in_metadata = false;
    for line in text.lines() {
        if !line.starts_with([' ', '\t']) {
            in_metadata = line.trim_end() == "metadata:";
            continue;
        }
        if !in_metadata {
            continue;
        }
        let Some((key, value)) = line.trim().split_once(':') else { continue };
        let value = value.trim().trim_matches(['"', '\'']);
        let plain = !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        match key {
            "name" if plain && name.is_none() => name = Some(value.to_owned()),
            "namespace" if plain && namespace.is_none() => namespace = Some(value.to_owned()),
            _ => {}
        }
    }
    (namespace, name)
}

/// A YAML value read like `serde_yaml::Value`, except that a key given twice in one mapping is an error that
/// names it, and an integer beyond 64 bits is kept (tagged) for a clear "out of range" instead of failing the
/// whole document as invalid YAML.
struct Loose(Value);

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LooseVisitor).map(Loose)
    }
}

struct LooseVisitor;

fn out_of_range(digits: String) -> Value {
    Value::Tagged(Box::new(TaggedValue { tag: Tag::new(OUT_OF_RANGE_TAG), value: Value::String(digits) }))
}

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(out_of_range(v.to_string()))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(out_of_range(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Loose::deserialize(d).map(|l| l.0)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Loose::deserialize(d).map(|l| l.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Loose(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Sequence(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut mapping = serde_yaml::Mapping::new();
        while let Some(Loose(key)) = map.next_key()? {
            if mapping.contains_key(&key) {
                let name = match &key {
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other).unwrap_or_default().trim_end().to_owned(),
                };
                return Err(A::Error::custom(format!("duplicate key `{name}`")));
            }
            let Loose(value) = map.next_value()?;
            mapping.insert(key, value);
        }
        Ok(Value::Mapping(mapping))
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (tag, variant): (String, _) = data.variant()?;
        let Loose(value) = variant.newtype_variant()?;
        Ok(Value::Tagged(Box::new(TaggedValue { tag: Tag::new(tag), value })))
    }
}
