//! A small YAML tree with the position of every node, built on yaml-rust2's event
//! parser (so that every loader error can point at `line:col`).
use std::collections::HashMap;

use yaml_rust2::{
    parser::{Event, MarkedEventReceiver, Parser},
    scanner::{Marker, TScalarStyle},
};

/// Where a node starts: 1-based line and column, and the character index in the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    pub line: usize,
    pub col: usize,
    pub index: usize,
}

impl Mark {
    fn from_marker(m: Marker) -> Mark {
        Mark {
            line: m.line(),
            col: m.col() + 1,
            index: m.index(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
    Folded,
}

#[derive(Clone, Debug)]
pub enum Kind {
    Scalar(String, Style),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug)]
pub struct Node {
    pub kind: Kind,
    pub mark: Mark,
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s, _) => Some(s),
            _ => None,
        }
    }

    /// A plain `null`/`~`/empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar(s, Style::Plain) if s.is_empty() || s == "~" || s == "null")
    }

    pub fn as_bool(&self) -> Option<bool> {
        match &self.kind {
            Kind::Scalar(s, Style::Plain) => match s.as_str() {
                "true" | "True" | "TRUE" => Some(true),
                "false" | "False" | "FALSE" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn describe(&self) -> &'static str {
        match self.kind {
            Kind::Scalar(..) => "a scalar",
            Kind::Seq(_) => "a sequence",
            Kind::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax error.
#[derive(Clone, Debug)]
pub struct YamlError {
    pub mark: Mark,
    pub message: String,
}

enum Building {
    Seq(Vec<Node>, Mark, usize),
    Map(Vec<(Node, Node)>, Option<Node>, Mark, usize),
}

#[derive(Default)]
struct Receiver {
    stack: Vec<Building>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    error: Option<YamlError>,
    depth_exceeded: bool,
    /// Nodes that aliases copied so far.
    nodes: usize,
}

const MAX_DEPTH: usize = 256;
/// Nodes aliases may copy: far above what any ruleset or settings file does (Falco's
/// files use no aliases), far below what costs memory (about 10 MB): a few aliases of
/// aliases (a "billion laughs" file) would otherwise copy a small file into billions
/// of nodes.
const MAX_NODES: usize = 100_000;

/// The largest file read: rules and settings files are some hundred KiB; a larger
/// one is refused before it is read, whatever it holds.
pub const MAX_SOURCE_BYTES: u64 = 16 * 1024 * 1024;

/// A rules or settings file's text, bounded in size; an error says where the text is
/// no UTF-8.
pub fn read_source(path: &std::path::Path) -> Result<String, YamlError> {
    let at_start = |message: String| YamlError {
        mark: Mark {
            line: 1,
            col: 1,
            index: 0,
        },
        message,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| at_start(format!("cannot read: {e}")))?
        .len();
    if size > MAX_SOURCE_BYTES {
        return Err(at_start(format!(
            "the file is {:.1} MiB; files over {} MiB are refused (a rules or settings \
             file is a few hundred KiB: is this the right file?)",
            size as f64 / (1024.0 * 1024.0),
            MAX_SOURCE_BYTES / (1024 * 1024)
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| at_start(format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let before = &bytes[..at];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let col = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        YamlError {
            mark: Mark {
                line,
                col,
                index: at,
            },
            message: format!(
                "invalid UTF-8 (byte 0x{:02x}): save the file as UTF-8",
                bytes[at]
            ),
        }
    })
}

/// YAML keys are unique: a second `condition:` in a rule is a mistake to point at,
/// not a value to pick silently.
fn duplicate_key(entries: &[(Node, Node)]) -> Option<YamlError> {
    let mut seen: HashMap<&str, Mark> = HashMap::new();
    for (key, _) in entries {
        if let Kind::Scalar(name, _) = &key.kind
            && let Some(first) = seen.insert(name.as_str(), key.mark)
        {
            return Some(YamlError {
                mark: key.mark,
                message: format!(
                    "duplicate key '{name}' (first at line {}, column {})",
                    first.line, first.col
                ),
            });
        }
    }
    None
}

fn node_count(node: &Node) -> usize {
    1 + match &node.kind {
        Kind::Seq(items) => items.iter().map(node_count).sum(),
        Kind::Map(entries) => entries
            .iter()
            .map(|(k, v)| node_count(k) + node_count(v))
            .sum(),
        _ => 0,
    }
}

impl Receiver {
    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Building::Seq(items, ..)) => items.push(node),
            Some(Building::Map(entries, key, ..)) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
}

impl MarkedEventReceiver for Receiver {
    fn on_event(&mut self, ev: Event, marker: Marker) {
        if self.error.is_some() {
            return;
        }
        let mark = Mark::from_marker(marker);
        match ev {
            Event::Scalar(value, style, anchor, _tag) => {
                let style = match style {
                    TScalarStyle::SingleQuoted => Style::SingleQuoted,
                    TScalarStyle::DoubleQuoted => Style::DoubleQuoted,
                    TScalarStyle::Literal => Style::Literal,
                    TScalarStyle::Folded => Style::Folded,
                    _ => Style::Plain,
                };
                self.push_node(
                    Node {
                        kind: Kind::Scalar(value, style),
                        mark,
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, _) => {
                if self.stack.len() >= MAX_DEPTH {
                    self.depth_exceeded = true;
                    self.error = Some(YamlError {
                        mark,
                        message: "nesting too deep".into(),
                    });
                    return;
                }
                self.stack.push(Building::Seq(Vec::new(), mark, anchor));
            }
            Event::MappingStart(anchor, _) => {
                if self.stack.len() >= MAX_DEPTH {
                    self.depth_exceeded = true;
                    self.error = Some(YamlError {
                        mark,
                        message: "nesting too deep".into(),
                    });
                    return;
                }
                self.stack
                    .push(Building::Map(Vec::new(), None, mark, anchor));
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Building::Seq(items, m, anchor)) => self.push_node(
                    Node {
                        kind: Kind::Seq(items),
                        mark: m,
                    },
                    anchor,
                ),
                Some(Building::Map(entries, _, m, anchor)) => {
                    if let Some(error) = duplicate_key(&entries) {
                        self.error = Some(error);
                        return;
                    }
                    // A block mapping's start event is not marked at its first key:
                    // use the key's position, which is what people look for.
                    let mark = entries.first().map(|(k, _)| k.mark).unwrap_or(m);
                    self.push_node(
                        Node {
                            kind: Kind::Map(entries),
                            mark,
                        },
                        anchor,
                    )
                }
                None => {}
            },
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(node) => {
                    // Counted before the copy is made.
                    self.nodes = self.nodes.saturating_add(node_count(node));
                    if self.nodes > MAX_NODES {
                        self.error = Some(YamlError {
                            mark,
                            message: format!(
                                "aliases expand to more than {MAX_NODES} nodes (an alias bomb?)"
                            ),
                        });
                        return;
                    }
                    let node = node.clone();
                    self.push_node(node, 0)
                }
                None => {
                    self.error = Some(YamlError {
                        mark,
                        message: "alias to an unknown anchor".into(),
                    })
                }
            },
            _ => {}
        }
    }
}

/// Parses one YAML document. An empty document gives `Ok(None)`.
///
/// A flow collection whose closing bracket is indented no deeper than the key that
/// holds it (Falco's sandbox ruleset has `items: [` ... `  ]` under `- list:`) breaks
/// YAML's indentation rule, but libyaml, which Falco's yaml-cpp follows, accepts it;
/// so does this, by reading such a file again with those bracket lines indented like
/// the line before them. Every other line keeps its position, so errors still point
/// where they are.
pub fn parse(text: &str) -> Result<Option<Node>, YamlError> {
    match parse_strict(text) {
        Err(e) if e.message.contains("invalid indentation") => {
            let relaxed = indent_flow_closers(text);
            if relaxed == text {
                return Err(e);
            }
            parse_strict(&relaxed).map_err(|_| e)
        }
        result => result,
    }
}

fn parse_strict(text: &str) -> Result<Option<Node>, YamlError> {
    let mut receiver = Receiver::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut receiver, false) {
        return Err(YamlError {
            mark: Mark::from_marker(*e.marker()),
            message: e.info().to_string(),
        });
    }
    if let Some(e) = receiver.error {
        return Err(e);
    }
    Ok(receiver.root)
}

/// `text` with each line that holds only closing brackets (`]`, `}`, with commas and a
/// comment) indented at least as deep as the line before it.
fn indent_flow_closers(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut previous_indent = 0;
    for line in text.split_inclusive('\n') {
        let content = line.trim_start_matches(' ');
        let indent = line.len() - content.len();
        let body = content.split('#').next().unwrap_or("").trim_end();
        let closer = !body.is_empty() && body.chars().all(|c| matches!(c, ']' | '}' | ',' | ' '));
        if closer && indent < previous_indent {
            out.extend(std::iter::repeat_n(' ', previous_indent));
            out.push_str(content);
            continue;
        }
        if !body.is_empty() {
            previous_indent = indent;
        }
        out.push_str(line);
    }
    out
}

/// Maps a character offset inside a scalar's value back to the file's `line:col`,
/// following the folding of plain, quoted and block scalars.
pub fn locate(
    text: &str,
    node_mark: Mark,
    style: Style,
    value: &str,
    offset: usize,
) -> (usize, usize) {
    let chars: Vec<char> = text.chars().collect();
    let mut pos = node_mark.index.min(chars.len());
    let mut line = node_mark.line;
    let mut col = node_mark.col;
    let advance = |pos: &mut usize, line: &mut usize, col: &mut usize| {
        if *pos < chars.len() {
            if chars[*pos] == '\n' {
                *line += 1;
                *col = 1;
            } else {
                *col += 1;
            }
            *pos += 1;
        }
    };
    match style {
        Style::SingleQuoted | Style::DoubleQuoted => advance(&mut pos, &mut line, &mut col),
        // yaml-rust2 marks a block scalar at its first content character.
        Style::Literal | Style::Folded | Style::Plain => {}
    }
    for c in value.chars().take(offset) {
        if pos >= chars.len() {
            break;
        }
        if chars[pos] == c {
            advance(&mut pos, &mut line, &mut col);
        } else if c.is_whitespace() && chars[pos].is_whitespace() {
            // A folded line break: skip the break and the next line's indentation.
            advance(&mut pos, &mut line, &mut col);
            while pos < chars.len() && (chars[pos] == ' ' || chars[pos] == '\t') {
                advance(&mut pos, &mut line, &mut col);
            }
        } else {
            // An escape sequence in a quoted scalar: step over it.
            advance(&mut pos, &mut line, &mut col);
            if matches!(style, Style::DoubleQuoted | Style::SingleQuoted)
                && pos < chars.len()
                && (chars[pos - 1] == '\\' || chars[pos - 1] == '\'')
            {
                advance(&mut pos, &mut line, &mut col);
            }
        }
    }
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Falco's sandbox ruleset closes a flow sequence less indented than its key; as
    /// in libyaml, that parses, and the lines around keep their positions.
    #[test]
    fn a_flow_sequence_closed_at_the_key_indentation_parses() {
        let text =
            "- list: miners\n  items: [\n    \"a\",\n    \"b\"\n  ]\n\n- list: x\n  items: [c]\n";
        let root = parse(text).unwrap().unwrap();
        let Kind::Seq(items) = root.kind else {
            panic!("not a sequence")
        };
        let Kind::Map(entries) = &items[0].kind else {
            panic!("not a map")
        };
        let Kind::Seq(values) = &entries[1].1.kind else {
            panic!("items is not a sequence")
        };
        let values: Vec<_> = values.iter().filter_map(Node::as_str).collect();
        assert_eq!(values, ["a", "b"]);
        assert_eq!((values.len(), items[1].mark.line), (2, 7));
        // Other indentation errors stay errors, at their place.
        let err = parse("a:\n  b: 1\n c: 2\n").unwrap_err();
        assert_eq!(err.mark.line, 3, "{}", err.message);
    }

    /// A "billion laughs" file: each alias level multiplies the nodes by ten.
    #[test]
    fn alias_bombs_are_refused_not_expanded() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..9 {
            let refs = vec![format!("*a{}", level - 1); 10].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
        }
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("alias bomb"), "{}", err.message);
        // Stopped at the node cap, well before the last level.
        assert_eq!(err.mark.line, 5, "{}", err.message);
        // Ordinary aliases are fine.
        let ok = parse("base: &b {x: 1}\nother: *b\n").unwrap().unwrap();
        assert!(matches!(ok.kind, Kind::Map(ref e) if e.len() == 2));
    }

    fn first_value(text: &str) -> Node {
        let root = parse(text).unwrap().unwrap();
        let Kind::Map(entries) = root.kind else {
            panic!("not a map")
        };
        entries[0].1.clone()
    }

    #[test]
    fn marks_are_one_based() {
        let root = parse("a: b\nc:\n  - d\n").unwrap().unwrap();
        let Kind::Map(entries) = &root.kind else {
            panic!()
        };
        assert_eq!((entries[0].0.mark.line, entries[0].0.mark.col), (1, 1));
        assert_eq!((entries[0].1.mark.line, entries[0].1.mark.col), (1, 4));
        let Kind::Seq(items) = &entries[1].1.kind else {
            panic!()
        };
        assert_eq!((items[0].mark.line, items[0].mark.col), (3, 5));
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse("a: [b, c\nd: e\n").unwrap_err();
        assert!(err.mark.line >= 1);
        assert!(!err.message.is_empty());
    }

    #[test]
    fn locate_plain_and_folded() {
        let text = "c: foo and bar\n";
        let v = first_value(text);
        let (Kind::Scalar(s, st), m) = (&v.kind, v.mark) else {
            panic!()
        };
        assert_eq!(locate(text, m, *st, s, 8), (1, 12));

        let text = "c: >\n  foo and\n  bar baz\n";
        let v = first_value(text);
        let (Kind::Scalar(s, st), m) = (&v.kind, v.mark) else {
            panic!()
        };
        assert_eq!(s, "foo and bar baz\n");
        assert_eq!(locate(text, m, *st, s, 0), (2, 3));
        assert_eq!(locate(text, m, *st, s, 12), (3, 7));

        let text = "c: (foo and\n     bar)\n";
        let v = first_value(text);
        let (Kind::Scalar(s, st), m) = (&v.kind, v.mark) else {
            panic!()
        };
        assert_eq!(s, "(foo and bar)");
        assert_eq!(locate(text, m, *st, s, 9), (2, 6));

        let text = "c: \"x = 'a'\"\n";
        let v = first_value(text);
        let (Kind::Scalar(s, st), m) = (&v.kind, v.mark) else {
            panic!()
        };
        assert_eq!(locate(text, m, *st, s, 4), (1, 9));
    }
}
