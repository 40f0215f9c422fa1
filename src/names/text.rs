//! Free text people write (reasons, comments), refused if it could hide or forge anything.

use serde::Serialize;

use super::InvalidName;

/// Free text a person wrote (a reason, a comment): bounded, without control characters,
/// so that it cannot forge log lines or terminal output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Text(String);

impl Text {
    /// Longest accepted text, in characters.
    pub const MAX_CHARS: usize = 1024;

    /// Accepts 1-1024 characters with no control characters; `what` names the field.
    pub fn parse(s: &str, what: &str) -> Result<Self, InvalidName> {
        let chars = s.chars().count();
        if chars == 0 || s.trim().is_empty() {
            return Err(InvalidName(format!("{what} is required")));
        }
        if chars > Self::MAX_CHARS {
            return Err(InvalidName(format!(
                "{what} is too long: {chars} characters, at most {}",
                Self::MAX_CHARS
            )));
        }
        if let Some(c) = s.chars().find(|&c| is_forbidden_char(c)) {
            return Err(InvalidName(format!(
                "{what} contains a control or invisible character (U+{:04X})",
                c as u32
            )));
        }
        Ok(Self(s.to_owned()))
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Control characters, line and paragraph separators (a new line in a log viewer), and
/// every code point that shows as nothing or reorders text, so that a reason shown to an
/// approver is all there is to it: Unicode's `Default_Ignorable_Code_Point` set (bidi
/// marks and overrides, zero-width characters, soft hyphen, word joiner and invisible
/// operators, variation selectors, the combining grapheme joiner, Hangul fillers, Mongolian
/// free variation selectors, tag characters, and the code points reserved as such), plus
/// the Braille blank U+2800 and the interlinear annotation controls, which also show as
/// nothing; the other format characters (Cf); and private-use code points.
pub(crate) fn is_forbidden_char(c: char) -> bool {
    c.is_control() || FORBIDDEN.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// The code points [`is_forbidden_char`] refuses besides the control characters, as
/// inclusive ranges (the OpenAPI document's pattern for free text is built from them).
pub(crate) const FORBIDDEN: &[(char, char)] = &[
    ('\u{ad}', '\u{ad}'),
    ('\u{34f}', '\u{34f}'),
    ('\u{61c}', '\u{61c}'),
    ('\u{115f}', '\u{1160}'),
    ('\u{17b4}', '\u{17b5}'),
    ('\u{180b}', '\u{180f}'),
    ('\u{200b}', '\u{200f}'),
    ('\u{2028}', '\u{202e}'),
    ('\u{2060}', '\u{206f}'),
    ('\u{2800}', '\u{2800}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{fe00}', '\u{fe0f}'),
    ('\u{feff}', '\u{feff}'),
    ('\u{ffa0}', '\u{ffa0}'),
    ('\u{fff0}', '\u{fffb}'),
    ('\u{1bca0}', '\u{1bca3}'),
    ('\u{1d173}', '\u{1d17a}'),
    ('\u{e0000}', '\u{e0fff}'),
    // The other format characters (General_Category Cf): prepended number
    // marks, the Syriac abbreviation mark, Egyptian hieroglyph format controls.
    ('\u{600}', '\u{605}'),
    ('\u{6dd}', '\u{6dd}'),
    ('\u{70f}', '\u{70f}'),
    ('\u{890}', '\u{891}'),
    ('\u{8e2}', '\u{8e2}'),
    ('\u{110bd}', '\u{110bd}'),
    ('\u{110cd}', '\u{110cd}'),
    ('\u{13430}', '\u{1345f}'),
    // Private use: no meaning anyone agreed on, drawn as anything or nothing.
    ('\u{e000}', '\u{f8ff}'),
    ('\u{f0000}', '\u{10ffff}'),
];
