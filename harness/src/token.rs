//! Contract v2 identity from the client's side (A1, A2): what token a user
//! presents, and the issuer that mints it with the secret the server shares.
//!
//! Expiry is counted on the trace clock from an epoch the world fixes: in the
//! simulation the reference server's clock starts at the same constant epoch,
//! so a token that expires mid-session does so at the same simulated instant
//! every run; over real TCP the epoch is the wall clock when the check started.

use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// How long a valid token lives, seconds: longer than any run.
pub const VALID_FOR_S: u64 = 24 * 3_600;

/// What token a user's socket presents in CONNECT (`{"token": …}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenPolicy {
    /// Signed with the shared secret, HS256, `sub` = the user, `exp` a day away.
    Valid,
    /// No `auth` payload at all.
    Absent,
    /// `exp` an hour in the past.
    Expired,
    /// Valid at connect, expiring [`ExpiresMidSession::AFTER_S`] later.
    ExpiresMidSession,
    /// Signed with another secret.
    Forged,
    /// `alg: none`, no signature.
    AlgNone,
    /// A valid token whose payload was edited (`sub` changed) after signing.
    Tampered,
    /// A valid token for the user, with another user's `username` header.
    OtherUserHeader,
}

/// The seconds an [`TokenPolicy::ExpiresMidSession`] token lives.
pub struct ExpiresMidSession;

impl ExpiresMidSession {
    /// Seconds from minting to `exp`.
    pub const AFTER_S: u64 = 3;
}

impl TokenPolicy {
    /// Every policy, in a fixed order.
    pub const ALL: [TokenPolicy; 8] = [
        TokenPolicy::Valid,
        TokenPolicy::Absent,
        TokenPolicy::Expired,
        TokenPolicy::ExpiresMidSession,
        TokenPolicy::Forged,
        TokenPolicy::AlgNone,
        TokenPolicy::Tampered,
        TokenPolicy::OtherUserHeader,
    ];

    /// The name users type and reports print.
    pub fn name(self) -> &'static str {
        match self {
            TokenPolicy::Valid => "valid",
            TokenPolicy::Absent => "absent",
            TokenPolicy::Expired => "expired",
            TokenPolicy::ExpiresMidSession => "expires_mid_session",
            TokenPolicy::Forged => "forged",
            TokenPolicy::AlgNone => "alg_none",
            TokenPolicy::Tampered => "tampered",
            TokenPolicy::OtherUserHeader => "other_user_header",
        }
    }

    /// Whether a conforming v2 server registers a connection presenting this
    /// token at connect time (A1, A2), as the token's user.
    pub fn registers(self) -> bool {
        matches!(
            self,
            TokenPolicy::Valid | TokenPolicy::ExpiresMidSession | TokenPolicy::OtherUserHeader
        )
    }
}

/// Mints tokens with the secret a v2 server shares. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenIssuer {
    secret: Arc<[u8]>,
    clock: IssuerClock,
}

/// Where "now" comes from when a token's `exp` is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssuerClock {
    /// The simulation: a fixed epoch plus turmoil's simulated elapsed time,
    /// the same instant the reference server's clock reads.
    Simulated {
        /// Unix ms at simulated time 0.
        epoch_unix_ms: u64,
    },
    /// Real TCP against a live server: the wall clock.
    Wall,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TokenIssuer(<{} byte secret>, {:?})",
            self.secret.len(),
            self.clock
        )
    }
}

impl TokenIssuer {
    /// An issuer for `secret` reading `clock`.
    pub fn new(secret: impl Into<Vec<u8>>, clock: IssuerClock) -> Self {
        Self {
            secret: secret.into().into(),
            clock,
        }
    }

    /// Unix ms now, by the issuer's clock.
    pub fn now_unix_ms(&self) -> u64 {
        match self.clock {
            IssuerClock::Simulated { epoch_unix_ms } => {
                let elapsed = turmoil::sim_elapsed().unwrap_or_default().as_millis();
                epoch_unix_ms.saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX))
            }
            IssuerClock::Wall => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// The token `policy` presents for `user` now; `None` for
    /// [`TokenPolicy::Absent`].
    pub fn mint(&self, policy: TokenPolicy, user: &str) -> Option<String> {
        self.mint_at(policy, user, self.now_unix_ms())
    }

    /// [`Self::mint`] at `now_unix_ms`.
    pub fn mint_at(&self, policy: TokenPolicy, user: &str, now_unix_ms: u64) -> Option<String> {
        let now_s = now_unix_ms / 1_000;
        let exp = |from_now: i64| (now_s as i64).saturating_add(from_now);
        let day = VALID_FOR_S as i64;
        Some(match policy {
            TokenPolicy::Absent => return None,
            TokenPolicy::Valid | TokenPolicy::OtherUserHeader => {
                self.sign(user, exp(day), &self.secret)
            }
            TokenPolicy::Expired => self.sign(user, exp(-3_600), &self.secret),
            TokenPolicy::ExpiresMidSession => {
                self.sign(user, exp(ExpiresMidSession::AFTER_S as i64), &self.secret)
            }
            TokenPolicy::Forged => self.sign(user, exp(day), b"not the shared secret"),
            TokenPolicy::AlgNone => format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&json!({"sub": user, "exp": exp(day)}))
            ),
            TokenPolicy::Tampered => {
                // Signed for a name that is not the user, then edited to claim it.
                let signed = self.sign(&format!("{user}x"), exp(day), &self.secret);
                let mut parts = signed.split('.');
                let (head, _, signature) = (parts.next(), parts.next(), parts.next());
                format!(
                    "{}.{}.{}",
                    head.unwrap_or_default(),
                    b64(&json!({"sub": user, "exp": exp(day)})),
                    signature.unwrap_or_default()
                )
            }
        })
    }

    fn sign(&self, user: &str, exp: i64, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": user, "exp": exp}),
            &EncodingKey::from_secret(secret),
        )
        .expect("HS256 over JSON claims cannot fail")
    }
}

fn b64(value: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use server_under_test::token::{InvalidToken, Leniency};
    use server_under_test::TokenKey;

    /// The harness's minted tokens are read by the reference server's
    /// verifier exactly as each policy intends.
    #[test]
    fn each_policy_is_what_the_reference_verifier_says_a1() {
        let epoch = 1_759_968_000_000;
        let issuer = TokenIssuer::new(b"s3cret".to_vec(), IssuerClock::Wall);
        let key = TokenKey::new(b"s3cret".to_vec()).unwrap();
        let at = |policy| {
            let token = issuer.mint_at(policy, "alice", epoch + 1_000)?;
            Some(key.verify(&token, epoch + 1_000, Leniency::default()))
        };
        assert_eq!(at(TokenPolicy::Valid).unwrap().unwrap().as_str(), "alice");
        assert!(at(TokenPolicy::ExpiresMidSession).unwrap().is_ok());
        assert_eq!(at(TokenPolicy::Absent), None);
        assert_eq!(at(TokenPolicy::Expired), Some(Err(InvalidToken::Expired)));
        assert_eq!(
            at(TokenPolicy::Forged),
            Some(Err(InvalidToken::BadSignature))
        );
        assert_eq!(
            at(TokenPolicy::AlgNone),
            Some(Err(InvalidToken::WrongAlgorithm))
        );
        assert_eq!(
            at(TokenPolicy::Tampered),
            Some(Err(InvalidToken::BadSignature))
        );
        let later = issuer
            .mint_at(TokenPolicy::ExpiresMidSession, "alice", epoch)
            .unwrap();
        let after_s = ExpiresMidSession::AFTER_S * 1_000;
        assert_eq!(
            key.verify(&later, epoch + after_s, Leniency::default()),
            Err(InvalidToken::Expired)
        );
        for policy in TokenPolicy::ALL {
            assert_eq!(
                at(policy).is_some_and(|r| r.is_ok()),
                policy.registers(),
                "{}",
                policy.name()
            );
        }
        assert!(!format!("{issuer:?}").contains("s3cret"));
    }
}
