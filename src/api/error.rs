//! Problems found in objects: validation errors (one per field) and conflicts between objects.

use std::fmt;

use thiserror::Error;

use super::object::ObjectId;
use crate::model::ServiceKey;

/// One problem of one object, naming the field: `default/web: spec.backends[2].port: 70000 is out of range 0-65535`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ValidationError {
    /// The object.
    pub object: ObjectId,
    /// Path of the field, e.g. `spec.backends[2].port`; empty when the problem is the whole document.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ValidationError {
    /// A problem of `field` of `object`.
    pub fn new(object: ObjectId, field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError { object, field: cut_echoes(field.into()), message: cut_echoes(message.into()) }
    }
}

/// Longest run of non-blank characters a message repeats whole (an address, a name of 253 characters); a longer
/// one is echoed input (a 100 kB scheduler name) and is cut.
const MAX_ECHOED_WORD: usize = 256;
/// How much of a cut word is kept.
const KEPT_OF_CUT_WORD: usize = 64;
/// Longest message kept whole.
const MAX_MESSAGE: usize = 1024;

/// `text` with every overlong word cut to its beginning, and itself cut to [`MAX_MESSAGE`] characters: messages
/// repeat what they refuse, and a refused value may be anything a file holds.
fn cut_echoes(text: String) -> String {
    if text.len() <= MAX_ECHOED_WORD {
        return text;
    }
    let mut out = String::with_capacity(MAX_MESSAGE.min(text.len()) + 16);
    for word in text.split_inclusive(char::is_whitespace) {
        let length = word.chars().count();
        if length > MAX_ECHOED_WORD {
            out.extend(word.chars().take(KEPT_OF_CUT_WORD));
            out.push_str(&format!("… ({} characters in all)", length));
            out.extend(word.chars().last().filter(|c| c.is_whitespace()));
        } else {
            out.push_str(word);
        }
    }
    if out.chars().count() > MAX_MESSAGE {
        out = out.chars().take(MAX_MESSAGE).chain("… (cut)".chars()).collect();
    }
    out
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.object, self.message)
        } else {
            write!(f, "{}: {}: {}", self.object, self.field, self.message)
        }
    }
}

/// An object that asks for a service another, older object already claims; it is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{object}: service {key} is already claimed by {claimed_by}, which is older; this object is ignored")]
pub struct Conflict {
    /// The service both ask for.
    pub key: ServiceKey,
    /// The ignored (younger) object.
    pub object: ObjectId,
    /// The object that keeps the service.
    pub claimed_by: ObjectId,
}
