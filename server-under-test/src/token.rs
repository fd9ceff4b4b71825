//! The identity rule of contract v2 (A1): an HS256 JSON Web Token whose `sub` is
//! the username, checked against the server's clock.
//!
//! Expiry is judged here, not by `jsonwebtoken` (which reads the wall clock): the
//! server's [`Clock`](crate::clock::Clock) is simulated inside turmoil, so a
//! token expiring mid-session expires at the same simulated instant every run.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::username::{InvalidUsername, Username};

/// What `/health` says a v2 server authenticates with (H2).
pub const AUTH_SCHEME: &str = "jwt-hs256";

/// The `Authorization` scheme of a poll (A3).
pub const BEARER: &str = "Bearer ";

/// The shared HS256 secret. Never printed: `Debug` shows its length only.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenKey(Arc<[u8]>);

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenKey(<{} bytes, not shown>)", self.0.len())
    }
}

/// Why a token is not a valid identity (A1). The text names the defect and
/// never the token itself (A6).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidToken {
    /// No token where one was required.
    #[error("no token")]
    Absent,
    /// Not three base64url parts with JSON header and claims.
    #[error("malformed token")]
    Malformed,
    /// The header's `alg` is not exactly `HS256` (`none` included).
    #[error("token algorithm is not HS256")]
    WrongAlgorithm,
    /// The signature does not verify with the server's secret.
    #[error("token signature does not verify")]
    BadSignature,
    /// No numeric `exp` claim.
    #[error("token has no exp")]
    NoExpiry,
    /// `exp` is not in the future.
    #[error("token expired")]
    Expired,
    /// `sub` is absent or not a valid username (I2).
    #[error("token sub is not a valid username")]
    BadSubject,
}

/// Deliberate token-handling defects (the reference server's bug switches).
#[derive(Clone, Copy, Debug, Default)]
pub struct Leniency {
    /// `exp` is not looked at.
    pub skip_exp: bool,
    /// A token whose header says `alg: none` is taken unsigned.
    pub accept_alg_none: bool,
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<serde_json::Value>,
    exp: Option<serde_json::Value>,
}

impl TokenKey {
    /// A key from the secret's bytes; an empty secret is refused.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, &'static str> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err("the JWT secret is empty");
        }
        Ok(Self(secret.into()))
    }

    /// The username a token proves at `now_unix_ms` (A1).
    pub fn verify(
        &self,
        token: &str,
        now_unix_ms: u64,
        lenient: Leniency,
    ) -> Result<Username, InvalidToken> {
        let claims = match header_alg(token)?.as_str() {
            "HS256" => self.verified_claims(token)?,
            "none" if lenient.accept_alg_none => unverified_claims(token)?,
            _ => return Err(InvalidToken::WrongAlgorithm),
        };
        if !lenient.skip_exp {
            let exp_ms = claims
                .exp
                .as_ref()
                .and_then(serde_json::Value::as_f64)
                .filter(|exp| exp.is_finite())
                .ok_or(InvalidToken::NoExpiry)?
                * 1000.0;
            if exp_ms <= now_unix_ms as f64 {
                return Err(InvalidToken::Expired);
            }
        }
        let sub = claims.sub.as_ref().and_then(serde_json::Value::as_str);
        Username::parse(sub.ok_or(InvalidToken::BadSubject)?)
            .map_err(|_: InvalidUsername| InvalidToken::BadSubject)
    }

    fn verified_claims(&self, token: &str) -> Result<Claims, InvalidToken> {
        let mut validation = Validation::new(Algorithm::HS256);
        // `exp` and `sub` are judged in `verify`, against the server's clock.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&self.0), &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => InvalidToken::BadSignature,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => InvalidToken::WrongAlgorithm,
                _ => InvalidToken::Malformed,
            })
    }
}

/// The `alg` of a token's header, read without trusting anything else.
fn header_alg(token: &str) -> Result<String, InvalidToken> {
    let header = part(token, 0)?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(|_| InvalidToken::Malformed)?;
    header["alg"]
        .as_str()
        .map(str::to_owned)
        .ok_or(InvalidToken::Malformed)
}

/// [`Bug`](crate::Bug) `accept_alg_none`: the claims, believed unsigned.
fn unverified_claims(token: &str) -> Result<Claims, InvalidToken> {
    serde_json::from_slice(&part(token, 1)?).map_err(|_| InvalidToken::Malformed)
}

fn part(token: &str, index: usize) -> Result<Vec<u8>, InvalidToken> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(InvalidToken::Malformed);
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[index])
        .map_err(|_| InvalidToken::Malformed)
}

/// The token of a poll: `Authorization: Bearer <jwt>` (A3).
pub fn from_authorization(headers: &http::HeaderMap) -> Result<&str, InvalidToken> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or(InvalidToken::Absent)?;
    let value = value.to_str().map_err(|_| InvalidToken::Malformed)?;
    value.strip_prefix(BEARER).ok_or(InvalidToken::Malformed)
}

/// The token of a socket connection: `{"token": "<jwt>"}` in CONNECT (A2).
pub fn from_connect_auth(auth: Option<&serde_json::Value>) -> Result<&str, InvalidToken> {
    auth.and_then(|auth| auth.get("token"))
        .ok_or(InvalidToken::Absent)?
        .as_str()
        .ok_or(InvalidToken::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    const NOW_MS: u64 = 1_759_968_000_000;

    fn key() -> TokenKey {
        TokenKey::new(b"test secret".to_vec()).unwrap()
    }

    fn sign(claims: serde_json::Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn b64(json: serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
    }

    #[test]
    fn a_valid_token_is_its_sub_a1() {
        let exp = NOW_MS / 1000 + 60;
        let token = sign(
            serde_json::json!({"sub": "alice", "exp": exp}),
            b"test secret",
        );
        let user = key().verify(&token, NOW_MS, Leniency::default()).unwrap();
        assert_eq!(user.as_str(), "alice");
    }

    #[test]
    fn every_invalid_token_is_refused_with_its_reason_a1() {
        let exp = NOW_MS / 1000 + 60;
        let good = sign(
            serde_json::json!({"sub": "alice", "exp": exp}),
            b"test secret",
        );
        let (head, _) = good.split_once('.').unwrap();
        let signature = good.rsplit_once('.').unwrap().1;
        let tampered = format!(
            "{head}.{}.{signature}",
            b64(serde_json::json!({"sub": "bob", "exp": exp}))
        );
        let none = format!(
            "{}.{}.",
            b64(serde_json::json!({"alg": "none", "typ": "JWT"})),
            b64(serde_json::json!({"sub": "alice", "exp": exp}))
        );
        let cases = [
            (
                sign(serde_json::json!({"sub": "alice", "exp": exp}), b"other"),
                InvalidToken::BadSignature,
            ),
            (tampered, InvalidToken::BadSignature),
            (none.clone(), InvalidToken::WrongAlgorithm),
            (
                sign(
                    serde_json::json!({"sub": "alice", "exp": NOW_MS / 1000}),
                    b"test secret",
                ),
                InvalidToken::Expired,
            ),
            (
                sign(serde_json::json!({"sub": "alice"}), b"test secret"),
                InvalidToken::NoExpiry,
            ),
            (
                sign(
                    serde_json::json!({"sub": "a b", "exp": exp}),
                    b"test secret",
                ),
                InvalidToken::BadSubject,
            ),
            (
                sign(serde_json::json!({"exp": exp}), b"test secret"),
                InvalidToken::BadSubject,
            ),
            ("not a token".to_owned(), InvalidToken::Malformed),
        ];
        for (token, why) in cases {
            assert_eq!(
                key().verify(&token, NOW_MS, Leniency::default()),
                Err(why.clone()),
                "{why}"
            );
        }
        let lenient = Leniency {
            accept_alg_none: true,
            skip_exp: true,
        };
        assert_eq!(
            key().verify(&none, NOW_MS, lenient).unwrap().as_str(),
            "alice"
        );
    }

    #[test]
    fn the_secret_is_never_printed_a6() {
        assert_eq!(format!("{:?}", key()), "TokenKey(<11 bytes, not shown>)");
        assert!(TokenKey::new(Vec::new()).is_err());
    }
}
