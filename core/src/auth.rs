//! Token verification. The accepted algorithms come from configuration only; the
//! token's header never chooses them. Keys: an HS256 secret, one PEM public key
//! (RS256, ES256 or EdDSA) for tokens without a `kid`, and a JWKS file whose keys are
//! chosen by `kid` — an unknown `kid` is refused, never guessed.
//!
//! Beyond the signature, the verifier is the one place that bounds what a token may
//! claim, so that REST and WebSocket refuse the same tokens: an `exp` further ahead than
//! `CHAT_JWT_MAX_LIFETIME_S`, an `aud` (string or array) without the configured
//! audience, a `sub` that could not travel in a NATS subject, a `name` that the user
//! directory would refuse from the platform.

use std::{collections::HashMap, time::Duration};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, jwk::JwkSet};
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
    pub aud: Option<Audience>,
}

impl Claims {
    /// True when the token grants the platform role.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// How long the token is valid from now (zero once expired). The verifier bounds
    /// `exp`, so adding this to a clock reading cannot overflow.
    pub fn valid_for(&self) -> Duration {
        Duration::from_secs(self.exp.saturating_sub(unix_now_s()))
    }
}

/// The `aud` claim: RFC 7519 allows one string or an array of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// `"aud": "chat"`.
    One(String),
    /// `"aud": ["chat", "lms"]`.
    Many(Vec<String>),
}

impl Audience {
    /// True when `audience` is, or is among, the token's audiences.
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(one) => one == audience,
            Audience::Many(many) => many.iter().any(|a| a == audience),
        }
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
    #[error("no key configured for {0}: set CHAT_JWT_SECRET (HS256), CHAT_JWT_PUBLIC_KEY_FILE or CHAT_JWT_JWKS_FILE")]
    MissingKey(String),
    /// The secret is too short to be safe.
    #[error("CHAT_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")]
    WeakSecret,
    /// An algorithm this build does not accept.
    #[error("CHAT_JWT_ALGORITHMS: unsupported algorithm {0:?} (use HS256, RS256, ES256, EdDSA)")]
    UnsupportedAlgorithm(String),
    /// A key file could not be read or parsed.
    #[error("{variable}: {reason}")]
    BadKeyFile {
        /// The setting naming the file.
        variable: &'static str,
        /// What went wrong.
        reason: String,
    },
}

/// The algorithms this service accepts, by configuration name.
fn algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "HS256" => Some(Algorithm::HS256),
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

/// Verifies bearer tokens with the configured algorithms and keys.
#[derive(Clone)]
pub struct TokenVerifier {
    algorithms: Vec<Algorithm>,
    secret: Option<DecodingKey>,
    public_key: Option<(Algorithm, DecodingKey)>,
    by_kid: HashMap<String, (Option<Algorithm>, DecodingKey)>,
    template: Validation,
    max_lifetime_s: u64,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("algorithms", &self.algorithms)
            .field("kids", &self.by_kid.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TokenVerifier {
    /// Builds the verifier from `CHAT_JWT_*` settings.
    pub fn from_args(args: &JwtArgs) -> Result<Self, KeyConfigError> {
        let mut algorithms = Vec::new();
        for name in &args.jwt_algorithms {
            let name = name.trim();
            algorithms.push(algorithm(name).ok_or_else(|| KeyConfigError::UnsupportedAlgorithm(name.to_owned()))?);
        }
        let secret = match &args.jwt_secret {
            Some(secret) if secret.len() < MIN_SECRET_BYTES => return Err(KeyConfigError::WeakSecret),
            Some(secret) => Some(DecodingKey::from_secret(secret.as_bytes())),
            None => None,
        };
        let public_key = match &args.jwt_public_key_file {
            Some(path) => Some(read_pem(path, &algorithms)?),
            None => None,
        };
        let by_kid = match &args.jwt_jwks_file {
            Some(path) => read_jwks(path)?,
            None => HashMap::new(),
        };
        for alg in &algorithms {
            let has_key = match alg {
                Algorithm::HS256 => secret.is_some(),
                other => public_key.as_ref().is_some_and(|(a, _)| a == other) || !by_kid.is_empty(),
            };
            if !has_key {
                return Err(KeyConfigError::MissingKey(format!("{alg:?}")));
            }
        }
        let mut template = Validation::new(Algorithm::HS256);
        template.leeway = args.jwt_leeway_s;
        template.validate_nbf = true;
        template.set_audience(&[args.jwt_audience.as_str()]);
        let mut required = vec!["exp", "sub", "aud"];
        if let Some(issuer) = &args.jwt_issuer {
            template.set_issuer(&[issuer.as_str()]);
            required.push("iss");
        }
        template.set_required_spec_claims(&required);
        let max_lifetime_s = args.jwt_max_lifetime_s;
        Ok(TokenVerifier { algorithms, secret, public_key, by_kid, template, max_lifetime_s })
    }

    /// Checks algorithm, key, signature and claims; returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let invalid = |reason: &str| AuthError::Invalid(reason.to_owned());
        let header = jsonwebtoken::decode_header(token).map_err(|error| AuthError::Invalid(error.to_string()))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(invalid("algorithm not accepted"));
        }
        let key = match &header.kid {
            Some(kid) => {
                let (alg, key) = self.by_kid.get(kid).ok_or_else(|| invalid("unknown key id"))?;
                if alg.is_some_and(|alg| alg != header.alg) {
                    return Err(invalid("algorithm does not match the key"));
                }
                key
            }
            None if header.alg == Algorithm::HS256 => self.secret.as_ref().ok_or_else(|| invalid("no key"))?,
            None => match &self.public_key {
                Some((alg, key)) if *alg == header.alg => key,
                _ => return Err(invalid("no key for this algorithm")),
            },
        };
        let mut validation = self.template.clone();
        validation.algorithms = vec![header.alg];
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|error| AuthError::Invalid(error.to_string()))?;
        let mut claims = data.claims;
        // Far-future expiries are refused rather than clamped: no identity provider
        // issues them on purpose, and honouring one would make a leaked token everlasting.
        if claims.exp.saturating_sub(unix_now_s()) > self.max_lifetime_s {
            return Err(AuthError::Invalid(format!(
                "exp is more than {} s ahead (CHAT_JWT_MAX_LIFETIME_S)",
                self.max_lifetime_s
            )));
        }
        // User ids travel inside NATS subjects.
        if !chat_nats::subjects::is_valid_id(&claims.sub) {
            return Err(invalid("sub must be 1-64 characters of [A-Za-z0-9_-]"));
        }
        // The name goes into the user directory, under the same rule as the platform's
        // own upserts.
        if let Some(name) = &mut claims.name {
            *name = chat_nats::limits::check_display_name(name).map_err(AuthError::Invalid)?.to_owned();
        }
        Ok(claims)
    }
}

fn read_pem(path: &std::path::Path, algorithms: &[Algorithm]) -> Result<(Algorithm, DecodingKey), KeyConfigError> {
    let bad = |reason: String| KeyConfigError::BadKeyFile { variable: "CHAT_JWT_PUBLIC_KEY_FILE", reason };
    let pem = std::fs::read(path).map_err(|error| bad(format!("{}: {error}", path.display())))?;
    let candidates = algorithms.iter().filter(|alg| **alg != Algorithm::HS256);
    for alg in candidates {
        let key = match alg {
            Algorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
            Algorithm::ES256 => DecodingKey::from_ec_pem(&pem),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
            _ => continue,
        };
        if let Ok(key) = key {
            return Ok((*alg, key));
        }
    }
    Err(bad("not a public key of an accepted algorithm (RS256, ES256, EdDSA)".into()))
}

fn read_jwks(path: &std::path::Path) -> Result<HashMap<String, (Option<Algorithm>, DecodingKey)>, KeyConfigError> {
    let bad = |reason: String| KeyConfigError::BadKeyFile { variable: "CHAT_JWT_JWKS_FILE", reason };
    let text = std::fs::read_to_string(path).map_err(|error| bad(format!("{}: {error}", path.display())))?;
    let set: JwkSet = serde_json::from_str(&text).map_err(|error| bad(error.to_string()))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let kid = jwk.common.key_id.clone().ok_or_else(|| bad("every key needs a kid".into()))?;
        let alg = jwk.common.key_algorithm.and_then(|a| algorithm(&format!("{a:?}")));
        let key = DecodingKey::from_jwk(jwk).map_err(|error| bad(format!("key {kid}: {error}")))?;
        keys.insert(kid, (alg, key));
    }
    Ok(keys)
}

fn unix_now_s() -> u64 {
    chrono::Utc::now().timestamp().max(0) as u64
}

/// Signs claims with an HS256 secret: development tokens and tests only.
pub fn mint_hs256(secret: &str, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes()))
}

/// Claims for a development token valid for `ttl_s` seconds.
pub fn dev_claims(user_id: &str, name: &str, roles: &[&str], ttl_s: u64) -> Claims {
    let now = unix_now_s();
    Claims {
        sub: user_id.to_owned(),
        name: Some(name.to_owned()),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        exp: now + ttl_s,
        iat: Some(now),
        nbf: None,
        iss: Some(DEV_ISSUER.to_owned()),
        aud: Some(Audience::One(DEFAULT_AUDIENCE.to_owned())),
    }
}

/// The `CHAT_JWT_*` settings of the development setup.
pub fn dev_jwt_args() -> JwtArgs {
    JwtArgs {
        jwt_algorithms: vec!["HS256".into()],
        jwt_secret: Some(DEV_SECRET.into()),
        jwt_public_key_file: None,
        jwt_jwks_file: None,
        jwt_issuer: Some(DEV_ISSUER.into()),
        jwt_audience: DEFAULT_AUDIENCE.into(),
        jwt_leeway_s: 30,
        jwt_max_lifetime_s: crate::config::DEFAULT_JWT_MAX_LIFETIME_S,
    }
}
