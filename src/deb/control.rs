//! One deb822 paragraph, as found in a built package's `DEBIAN/control`.
//!
//! The parser is strict: a repository republishes these fields verbatim in
//! `Packages` files, so anything that could change meaning on the way (a
//! second paragraph, a comment, a stray blank line, a duplicate field) is
//! refused with the line number and a hint, rather than guessed at.

use super::escape::Escaped;

/// Longest excerpt of an offending line quoted in an error message.
const EXCERPT_CHARS: usize = 60;

/// Why a control paragraph was refused. Line numbers start at 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error(
        "the control paragraph has no fields; it must contain at least `Package:` and `Version:`"
    )]
    Empty {},
    #[error("line {line}: contains a NUL byte; control files must be plain text")]
    Nul { line: usize },
    #[error(
        "line {line}: contains a carriage return; convert the control file to Unix (LF) line endings"
    )]
    CarriageReturn { line: usize },
    #[error(
        "line {line}: comment line `{text}` is not allowed in the control file of a built package; remove it"
    )]
    Comment { line: usize, text: String },
    #[error(
        "line {line}: blank line inside the paragraph; a control file holds exactly one paragraph, and an empty line within a multi-line value must be written ` .`"
    )]
    BlankLine { line: usize },
    #[error(
        "line {line}: continuation line `{text}` comes before any field; start the paragraph with `Name: value`"
    )]
    ContinuationFirst { line: usize, text: String },
    #[error(
        "line {line}: `{text}` is neither `Name: value` nor a continuation line; continuation lines must start with a space or tab"
    )]
    NoColon { line: usize, text: String },
    #[error("line {line}: `{name}` is not a valid field name: {rule}")]
    FieldName {
        line: usize,
        name: String,
        rule: &'static str,
    },
    #[error(
        "line {line}: field `{name}` appears a second time (first on line {first_line}); field names are case-insensitive, keep only one"
    )]
    Duplicate {
        line: usize,
        name: String,
        first_line: usize,
    },
}

/// One field: its name as written and its value (see [`Control::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    name: String,
    value: String,
    line: usize,
}

/// One deb822 paragraph with its field order kept.
///
/// Equality compares names and values in order, not line numbers.
#[derive(Debug, Clone, Default)]
pub struct Control {
    fields: Vec<Field>,
}

impl PartialEq for Control {
    fn eq(&self, other: &Self) -> bool {
        self.fields().eq(other.fields())
    }
}

impl Eq for Control {}

impl Control {
    /// Parses exactly one paragraph.
    ///
    /// A value is its first line trimmed, then each continuation line kept
    /// with its leading whitespace (trailing whitespace trimmed), joined with
    /// `\n`: `Description: short\n long` gives `"short\n long"`, and
    /// `Conffiles:\n /etc/x 1` gives `"\n /etc/x 1"`. Blank lines before and
    /// after the paragraph are ignored.
    pub fn parse(text: &str) -> Result<Control, ControlError> {
        let mut control = Control::default();
        let mut blank_after_fields = None;
        for (index, line) in text.split('\n').enumerate() {
            let number = index + 1;
            check_characters(line, number)?;
            if is_blank(line) {
                if !control.fields.is_empty() {
                    blank_after_fields.get_or_insert(number);
                }
                continue;
            }
            if let Some(blank) = blank_after_fields {
                return Err(ControlError::BlankLine { line: blank });
            }
            control.parse_line(line, number)?;
        }
        if control.fields.is_empty() {
            return Err(ControlError::Empty {});
        }
        Ok(control)
    }

    /// Handles one non-blank line inside the paragraph.
    fn parse_line(&mut self, line: &str, number: usize) -> Result<(), ControlError> {
        if line.starts_with([' ', '\t']) {
            let Some(field) = self.fields.last_mut() else {
                return Err(ControlError::ContinuationFirst {
                    line: number,
                    text: excerpt(line),
                });
            };
            field.value.push('\n');
            field.value.push_str(line.trim_end_matches([' ', '\t']));
            return Ok(());
        }
        if line.starts_with('#') {
            return Err(ControlError::Comment {
                line: number,
                text: excerpt(line),
            });
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ControlError::NoColon {
                line: number,
                text: excerpt(line),
            });
        };
        check_field_name(name, number)?;
        if let Some(first) = self.field(name) {
            return Err(ControlError::Duplicate {
                line: number,
                name: name.to_owned(),
                first_line: first.line,
            });
        }
        self.fields.push(Field {
            name: name.to_owned(),
            value: value.trim_matches([' ', '\t']).to_owned(),
            line: number,
        });
        Ok(())
    }

    fn field(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|field| field.name.eq_ignore_ascii_case(name))
    }

    /// The value of field `name`, compared case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.field(name).map(|field| field.value.as_str())
    }

    /// All `(name, value)` pairs in paragraph order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .iter()
            .map(|field| (field.name.as_str(), field.value.as_str()))
    }

    /// Removes field `name` (case-insensitive) and returns its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let at = self
            .fields
            .iter()
            .position(|field| field.name.eq_ignore_ascii_case(name))?;
        Some(self.fields.remove(at).value)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields (only after removing them all: a parsed
    /// paragraph always has at least one).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Appends the paragraph as `Name: value\n` lines, without a trailing
    /// blank line, in a form [`Control::parse`] reads back unchanged.
    pub fn write_to(&self, out: &mut String) {
        for (name, value) in self.fields() {
            out.push_str(name);
            out.push(':');
            // A value whose first line is empty starts right after the colon,
            // so that no trailing space is written.
            if !value.is_empty() && !value.starts_with('\n') {
                out.push(' ');
            }
            out.push_str(value);
            out.push('\n');
        }
    }
}

fn is_blank(line: &str) -> bool {
    line.bytes().all(|b| b == b' ' || b == b'\t')
}

fn check_characters(line: &str, number: usize) -> Result<(), ControlError> {
    if line.contains('\0') {
        return Err(ControlError::Nul { line: number });
    }
    if line.contains('\r') {
        return Err(ControlError::CarriageReturn { line: number });
    }
    Ok(())
}

/// deb822: printable US-ASCII except `:` and space, not starting with `#` or `-`.
fn check_field_name(name: &str, number: usize) -> Result<(), ControlError> {
    let rule = if name.is_empty() {
        "the name before the colon is empty"
    } else if name.starts_with('-') {
        "it must not start with `-`"
    } else if name.contains([' ', '\t']) {
        "field names contain no spaces, and the colon must follow the name directly"
    } else if !name.bytes().all(|b| b.is_ascii_graphic()) {
        "field names use printable US-ASCII characters only"
    } else {
        return Ok(());
    };
    Err(ControlError::FieldName {
        line: number,
        name: excerpt(name),
        rule,
    })
}

/// The start of `text`, short enough to quote in an error message, with
/// control characters escaped.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", Escaped(&text[..cut])),
        None => Escaped(text).to_string(),
    }
}

#[cfg(test)]
mod tests;
