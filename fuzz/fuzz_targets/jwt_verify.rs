//! Fuzzes bearer-token verification, `chat_core::auth::TokenVerifier::verify`, with the
//! development settings (`dev_jwt_args`: HS256, the dev secret, issuer `edu-platform`,
//! audience `chat`, 30 s leeway).
//!
//! Input: the first byte chooses the mode.
//! * even: the rest, if UTF-8, is the token as it is (raw strings, seeds are real tokens);
//! * odd: the rest drives a JWT-shaped token built here: a header (alg, typ, kid or raw
//!   JSON), claims (sub, exp, nbf, iss, aud, roles, name, extra fields or raw JSON), a
//!   signature (correct with the dev secret, another secret, truncated, bit-flipped,
//!   empty or raw bytes) and a final mangling of the text (padding, whitespace, standard
//!   base64, extra segments...). Most shaped tokens are correctly signed, so the fuzzer
//!   spends its time on the claim checks behind the signature.
//!
//! `verify` must never panic. A token it accepts must:
//! * verify again, to the same claims;
//! * have a `sub` that passes `chat_nats::subjects::is_valid_id`;
//! * be three segments whose header says `alg` HS256 and whose signature segment is
//!   exactly HMAC-SHA256(dev secret, `header.payload`), checked here independently of
//!   jsonwebtoken;
//! * carry `aud` "chat", `iss` "edu-platform", an `exp` not past (with the leeway) and no
//!   `nbf` in the future (with the leeway).
#![no_main]

use std::sync::LazyLock;

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chat_core::auth::{DEFAULT_AUDIENCE, DEV_ISSUER, DEV_SECRET, TokenVerifier, dev_jwt_args};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use sha2::Sha256;

/// The leeway of `dev_jwt_args`, in seconds.
const LEEWAY_S: i64 = 30;

/// `FUZZ_SHOW_ACCEPTED=1` prints every accepted token's `sub`: a way to see that the
/// corpus reaches the code behind the signature check.
static SHOW_ACCEPTED: LazyLock<bool> = LazyLock::new(|| std::env::var_os("FUZZ_SHOW_ACCEPTED").is_some());

static VERIFIER: LazyLock<TokenVerifier> =
    LazyLock::new(|| TokenVerifier::from_args(&dev_jwt_args()).expect("the development settings are valid"));

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let token = if mode % 2 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else { return };
        token.to_owned()
    } else {
        let Ok(shaped) = Shaped::arbitrary_take_rest(Unstructured::new(rest)) else { return };
        shaped.build()
    };
    check(&token);
});

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn check(token: &str) {
    let Ok(claims) = VERIFIER.verify(token) else { return };
    if *SHOW_ACCEPTED {
        eprintln!("accepted: sub {:?} exp {} nbf {:?}", claims.sub, claims.exp, claims.nbf);
    }

    assert_eq!(VERIFIER.verify(token).as_ref(), Ok(&claims), "an accepted token did not verify the same way twice");
    assert!(chat_nats::subjects::is_valid_id(&claims.sub), "accepted sub {:?} is not a valid id", claims.sub);

    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "accepted a token that is not three segments: {token:?}");
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD.decode(parts[0]).expect("accepted a header that is not base64url"),
    )
    .expect("accepted a header that is not JSON");
    assert_eq!(header.get("alg").and_then(Value::as_str), Some("HS256"), "accepted alg other than HS256: {header}");

    let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("accepted a signature that is not base64url");
    let mut mac = Hmac::<Sha256>::new_from_slice(DEV_SECRET.as_bytes()).expect("HMAC takes any key length");
    mac.update(parts[0].as_bytes());
    mac.update(b".");
    mac.update(parts[1].as_bytes());
    assert!(mac.verify_slice(&signature).is_ok(), "accepted a token whose signature is not the dev HMAC: {token:?}");

    assert!(claims.aud.as_ref().is_some_and(|aud| aud.contains(DEFAULT_AUDIENCE)), "accepted a foreign audience");
    let max_ahead = chat_core::config::DEFAULT_JWT_MAX_LIFETIME_S as i128;
    assert!(claims.exp as i128 <= now() as i128 + max_ahead, "accepted an exp beyond the cap: {}", claims.exp);
    if let Some(name) = &claims.name {
        assert!(chat_nats::limits::check_display_name(name).is_ok(), "accepted a name the directory refuses: {name:?}");
    }
    assert_eq!(claims.iss.as_deref(), Some(DEV_ISSUER), "accepted a foreign issuer");
    let now = now();
    assert!(claims.exp as i128 + LEEWAY_S as i128 >= now as i128, "accepted an expired token: exp {}", claims.exp);
    if let Some(nbf) = claims.nbf {
        assert!(nbf as i128 <= now as i128 + LEEWAY_S as i128, "accepted a token not yet valid: nbf {nbf}");
    }
}

/// A JWT-shaped token.
#[derive(Debug, Arbitrary)]
struct Shaped {
    header: HeaderChoice,
    claims: ClaimsChoice,
    signature: SignatureChoice,
    mangle: Mangle,
}

#[derive(Debug, Arbitrary)]
enum HeaderChoice {
    Fields { alg: Alg, typ: Option<String>, kid: Option<String>, extra: Option<(String, String)> },
    RawJson(String),
}

#[derive(Debug, Arbitrary)]
enum Alg {
    Hs256,
    Hs384,
    Hs512,
    None,
    NoneCapital,
    Rs256,
    Es256,
    EdDsa,
    Lowercase,
    Missing,
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum ClaimsChoice {
    Fields {
        sub: Sub,
        exp: Time,
        nbf: Option<Time>,
        iat: Option<Time>,
        iss: Text,
        aud: Audience,
        roles: Vec<String>,
        name: Option<String>,
        extra: Option<(String, String)>,
    },
    RawJson(String),
}

#[derive(Debug, Arbitrary)]
enum Sub {
    Valid(u16),
    Any(String),
    Number(i64),
    Missing,
}

#[derive(Debug, Arbitrary)]
enum Time {
    /// Seconds from now.
    Relative(i32),
    Absolute(u64),
    Negative(i64),
    Float(f64),
    Text(String),
    Null,
}

#[derive(Debug, Arbitrary)]
enum Text {
    Dev,
    Any(String),
    Number(i64),
    Missing,
}

#[derive(Debug, Arbitrary)]
enum Audience {
    Dev,
    Any(String),
    List(Vec<String>),
    DevInList,
    Missing,
}

#[derive(Debug, Arbitrary)]
enum SignatureChoice {
    Correct,
    CorrectAgain,
    OtherSecret(Vec<u8>),
    Truncated(u8),
    BitFlip(u8, u8),
    Raw(Vec<u8>),
    Text(String),
    Empty,
}

#[derive(Debug, Arbitrary)]
enum Mangle {
    Nothing,
    Nothing2,
    Nothing3,
    Padding(u8),
    StandardBase64,
    Whitespace(u8, u8),
    TrailingDot,
    ExtraSegment(String),
    DropSegment(u8),
    Prefix(String),
    Suffix(String),
}

impl Alg {
    fn value(&self) -> Option<Value> {
        Some(Value::from(match self {
            Alg::Hs256 => "HS256",
            Alg::Hs384 => "HS384",
            Alg::Hs512 => "HS512",
            Alg::None => "none",
            Alg::NoneCapital => "None",
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
            Alg::Lowercase => "hs256",
            Alg::Missing => return None,
            Alg::Other(other) => other.as_str(),
        }))
    }
}

impl Time {
    fn value(&self) -> Value {
        match self {
            Time::Relative(offset) => json!(now() + i64::from(*offset)),
            Time::Absolute(at) => json!(at),
            Time::Negative(at) => json!(at),
            Time::Float(at) => json!(at),
            Time::Text(at) => json!(at),
            Time::Null => Value::Null,
        }
    }
}

impl Shaped {
    fn build(&self) -> String {
        let header = match &self.header {
            HeaderChoice::Fields { alg, typ, kid, extra } => {
                let mut header = Map::new();
                if let Some(alg) = alg.value() {
                    header.insert("alg".into(), alg);
                }
                if let Some(typ) = typ {
                    header.insert("typ".into(), json!(typ));
                }
                if let Some(kid) = kid {
                    header.insert("kid".into(), json!(kid));
                }
                if let Some((key, value)) = extra {
                    header.insert(key.clone(), json!(value));
                }
                Value::Object(header).to_string()
            }
            HeaderChoice::RawJson(raw) => raw.clone(),
        };
        let claims = match &self.claims {
            ClaimsChoice::Fields { sub, exp, nbf, iat, iss, aud, roles, name, extra } => {
                let mut claims = Map::new();
                if let Some((key, value)) = extra {
                    claims.insert(key.clone(), json!(value));
                }
                match sub {
                    Sub::Valid(n) => claims.insert("sub".into(), json!(format!("user-{n}"))),
                    Sub::Any(sub) => claims.insert("sub".into(), json!(sub)),
                    Sub::Number(n) => claims.insert("sub".into(), json!(n)),
                    Sub::Missing => None,
                };
                claims.insert("exp".into(), exp.value());
                if let Some(nbf) = nbf {
                    claims.insert("nbf".into(), nbf.value());
                }
                if let Some(iat) = iat {
                    claims.insert("iat".into(), iat.value());
                }
                match iss {
                    Text::Dev => claims.insert("iss".into(), json!(DEV_ISSUER)),
                    Text::Any(iss) => claims.insert("iss".into(), json!(iss)),
                    Text::Number(n) => claims.insert("iss".into(), json!(n)),
                    Text::Missing => None,
                };
                match aud {
                    Audience::Dev => claims.insert("aud".into(), json!(DEFAULT_AUDIENCE)),
                    Audience::Any(aud) => claims.insert("aud".into(), json!(aud)),
                    Audience::List(list) => claims.insert("aud".into(), json!(list)),
                    Audience::DevInList => claims.insert("aud".into(), json!([DEFAULT_AUDIENCE, "other"])),
                    Audience::Missing => None,
                };
                claims.insert("roles".into(), json!(roles));
                if let Some(name) = name {
                    claims.insert("name".into(), json!(name));
                }
                Value::Object(claims).to_string()
            }
            ClaimsChoice::RawJson(raw) => raw.clone(),
        };
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let correct = || {
            let mut mac = Hmac::<Sha256>::new_from_slice(DEV_SECRET.as_bytes()).expect("HMAC takes any key length");
            mac.update(signing_input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        };
        let signature = match &self.signature {
            SignatureChoice::Correct | SignatureChoice::CorrectAgain => URL_SAFE_NO_PAD.encode(correct()),
            SignatureChoice::OtherSecret(secret) => {
                let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
                mac.update(signing_input.as_bytes());
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            }
            SignatureChoice::Truncated(keep) => {
                let mut signature = correct();
                signature.truncate(usize::from(*keep) % signature.len());
                URL_SAFE_NO_PAD.encode(signature)
            }
            SignatureChoice::BitFlip(byte, bit) => {
                let mut signature = correct();
                let at = usize::from(*byte) % signature.len();
                signature[at] ^= 1 << (bit % 8);
                URL_SAFE_NO_PAD.encode(signature)
            }
            SignatureChoice::Raw(raw) => URL_SAFE_NO_PAD.encode(raw),
            SignatureChoice::Text(text) => text.clone(),
            SignatureChoice::Empty => String::new(),
        };
        let token = format!("{signing_input}.{signature}");
        match &self.mangle {
            Mangle::Nothing | Mangle::Nothing2 | Mangle::Nothing3 => token,
            Mangle::Padding(n) => format!("{token}{}", "=".repeat(usize::from(n % 4))),
            Mangle::StandardBase64 => {
                let parts: Vec<String> = token
                    .split('.')
                    .map(|part| URL_SAFE_NO_PAD.decode(part).map(|raw| STANDARD.encode(raw)).unwrap_or(part.to_owned()))
                    .collect();
                parts.join(".")
            }
            Mangle::Whitespace(at, kind) => {
                let mut token = token;
                let mut at = usize::from(*at) % (token.len() + 1);
                while !token.is_char_boundary(at) {
                    at -= 1;
                }
                token.insert(at, [' ', '\t', '\n', '\r', '\u{a0}'][usize::from(*kind) % 5]);
                token
            }
            Mangle::TrailingDot => format!("{token}."),
            Mangle::ExtraSegment(extra) => format!("{token}.{extra}"),
            Mangle::DropSegment(which) => {
                let mut parts: Vec<&str> = token.split('.').collect();
                parts.remove(usize::from(*which) % parts.len());
                parts.join(".")
            }
            Mangle::Prefix(prefix) => format!("{prefix}{token}"),
            Mangle::Suffix(suffix) => format!("{token}{suffix}"),
        }
    }
}
