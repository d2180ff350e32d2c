//! Text assembled from YAML scalars (a condition plus its appends), remembering where
//! each piece came from so that an offset maps back to `file:line:col`.
use std::sync::Arc;

use super::{
    error::RuleError,
    yaml::{self, Kind, Mark, Node, Style},
};

/// A file being loaded.
#[derive(Debug)]
pub struct SourceFile {
    pub name: Arc<str>,
    pub text: Arc<str>,
}

#[derive(Clone, Debug)]
pub struct Loc {
    pub file: Arc<str>,
    pub text: Arc<str>,
    pub mark: Mark,
    pub style: Style,
}

impl Loc {
    pub fn of(file: &SourceFile, node: &Node) -> Loc {
        let style = match &node.kind {
            Kind::Scalar(_, s) => *s,
            _ => Style::Plain,
        };
        Loc {
            file: file.name.clone(),
            text: file.text.clone(),
            mark: node.mark,
            style,
        }
    }

    pub fn error(&self, item: Option<&str>, message: impl Into<String>) -> RuleError {
        RuleError {
            file: self.file.clone(),
            line: self.mark.line,
            col: self.mark.col,
            item: item.map(str::to_string),
            message: message.into(),
        }
    }
}

#[derive(Clone, Debug)]
struct Piece {
    start: usize,
    text: String,
    loc: Loc,
}

#[derive(Clone, Debug)]
pub struct LocatedText {
    pub text: String,
    pieces: Vec<Piece>,
}

impl LocatedText {
    pub fn new(text: &str, loc: Loc) -> Self {
        LocatedText {
            text: text.to_string(),
            pieces: vec![Piece {
                start: 0,
                text: text.to_string(),
                loc,
            }],
        }
    }

    /// Falco's append: the new text follows the old one after a space.
    pub fn append(&mut self, text: &str, loc: Loc) {
        self.text.push(' ');
        let start = self.text.len();
        self.text.push_str(text);
        self.pieces.push(Piece {
            start,
            text: text.to_string(),
            loc,
        });
    }

    /// An error at byte offset `pos` of the text.
    pub fn error(&self, pos: usize, item: Option<&str>, message: impl Into<String>) -> RuleError {
        let piece = self
            .pieces
            .iter()
            .rev()
            .find(|p| p.start <= pos)
            .unwrap_or(&self.pieces[0]);
        let within = pos.saturating_sub(piece.start).min(piece.text.len());
        let chars = piece
            .text
            .get(..within)
            .map(|s| s.chars().count())
            .unwrap_or(0);
        let (line, col) = yaml::locate(
            &piece.loc.text,
            piece.loc.mark,
            piece.loc.style,
            &piece.text,
            chars,
        );
        RuleError {
            file: piece.loc.file.clone(),
            line,
            col,
            item: item.map(str::to_string),
            message: message.into(),
        }
    }
}
