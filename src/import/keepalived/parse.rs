//! keepalived.conf as keepalived 2.2.7's reader (`lib/parser.c`) sees it, turned into a tree of statements.
//!
//! What the reader does, in its order, for every physical line:
//! - comments: `#` or `!` outside double quotes end the line (`\#` and `\!` are the characters themselves);
//!   leading and trailing blanks go;
//! - `@ID rest` keeps `rest` only for a keepalived whose config id (`-i`, default the short host name) is `ID`,
//!   `@^ID rest` only for any other: the import has no config id, so the first kind is skipped (a not-mapped note)
//!   and the second kept (a note);
//! - `$NAME=value` defines a parameter (a value ending with `\` goes on over the next lines, one line each), and
//!   `$NAME` or `${NAME}` anywhere else is replaced by its value once a definition exists;
//! - `include PATTERN` (also `includer`, `includem`, ...) reads the files the glob matches, in sorted order, a
//!   relative pattern from the including file's directory;
//! - `{` and `}` outside quotes cut the line: each brace is a line of its own;
//! - words are separated by blanks; `"..."` is one word, without the quotes.
//!
//! The lines are then nested into [`Node`]s: a line followed by a `{` line holds the lines up to the matching `}`.
//! Every line keeps its file and line number ([`Place`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::import::{ImportError, Note, Place};

/// How deep includes may nest (keepalived has no limit but its file descriptors; a loop is caught before).
const MAX_INCLUDE_DEPTH: usize = 32;
/// Most lines one parameter expansion may produce in a line (a definition using itself would go on for ever).
const MAX_EXPANSIONS: usize = 64;
/// Deepest nesting of blocks (keepalived's deepest is a few levels; the limit keeps recursion bounded).
const MAX_DEPTH: usize = 32;

/// One statement: its words (keyword first) and, when a `{` follows it, the statements of its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The words; never empty.
    pub words: Vec<String>,
    /// Where the statement is.
    pub place: Place,
    /// The block's statements, when the statement opens one.
    pub block: Option<Vec<Node>>,
}

impl Node {
    /// The first word.
    pub fn keyword(&self) -> &str {
        self.words.first().map(String::as_str).unwrap_or("")
    }

    /// Word `i` (0 is the keyword).
    pub fn word(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }

    /// The statements of its block (none without one).
    pub fn children(&self) -> &[Node] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// A configuration read as a tree, and what the reading itself has to say.
#[derive(Debug, Default)]
pub struct Config {
    /// The top-level statements, includes expanded.
    pub nodes: Vec<Node>,
    /// Notes of the reader (skipped conditional lines, includes matching nothing).
    pub notes: Vec<Note>,
}

/// Reads `path` and everything it includes into statements.
pub fn read(path: &Path) -> Result<Config, ImportError> {
    let mut reader = Reader::default();
    reader.file(path, None)?;
    let lines = std::mem::take(&mut reader.lines);
    let nodes = nest(lines)?;
    Ok(Config { nodes, notes: reader.notes })
}

/// Reads `text` as the content of `name` (tests; includes are resolved from `name`'s directory).
#[cfg(test)]
pub fn read_text(text: &str, name: &Path) -> Result<Config, ImportError> {
    let mut reader = Reader::default();
    reader.text(text, name)?;
    let lines = std::mem::take(&mut reader.lines);
    let nodes = nest(lines)?;
    Ok(Config { nodes, notes: reader.notes })
}

/// One logical line after the reader: its words and place; a brace is a line of its own.
#[derive(Debug, Clone)]
struct Line {
    words: Vec<String>,
    place: Place,
}

#[derive(Default)]
struct Reader {
    /// Parameter definitions: name to value lines.
    defs: HashMap<String, Vec<String>>,
    /// The files being read, outermost first (canonical paths, for loops).
    open: Vec<PathBuf>,
    lines: Vec<Line>,
    notes: Vec<Note>,
}

/// A definition being continued over the next physical lines.
struct Continued {
    name: String,
}

impl Reader {
    fn file(&mut self, path: &Path, from: Option<&Place>) -> Result<(), ImportError> {
        let canonical = path.canonicalize().map_err(|source| ImportError::Read { path: path.to_owned(), source })?;
        if self.open.contains(&canonical) {
            let place = from.cloned().unwrap_or_else(|| Place::new(path, 0));
            return Err(ImportError::Syntax {
                place,
                message: format!("include loop: {} is already being read", path.display()),
            });
        }
        if self.open.len() >= MAX_INCLUDE_DEPTH {
            let place = from.cloned().unwrap_or_else(|| Place::new(path, 0));
            return Err(ImportError::Syntax {
                place,
                message: format!("includes nest deeper than {MAX_INCLUDE_DEPTH} files"),
            });
        }
        let bytes = std::fs::read(path).map_err(|source| ImportError::Read { path: path.to_owned(), source })?;
        let text = String::from_utf8_lossy(&bytes);
        self.open.push(canonical);
        let result = self.text(&text, path);
        self.open.pop();
        result
    }

    fn text(&mut self, text: &str, path: &Path) -> Result<(), ImportError> {
        let mut continued: Option<Continued> = None;
        for (index, raw) in text.lines().enumerate() {
            let place = Place::new(path, index + 1);
            let raw = raw.trim_end_matches('\r');
            let (line, cont) = decomment(raw);
            if let Some(def) = &continued {
                if !line.is_empty()
                    && let Some(value) = self.defs.get_mut(&def.name)
                {
                    value.push(line.clone());
                }
                if !cont || raw.trim().is_empty() {
                    continued = None;
                }
                continue;
            }
            if line.is_empty() {
                continue;
            }
            let mut line = line;
            if let Some(rest) = line.strip_prefix('@') {
                let (id, rest) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
                if let Some(id) = id.strip_prefix('^') {
                    self.notes.push(Note::adjusted(
                        Some(place.clone()),
                        format!(
                            "kept: a line for every config id but `{id}` (keepalived's `-i`, default the short host \
                             name; the import has none)"
                        ),
                    ));
                    line = rest.trim_start().to_owned();
                } else {
                    self.notes.push(Note::not_mapped(
                        Some(place.clone()),
                        format!(
                            "skipped: a line only for config id `{id}` (keepalived's `-i`, default the short host \
                             name; the import has none)"
                        ),
                    ));
                    continue;
                }
                if line.is_empty() {
                    continue;
                }
            }
            if let Some((name, value)) = definition(&line) {
                let mut lines = Vec::new();
                if !value.is_empty() {
                    lines.push(value);
                }
                self.defs.insert(name.clone(), lines);
                if cont {
                    continued = Some(Continued { name });
                }
                continue;
            }
            if line.starts_with("~SEQ") || line.starts_with("~LST") {
                self.notes.push(Note::not_mapped(
                    Some(place.clone()),
                    "~SEQ and ~LST (generated lines) are not supported: the lines are skipped",
                ));
                continue;
            }
            let expanded = self.expand(&line, &place)?;
            for line in expanded {
                if line.is_empty() {
                    continue;
                }
                if let Some(pattern) = include_pattern(&line) {
                    self.include(pattern, path, &place)?;
                    continue;
                }
                let words = split_words(&line, &place)?;
                self.push_cut(words, &place);
            }
        }
        Ok(())
    }

    /// `$NAME` and `${NAME}` replaced; a multi-line value makes several lines (the rest of the line follows the
    /// first line of the value, as keepalived does).
    fn expand(&self, line: &str, place: &Place) -> Result<Vec<String>, ImportError> {
        if self.defs.is_empty() || !line.contains('$') {
            return Ok(vec![line.to_owned()]);
        }
        let mut out = Vec::new();
        let mut pending = vec![line.to_owned()];
        let mut expansions = 0;
        while let Some(current) = pending.pop() {
            match self.replace_first(&current) {
                None => out.push(current),
                Some((replaced, more)) => {
                    expansions += 1;
                    if expansions > MAX_EXPANSIONS {
                        return Err(ImportError::Syntax {
                            place: place.clone(),
                            message: format!("parameter expansion does not end (more than {MAX_EXPANSIONS} steps)"),
                        });
                    }
                    // Later lines of a multi-line value come after this one.
                    for extra in more.into_iter().rev() {
                        pending.push(extra);
                    }
                    pending.push(decomment(&replaced).0);
                }
            }
        }
        Ok(out)
    }

    /// The line with its first known parameter replaced, and the further lines of a multi-line value.
    fn replace_first(&self, line: &str) -> Option<(String, Vec<String>)> {
        let bytes = line.as_bytes();
        let mut i = 0;
        while let Some(offset) = line[i..].find('$') {
            let start = i + offset;
            let after = &line[start + 1..];
            let (braced, name_start) = if after.starts_with('{') { (true, 1) } else { (false, 0) };
            let name: String = after[name_start..]
                .chars()
                .enumerate()
                .take_while(|(n, c)| {
                    if *n == 0 { c.is_ascii_alphabetic() || *c == '_' } else { c.is_ascii_alphanumeric() || *c == '_' }
                })
                .map(|(_, c)| c)
                .collect();
            let mut end = start + 1 + name_start + name.len();
            let ok = !name.is_empty()
                && if braced {
                    bytes.get(end) == Some(&b'}')
                } else {
                    matches!(bytes.get(end), None | Some(b' ' | b'\t' | b',' | b')'))
                };
            if ok && let Some(value) = self.defs.get(&name) {
                if braced {
                    end += 1;
                }
                let first = value.first().cloned().unwrap_or_default();
                let replaced = format!("{}{}{}", &line[..start], first, &line[end..]);
                let more = value.iter().skip(1).cloned().collect();
                return Some((replaced, more));
            }
            i = start + 1;
        }
        None
    }

    fn include(&mut self, pattern: &str, from_file: &Path, place: &Place) -> Result<(), ImportError> {
        let base = from_file.parent().map(Path::to_path_buf).unwrap_or_default();
        let pattern_path = Path::new(pattern);
        let full = if pattern_path.is_absolute() { pattern_path.to_path_buf() } else { base.join(pattern_path) };
        let full_text = full.to_string_lossy().into_owned();
        let mut matches = Vec::new();
        let mut any_wildcard = false;
        for alternative in expand_braces(&full_text) {
            if has_wildcard(&alternative) {
                any_wildcard = true;
                matches.extend(glob(&alternative));
            } else {
                matches.push(PathBuf::from(alternative));
            }
        }
        if matches.is_empty() {
            if any_wildcard {
                self.notes.push(Note::adjusted(
                    Some(place.clone()),
                    format!("ignored: include {pattern} matches no file (keepalived reads none either)"),
                ));
            }
            return Ok(());
        }
        for file in matches {
            self.file(&file, Some(place))?;
        }
        Ok(())
    }

    /// Pushes the words as lines, each `{` and `}` a line of its own.
    fn push_cut(&mut self, words: Vec<Word>, place: &Place) {
        let mut current = Vec::new();
        for word in words {
            if !word.quoted && (word.text == "{" || word.text == "}") {
                if !current.is_empty() {
                    self.lines.push(Line { words: std::mem::take(&mut current), place: place.clone() });
                }
                self.lines.push(Line { words: vec![word.text], place: place.clone() });
            } else {
                current.push(word.text);
            }
        }
        if !current.is_empty() {
            self.lines.push(Line { words: current, place: place.clone() });
        }
    }
}

/// A line without its comment and outer blanks, and whether it ended with a `\` (continued; the `\` is removed).
fn decomment(raw: &str) -> (String, bool) {
    let mut out = String::with_capacity(raw.len());
    let mut quote = false;
    let mut chars = raw.chars().peekable();
    let mut cont = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quote = !quote;
                out.push(c);
            }
            '\\' => match chars.peek() {
                None => {
                    cont = true;
                }
                Some(&next) if !quote && (next == '#' || next == '!') => {
                    out.push(next);
                    chars.next();
                }
                Some(&next) => {
                    out.push('\\');
                    out.push(next);
                    chars.next();
                }
            },
            '#' | '!' if !quote => break,
            _ => out.push(c),
        }
    }
    (out.trim_matches([' ', '\t']).to_owned(), cont)
}

/// `$NAME=value`: the name and the value's first line.
fn definition(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('$')?;
    let first = rest.chars().next()?;
    if !(first.is_ascii_alphabetic() || first == '_') {
        return None;
    }
    let name_len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
    let (name, after) = rest.split_at(name_len);
    let value = after.trim_start_matches([' ', '\t']).strip_prefix('=')?;
    Some((name.to_owned(), value.trim_matches([' ', '\t']).to_owned()))
}

/// The pattern of an `include` line (`include`, or `include` and one of `r m w b a`, then a blank).
fn include_pattern(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("include")?;
    let rest = match rest.chars().next()? {
        ' ' | '\t' => rest,
        'r' | 'm' | 'w' | 'b' | 'a' if rest[1..].starts_with([' ', '\t']) => &rest[1..],
        _ => return None,
    };
    let pattern = rest.trim();
    (!pattern.is_empty()).then_some(pattern)
}

struct Word {
    text: String,
    quoted: bool,
}

/// Blank-separated words; `"..."` one word without its quotes; `{` and `}` outside quotes words of their own.
fn split_words(line: &str, place: &Place) -> Result<Vec<Word>, ImportError> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    let blank = |c: char| matches!(c, ' ' | '\t' | '\x0c' | '\n' | '\r' | '\x0b');
    while let Some(&c) = chars.peek() {
        if blank(c) {
            chars.next();
            continue;
        }
        if c == '"' {
            chars.next();
            let mut text = String::new();
            let mut closed = false;
            for c in chars.by_ref() {
                if c == '"' {
                    closed = true;
                    break;
                }
                text.push(c);
            }
            if !closed {
                return Err(ImportError::Syntax { place: place.clone(), message: format!("unmatched quote: {line}") });
            }
            words.push(Word { text, quoted: true });
            continue;
        }
        if c == '{' || c == '}' {
            chars.next();
            words.push(Word { text: c.to_string(), quoted: false });
            continue;
        }
        let mut text = String::new();
        while let Some(&c) = chars.peek() {
            if blank(c) || c == '"' || c == '{' || c == '}' {
                break;
            }
            text.push(c);
            chars.next();
        }
        words.push(Word { text, quoted: false });
    }
    Ok(words)
}

/// Nests the lines: a line followed by `{` holds the lines up to the matching `}`.
fn nest(lines: Vec<Line>) -> Result<Vec<Node>, ImportError> {
    // Each open block: the node that opened it, and the statements gathered so far.
    let mut stack: Vec<(Option<Node>, Vec<Node>)> = vec![(None, Vec::new())];
    for line in lines {
        let is_brace = line.words.len() == 1 && (line.words[0] == "{" || line.words[0] == "}");
        if !is_brace {
            if let Some((_, nodes)) = stack.last_mut() {
                nodes.push(Node { words: line.words, place: line.place, block: None });
            }
            continue;
        }
        if line.words[0] == "{" {
            let opener = stack.last_mut().and_then(|(_, nodes)| nodes.pop());
            match opener {
                Some(_) if stack.len() > MAX_DEPTH => {
                    return Err(ImportError::Syntax {
                        place: line.place,
                        message: format!("blocks nest deeper than {MAX_DEPTH} levels"),
                    });
                }
                Some(node) if node.block.is_none() => stack.push((Some(node), Vec::new())),
                _ => {
                    return Err(ImportError::Syntax {
                        place: line.place,
                        message: "`{` without a keyword before it".into(),
                    });
                }
            }
        } else {
            if stack.len() < 2 {
                return Err(ImportError::Syntax { place: line.place, message: "`}` without a matching `{`".into() });
            }
            if let Some((Some(mut node), children)) = stack.pop() {
                node.block = Some(children);
                if let Some((_, nodes)) = stack.last_mut() {
                    nodes.push(node);
                }
            }
        }
    }
    if stack.len() > 1 {
        let place = stack.get(1).and_then(|(node, _)| node.as_ref()).map(|n| n.place.clone());
        let name = stack.get(1).and_then(|(node, _)| node.as_ref()).map(|n| n.words.join(" ")).unwrap_or_default();
        return Err(ImportError::Syntax {
            place: place.unwrap_or_else(|| Place::new("-", 0)),
            message: format!("the block of `{name}` is not closed: a `}}` is missing"),
        });
    }
    Ok(stack.pop().map(|(_, nodes)| nodes).unwrap_or_default())
}

fn has_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// `a{b,c}d` as `abd`, `acd` (GLOB_BRACE; nested braces expand from the inside out).
fn expand_braces(pattern: &str) -> Vec<String> {
    let Some(open) = pattern.find('{') else { return vec![pattern.to_owned()] };
    let mut depth = 0;
    let mut close = None;
    let mut commas = Vec::new();
    for (i, c) in pattern[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            ',' if depth == 1 => commas.push(open + i),
            _ => {}
        }
    }
    let Some(close) = close else { return vec![pattern.to_owned()] };
    let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
    let mut bounds = vec![open];
    bounds.extend(commas);
    bounds.push(close);
    let mut out = Vec::new();
    for pair in bounds.windows(2) {
        let alternative = &pattern[pair[0] + 1..pair[1]];
        out.extend(expand_braces(&format!("{head}{alternative}{tail}")));
    }
    out
}

/// The files a glob pattern matches, sorted (each component with `*`, `?` or `[...]` matched against a directory
/// listing; hidden names only by a pattern starting with `.`).
fn glob(pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let mut current: Vec<PathBuf> = vec![if path.is_absolute() { PathBuf::from("/") } else { PathBuf::new() }];
    for component in path.components() {
        let part = component.as_os_str().to_string_lossy().into_owned();
        if matches!(component, std::path::Component::RootDir | std::path::Component::Prefix(_)) {
            continue;
        }
        let mut next = Vec::new();
        for dir in &current {
            if has_wildcard(&part) {
                let listing = if dir.as_os_str().is_empty() { Path::new(".") } else { dir.as_path() };
                let Ok(entries) = std::fs::read_dir(listing) else { continue };
                let mut names: Vec<String> =
                    entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
                names.sort();
                for name in names {
                    if name.starts_with('.') && !part.starts_with('.') {
                        continue;
                    }
                    if wildcard_match(part.as_bytes(), name.as_bytes()) {
                        next.push(dir.join(name));
                    }
                }
            } else {
                let candidate = dir.join(&part);
                if candidate.exists() {
                    next.push(candidate);
                }
            }
        }
        current = next;
    }
    current.retain(|p| p.is_file());
    current.sort();
    current
}

/// Shell wildcard matching of one name: `*`, `?`, `[abc]`, `[a-z]`, `[!a]`.
fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.first() {
        None => name.is_empty(),
        Some(b'*') => (0..=name.len()).any(|skip| wildcard_match(&pattern[1..], &name[skip..])),
        Some(b'?') => !name.is_empty() && wildcard_match(&pattern[1..], &name[1..]),
        Some(b'[') => {
            let Some(&c) = name.first() else { return false };
            let Some(close) = pattern.iter().skip(2).position(|&b| b == b']').map(|p| p + 2) else {
                return c == b'[' && wildcard_match(&pattern[1..], &name[1..]);
            };
            let mut set = &pattern[1..close];
            let negate = matches!(set.first(), Some(b'!' | b'^'));
            if negate {
                set = &set[1..];
            }
            let mut found = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    found |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    found |= set[i] == c;
                    i += 1;
                }
            }
            found != negate && wildcard_match(&pattern[close + 1..], &name[1..])
        }
        Some(&p) => name.first() == Some(&p) && wildcard_match(&pattern[1..], &name[1..]),
    }
}

#[cfg(test)]
pub(super) use tests_support::*;

#[cfg(test)]
mod tests_support {
    pub fn wildcard(pattern: &str, name: &str) -> bool {
        super::wildcard_match(pattern.as_bytes(), name.as_bytes())
    }

    pub fn braces(pattern: &str) -> Vec<String> {
        super::expand_braces(pattern)
    }
}
