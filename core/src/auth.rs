//! Token verification. The accepted algorithms and keys come from configuration only;
//! the token's header never chooses them.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::JwtArgs;

/// The development HS256 secret used by the run command and the tests.
pub const DEV_SECRET: &str = "dev-only-secret-change-me-0123456789";
/// The development issuer.
pub const DEV_ISSUER: &str = "edu-platform";
/// The default audience.
pub const DEFAULT_AUDIENCE: &str = "chat";
/// HS256 secrets shorter than this are refused.
pub const MIN_SECRET_BYTES: usize = 32;

/// The claims the chat service reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Platform roles: `student`, `teacher`, `admin`, `service`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

impl Claims {
    /// True when the token grants the platform role.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// Why a token was refused. The message is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token was presented.
    #[error("missing bearer token")]
    Missing,
    /// The token did not verify.
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Why the verifier could not be built from configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyConfigError {
    /// No key configured for an accepted algorithm.
    #[error("CHAT_JWT_SECRET is required for HS256")]
    MissingSecret,
    /// The secret is too short to be safe.
    #[error("CHAT_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")]
    WeakSecret,
    /// An algorithm this build does not accept.
    #[error("CHAT_JWT_ALGORITHMS: unsupported algorithm {0:?}")]
    UnsupportedAlgorithm(String),
}

/// Verifies bearer tokens with the configured algorithms and keys.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier").field("algorithms", &self.validation.algorithms).finish()
    }
}

impl TokenVerifier {
    /// Builds the verifier from `CHAT_JWT_*` settings.
    pub fn from_args(args: &JwtArgs) -> Result<Self, KeyConfigError> {
        let mut algorithms = Vec::new();
        for name in &args.jwt_algorithms {
            match name.trim() {
                "HS256" => algorithms.push(Algorithm::HS256),
                other => return Err(KeyConfigError::UnsupportedAlgorithm(other.to_owned())),
            }
        }
        let secret = args.jwt_secret.as_deref().ok_or(KeyConfigError::MissingSecret)?;
        if secret.len() < MIN_SECRET_BYTES {
            return Err(KeyConfigError::WeakSecret);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = algorithms;
        validation.leeway = args.jwt_leeway_s;
        validation.validate_nbf = true;
        validation.set_audience(&[args.jwt_audience.as_str()]);
        let mut required = vec!["exp", "sub", "aud"];
        if let Some(issuer) = &args.jwt_issuer {
            validation.set_issuer(&[issuer.as_str()]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(TokenVerifier { key: DecodingKey::from_secret(secret.as_bytes()), validation })
    }

    /// Checks signature, algorithm and claims; returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|error| AuthError::Invalid(error.to_string()))?;
        let claims = data.claims;
        // User ids travel inside NATS subjects.
        if !chat_nats::subjects::is_valid_id(&claims.sub) {
            return Err(AuthError::Invalid("sub must be 1-64 characters of [A-Za-z0-9_-]".into()));
        }
        Ok(claims)
    }
}

/// Signs claims with an HS256 secret: development tokens and tests only.
pub fn mint_hs256(secret: &str, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes()))
}

/// Claims for a development token valid for `ttl_s` seconds.
pub fn dev_claims(user_id: &str, name: &str, roles: &[&str], ttl_s: u64) -> Claims {
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    Claims {
        sub: user_id.to_owned(),
        name: Some(name.to_owned()),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        exp: now + ttl_s,
        iat: Some(now),
        nbf: None,
        iss: Some(DEV_ISSUER.to_owned()),
        aud: Some(DEFAULT_AUDIENCE.to_owned()),
    }
}

/// The `CHAT_JWT_*` settings of the development setup.
pub fn dev_jwt_args() -> JwtArgs {
    JwtArgs {
        jwt_algorithms: vec!["HS256".into()],
        jwt_secret: Some(DEV_SECRET.into()),
        jwt_issuer: Some(DEV_ISSUER.into()),
        jwt_audience: DEFAULT_AUDIENCE.into(),
        jwt_leeway_s: 30,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier() -> TokenVerifier {
        TokenVerifier::from_args(&dev_jwt_args()).expect("dev settings are valid")
    }

    #[test]
    fn a_dev_token_verifies() {
        let token = mint_hs256(DEV_SECRET, &dev_claims("u1", "Ann", &["student"], 60)).expect("mint");
        let claims = verifier().verify(&token).expect("valid");
        assert_eq!(claims.sub, "u1");
        assert!(claims.has_role("student"));
    }

    #[test]
    fn wrong_secret_expired_and_foreign_issuer_are_refused() {
        let other = mint_hs256("another-secret-that-is-long-enough-000", &dev_claims("u1", "A", &[], 60));
        assert!(verifier().verify(&other.expect("mint")).is_err());

        let mut expired = dev_claims("u1", "A", &[], 0);
        expired.exp -= 3600;
        assert!(verifier().verify(&mint_hs256(DEV_SECRET, &expired).expect("mint")).is_err());

        let mut foreign = dev_claims("u1", "A", &[], 60);
        foreign.iss = Some("elsewhere".into());
        assert!(verifier().verify(&mint_hs256(DEV_SECRET, &foreign).expect("mint")).is_err());
    }

    #[test]
    fn a_subject_that_would_break_a_nats_subject_is_refused() {
        let token = mint_hs256(DEV_SECRET, &dev_claims("u.1", "A", &[], 60)).expect("mint");
        assert!(matches!(verifier().verify(&token), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn short_secrets_and_unknown_algorithms_stop_start_up() {
        let mut args = dev_jwt_args();
        args.jwt_secret = Some("short".into());
        assert_eq!(TokenVerifier::from_args(&args).err(), Some(KeyConfigError::WeakSecret));
        let mut args = dev_jwt_args();
        args.jwt_algorithms = vec!["none".into()];
        assert!(matches!(TokenVerifier::from_args(&args), Err(KeyConfigError::UnsupportedAlgorithm(_))));
    }
}
