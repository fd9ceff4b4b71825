//! The identity rule of the contract (I1, I2): who a connection or a poll claims to be.

use std::fmt;

/// The HTTP header that carries identity on the Engine.IO handshake (I1) and on polls (L1).
pub const USERNAME_HEADER: &str = "username";

/// Longest valid username, in characters (I2).
pub const MAX_USERNAME_LEN: usize = 32;

/// A username that satisfies I2: 1 to 32 characters from `[A-Za-z0-9_.-]`.
///
/// Holding one is proof the check ran, so the handlers never re-validate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Username(String);

/// Why a claimed username is not valid (I2). The reason is logged, never sent: the
/// wire reason is always [`InvalidUsername::WIRE_REASON`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUsername {
    /// No `username` header at all: the seed's bug.
    #[error("no username header")]
    Absent,
    /// The header is present but empty.
    #[error("empty username")]
    Empty,
    /// More than [`MAX_USERNAME_LEN`] characters.
    #[error("username longer than {MAX_USERNAME_LEN} characters")]
    TooLong,
    /// A character outside `[A-Za-z0-9_.-]` (space, `/`, non-ASCII, control …).
    #[error("username contains a character outside [A-Za-z0-9_.-]")]
    BadCharacter,
}

impl InvalidUsername {
    /// The reason the reference server sends in `CONNECT_ERROR` and 401 bodies (I3).
    pub const WIRE_REASON: &'static str = "missing or invalid username";
}

impl Username {
    /// Validates a raw claim per I2.
    pub fn parse(raw: &str) -> Result<Self, InvalidUsername> {
        if raw.is_empty() {
            return Err(InvalidUsername::Empty);
        }
        if !raw.bytes().all(is_username_byte) {
            return Err(InvalidUsername::BadCharacter);
        }
        // Every accepted byte is ASCII, so bytes are characters here.
        if raw.len() > MAX_USERNAME_LEN {
            return Err(InvalidUsername::TooLong);
        }
        Ok(Self(raw.to_owned()))
    }

    /// Validates the `username` header of a request: absent, non-UTF-8 and
    /// invalid values are all refused.
    pub fn from_headers(headers: &http::HeaderMap) -> Result<Self, InvalidUsername> {
        let value = headers
            .get(USERNAME_HEADER)
            .ok_or(InvalidUsername::Absent)?;
        let raw = value.to_str().map_err(|_| InvalidUsername::BadCharacter)?;
        Self::parse(raw)
    }

    /// The validated name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_username_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_full_alphabet_at_both_length_bounds_i2() {
        assert!(Username::parse("a").is_ok());
        assert!(Username::parse("shyam_patel").is_ok());
        assert!(Username::parse("A-Z.a_z-0.9").is_ok());
        assert!(Username::parse(&"x".repeat(32)).is_ok());
    }

    #[test]
    fn refuses_empty_long_and_foreign_characters_i2() {
        assert_eq!(Username::parse(""), Err(InvalidUsername::Empty));
        assert_eq!(
            Username::parse(&"x".repeat(33)),
            Err(InvalidUsername::TooLong)
        );
        for bad in [
            "a b",
            "a/b",
            "é",
            "a\u{0}",
            "a\n",
            "a:b",
            "ü".repeat(10).as_str(),
        ] {
            assert_eq!(
                Username::parse(bad),
                Err(InvalidUsername::BadCharacter),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn reads_the_header_and_refuses_its_absence_i1() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(
            Username::from_headers(&headers),
            Err(InvalidUsername::Absent)
        );
        headers.insert(USERNAME_HEADER, "rama".parse().unwrap());
        assert_eq!(Username::from_headers(&headers).unwrap().as_str(), "rama");
        headers.insert(
            USERNAME_HEADER,
            http::HeaderValue::from_bytes(b"r\xffma").unwrap(),
        );
        assert_eq!(
            Username::from_headers(&headers),
            Err(InvalidUsername::BadCharacter)
        );
    }
}
