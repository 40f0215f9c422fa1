//! The names of people, groups and roles, and the principals certificates carry.

use std::fmt;

use serde::Serialize;

use super::InvalidName;

fn is_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    (1..=64).contains(&bytes.len())
        && matches!(bytes[0], b'a'..=b'z' | b'0'..=b'9')
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
}

/// The name itself, or why it is not one; `what` says which kind of name.
fn parse_name(s: &str, what: &str) -> Result<String, InvalidName> {
    if is_name(s) {
        Ok(s.to_owned())
    } else {
        Err(InvalidName(format!(
            "invalid {what} name {s:?}: use 1-64 of a-z 0-9 . _ - starting with a letter or \
             digit"
        )))
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $ty(String);

        impl $ty {
            /// Accepts `[a-z0-9][a-z0-9._-]{0,63}` and nothing else.
            pub fn parse(s: &str) -> Result<Self, InvalidName> {
                parse_name(s, $what).map(Self)
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        /// Read back through [`Self::parse`]: stored text is validated like input.
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// A person known to the policy; the identity every token and approval resolves to.
    UserName,
    "user"
);
name_type!(
    /// A group of users, named in `requesters` and `approvers` as `group:NAME`.
    GroupName,
    "group"
);
name_type!(
    /// A role a user can ask for; it decides the certificate's principals and limits.
    RoleName,
    "role"
);

/// A login name a certificate is valid for; sshd compares it literally, so only a small
/// safe alphabet is allowed (no wildcards, commas, spaces or control characters).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Principal(String);

impl Principal {
    /// Accepts 1-64 of ASCII letters, digits, `.`, `_`, `-`, `@`, not starting with `-`.
    pub fn parse(s: &str) -> Result<Self, InvalidName> {
        let ok = (1..=64).contains(&s.len())
            && !s.starts_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidName(format!(
                "invalid principal {s:?}: use 1-64 of A-Z a-z 0-9 . _ - @, not starting with -"
            )))
        }
    }

    /// The principal as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
