//! Splitting a YAML stream into its documents before any of them is parsed, so that one document's syntax error,
//! duplicate key or out-of-range number costs that document only.
//!
//! YAML forbids a line that starts with `---` or `...` followed by a space or its end inside any scalar (block,
//! quoted or plain: the spec's *c-forbidden*), so such a line at column 0 is always a document marker and the stream
//! can be cut there without parsing it. A `%` directive line opens the header of the next document. A UTF-8
//! byte-order mark is allowed at the start of the stream and before any document (YAML 1.2, 5.2; kubectl accepts
//! it); it is dropped.

/// A UTF-8 byte-order mark.
const BOM: char = '\u{feff}';

/// One document's text, and where it starts in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece<'a> {
    /// The document's text (its directives and its `---` line included).
    pub text: &'a str,
    /// How many lines of the file come before it (its errors' line numbers are counted from it).
    pub line_offset: usize,
}

/// What a line is, for splitting.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// `---`: the start of a document.
    Start,
    /// `...`: the end of a document.
    End,
    /// `%YAML`, `%TAG`: a directive of the next document.
    Directive,
    /// Blank, or only a comment.
    Nothing,
    /// Anything else.
    Content,
}

fn kind(line: &str) -> Line {
    let marker = |m: &str| line.strip_prefix(m).is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']));
    if marker("---") {
        Line::Start
    } else if marker("...") {
        Line::End
    } else if line.starts_with('%') {
        Line::Directive
    } else if line.trim_start().is_empty() || line.trim_start().starts_with('#') {
        Line::Nothing
    } else {
        Line::Content
    }
}

/// The documents of `text`, in order, as the YAML parser would number them: a stream of only comments or of
/// nothing is one empty document (as an empty file is), a `---` alone is an empty document, and comments before
/// the first `---` belong to it.
pub(crate) fn documents(text: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    // Start of the current piece (byte offset and line), and whether it holds a document so far: content, or a
    // `---`. A piece of directives and comments only is the header of the next `---`.
    let mut start = (0usize, 0usize);
    let mut has_document = false;
    let mut has_content = false;
    let mut offset = 0usize;
    for (number, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let unmarked = bare.strip_prefix(BOM).unwrap_or(bare);
        let bom = bare.len() - unmarked.len();
        match kind(unmarked) {
            Line::Start => {
                if has_document {
                    pieces.push(piece(text, start, offset));
                    start = (offset, number);
                } else if has_content {
                    start = (offset, number);
                }
                if start.0 == offset {
                    start.0 += bom;
                }
                has_document = true;
                has_content = false;
            }
            Line::End => {
                if has_document || has_content {
                    pieces.push(piece(text, start, offset + line.len()));
                }
                start = (offset + line.len(), number + 1);
                has_document = false;
                has_content = false;
            }
            Line::Directive if has_document || has_content => {
                pieces.push(piece(text, start, offset));
                start = (offset, number);
                has_document = false;
                has_content = false;
            }
            Line::Directive | Line::Nothing => {
                if start.0 == offset {
                    start.0 += bom;
                }
            }
            Line::Content => {
                if start.0 == offset {
                    start.0 += bom;
                }
                has_document = true;
                has_content = true;
            }
        }
        offset += line.len();
    }
    if has_document || has_content {
        pieces.push(piece(text, start, text.len()));
    }
    if pieces.is_empty() {
        // Nothing but comments and blank lines (or nothing at all): one empty document, as the parser sees it.
        pieces.push(Piece { text: "", line_offset: 0 });
    }
    pieces
}

/// Where a stream can be cut so that its parts split into the documents of the whole (the later part's indices and
/// line offsets shifted by the earlier's): before a `---` line that follows a document, where [`documents`] ends a
/// piece anyway and starts the next at that line. Fed every line in order, its `\n` included.
#[derive(Debug, Default)]
pub(crate) struct CutPoints {
    /// Whether the lines so far end inside a document ([`documents`]' `has_document`).
    in_document: bool,
}

impl CutPoints {
    /// Whether the stream can be cut before `line`, which is then taken as read.
    pub(crate) fn before(&mut self, line: &str) -> bool {
        let bare = line.trim_end_matches(['\n', '\r']);
        let kind = kind(bare.strip_prefix(BOM).unwrap_or(bare));
        let cut = kind == Line::Start && self.in_document;
        match kind {
            Line::Start | Line::Content => self.in_document = true,
            Line::End | Line::Directive => self.in_document = false,
            Line::Nothing => {}
        }
        cut
    }
}

fn piece(text: &str, (start, line): (usize, usize), end: usize) -> Piece<'_> {
    Piece { text: text.get(start..end).unwrap_or_default(), line_offset: line }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<(&str, usize)> {
        documents(text).into_iter().map(|p| (p.text, p.line_offset)).collect()
    }

    #[test]
    fn documents_are_cut_at_markers_with_their_first_line() {
        assert_eq!(texts("a: 1\n---\nb: 2\n"), [("a: 1\n", 0), ("---\nb: 2\n", 1)]);
        assert_eq!(texts("---\na: 1\n---\nb: 2\n"), [("---\na: 1\n", 0), ("---\nb: 2\n", 2)]);
        assert_eq!(texts("# header\n---\na: 1\n"), [("# header\n---\na: 1\n", 0)]);
        assert_eq!(texts("a: 1\n--- \nb: 2"), [("a: 1\n", 0), ("--- \nb: 2", 1)]);
    }

    #[test]
    fn empty_documents_are_numbered_as_the_parser_numbers_them() {
        assert_eq!(texts(""), [("", 0)]);
        assert_eq!(texts("# only a comment\n"), [("", 0)]);
        assert_eq!(texts("---\n"), [("---\n", 0)]);
        assert_eq!(texts("a: 1\n---\n"), [("a: 1\n", 0), ("---\n", 1)]);
        assert_eq!(texts("a: 1\n# trailing\n"), [("a: 1\n# trailing\n", 0)]);
    }

    #[test]
    fn a_marker_inside_a_scalar_is_not_at_column_zero() {
        let text = "a: |\n  ---\n  x\nb: \"--- not a marker\"\n";
        assert_eq!(texts(text), [(text, 0)]);
        assert_eq!(texts("a: ---x\n---x: 1\n").len(), 1);
    }

    #[test]
    fn document_end_markers_and_directives_split_too() {
        assert_eq!(texts("a: 1\n...\n---\nb: 2\n"), [("a: 1\n...\n", 0), ("---\nb: 2\n", 2)]);
        assert_eq!(texts("a: 1\n%YAML 1.2\n---\nb: 2\n"), [("a: 1\n", 0), ("%YAML 1.2\n---\nb: 2\n", 1)]);
        assert_eq!(texts("%YAML 1.2\n---\nb: 2\n"), [("%YAML 1.2\n---\nb: 2\n", 0)]);
    }

    /// Cut wherever [`CutPoints`] allows, the parts' documents are the whole's.
    #[test]
    fn a_stream_cut_where_allowed_has_the_documents_of_the_whole() {
        let streams = [
            "a: 1\n---\nb: 2\n",
            "---\na: 1\n---\nb: 2\n---\n",
            "# header\n---\na: 1\n# c\n---\n---\nb: 1\n",
            "a: 1\n...\n---\nb: 2\n...\n# x\n---\nc: 3",
            "a: 1\n%YAML 1.2\n---\nb: 2\n---\nc: |\n  ---\n---\n",
            "\u{feff}a: 1\n\u{feff}---\nb: 2\n--- \nc: 3\n",
            "a: 1\r\n---\r\nb: 2\r\n---\r\n",
        ];
        let mut cuts_seen = 0;
        for stream in streams {
            let whole = texts(stream);
            let mut cuts = CutPoints::default();
            let mut offset = 0;
            for (number, line) in stream.split_inclusive('\n').enumerate() {
                if cuts.before(line) {
                    cuts_seen += 1;
                    let (first, second) = stream.split_at(offset);
                    let mut parts = texts(first);
                    parts.extend(texts(second).into_iter().map(|(text, line)| (text, line + number)));
                    assert_eq!(parts, whole, "{stream:?} cut before line {number}");
                }
                offset += line.len();
            }
        }
        assert!(cuts_seen >= 10, "{cuts_seen} cuts");
    }

    #[test]
    fn byte_order_marks_are_dropped_before_documents() {
        assert_eq!(texts("\u{feff}a: 1\n"), [("a: 1\n", 0)]);
        assert_eq!(texts("\u{feff}---\na: 1\n"), [("---\na: 1\n", 0)]);
        assert_eq!(texts("a: 1\n\u{feff}---\nb: 2\n"), [("a: 1\n", 0), ("---\nb: 2\n", 1)]);
    }
}
