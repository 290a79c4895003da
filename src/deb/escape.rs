//! Showing untrusted text in error messages without passing control characters through to a terminal.

use std::fmt;

/// Displays a string with control characters (newlines, tabs, escape
/// sequences) written as Rust escapes; everything else, including non-ASCII
/// letters, is shown as is.
pub(crate) struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            write_char(c, f)?;
        }
        Ok(())
    }
}

/// Displays one character like [`Escaped`] does.
pub(crate) struct EscapedChar(pub char);

impl fmt::Display for EscapedChar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_char(self.0, f)
    }
}

fn write_char(c: char, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if c.is_control() {
        write!(f, "{}", c.escape_default())
    } else {
        write!(f, "{c}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_only_control_characters() {
        let shown = Escaped("José\n\t\u{1b}[31m`x`").to_string();
        assert_eq!(shown, "José\\n\\t\\u{1b}[31m`x`");
        assert_eq!(EscapedChar('\0').to_string(), "\\u{0}");
        assert_eq!(EscapedChar('ö').to_string(), "ö");
    }
}
