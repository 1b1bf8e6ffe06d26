//! Token verification against every attack on the list: `alg: none`, the wrong
//! algorithm or key, expired, not yet valid, wrong issuer or audience, missing claims,
//! a string `exp`, unknown key ids, an `exp` beyond the lifetime cap, audience arrays,
//! display names the directory would refuse; and the three public-key algorithms and
//! JWKS.

use std::path::PathBuf;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chat_core::auth::{AuthError, Claims, DEV_SECRET, TokenVerifier, dev_claims, dev_jwt_args, mint_hs256};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

fn key(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/keys").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn hs() -> TokenVerifier {
    TokenVerifier::from_args(&dev_jwt_args()).unwrap_or_else(|e| panic!("{e}"))
}

fn claims() -> Claims {
    dev_claims("u1", "Ann", &["student"], 600)
}

fn sign(header: &Header, body: &serde_json::Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(header, body, key).unwrap_or_else(|e| panic!("{e}"))
}

fn refused(verifier: &TokenVerifier, token: &str) -> String {
    match verifier.verify(token) {
        Err(AuthError::Invalid(reason)) => reason,
        other => panic!("accepted or wrong error: {other:?}"),
    }
}

#[test]
fn alg_none_and_unsigned_tokens_are_refused() {
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap_or_default());
    for alg in ["none", "None", "NONE"] {
        let head = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
        refused(&hs(), &format!("{head}.{body}."));
    }
    let valid = mint_hs256(DEV_SECRET, &claims()).unwrap_or_default();
    let unsigned = format!("{}.", valid.rsplit_once('.').map(|(head, _)| head).unwrap_or_default());
    refused(&hs(), &unsigned);
}

#[test]
fn wrong_algorithm_or_key_is_refused() {
    let secret = EncodingKey::from_secret(DEV_SECRET.as_bytes());
    let body = serde_json::to_value(claims()).unwrap_or_default();
    refused(&hs(), &sign(&Header::new(Algorithm::HS384), &body, &secret));
    refused(&hs(), &sign(&Header::new(Algorithm::HS512), &body, &secret));
    let rsa = EncodingKey::from_rsa_pem(&key("rsa-private.pem")).unwrap_or_else(|e| panic!("{e}"));
    assert!(refused(&hs(), &sign(&Header::new(Algorithm::RS256), &body, &rsa)).contains("not accepted"));
    let other = EncodingKey::from_secret(b"another-secret-which-is-long-enough!!");
    refused(&hs(), &sign(&Header::new(Algorithm::HS256), &body, &other));

    // An RS256 verifier must not accept an HS256 token signed with its public key.
    let mut args = dev_jwt_args();
    args.jwt_algorithms = vec!["RS256".into(), "HS256".into()];
    args.jwt_public_key_file = Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/keys/rsa-public.pem"));
    let verifier = TokenVerifier::from_args(&args).unwrap_or_else(|e| panic!("{e}"));
    let confused = EncodingKey::from_secret(&key("rsa-public.pem"));
    refused(&verifier, &sign(&Header::new(Algorithm::HS256), &body, &confused));
    assert!(verifier.verify(&sign(&Header::new(Algorithm::RS256), &body, &rsa)).is_ok());
}

#[test]
fn time_issuer_audience_and_claim_shapes_are_checked() {
    let secret = EncodingKey::from_secret(DEV_SECRET.as_bytes());
    let header = Header::new(Algorithm::HS256);
    let now = chrono::Utc::now().timestamp();
    let base = serde_json::to_value(claims()).unwrap_or_default();
    let with = |field: &str, value: serde_json::Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = base.clone();
        body.as_object_mut().map(|o| o.remove(field));
        body
    };
    for (case, body) in [
        ("expired beyond the leeway", with("exp", json!(now - 120))),
        ("not valid yet", with("nbf", json!(now + 3600))),
        ("wrong issuer", with("iss", json!("elsewhere"))),
        ("wrong audience", with("aud", json!("billing"))),
        ("string exp", with("exp", json!(format!("{}", now + 600)))),
        ("no exp", without("exp")),
        ("no sub", without("sub")),
        ("no aud", without("aud")),
        ("no iss", without("iss")),
        ("sub breaking a subject", with("sub", json!("u1.>"))),
        ("operator as sub", with("sub", json!({"$ne": ""}))),
    ] {
        assert!(hs().verify(&sign(&header, &body, &secret)).is_err(), "{case} was accepted");
    }
    assert!(hs().verify(&sign(&header, &with("exp", json!(now - 10)), &secret)).is_ok(), "inside the leeway");
}

#[test]
fn an_exp_beyond_the_lifetime_cap_is_refused() {
    let secret = EncodingKey::from_secret(DEV_SECRET.as_bytes());
    let header = Header::new(Algorithm::HS256);
    let now = chrono::Utc::now().timestamp() as u64;
    let cap = chat_core::config::DEFAULT_JWT_MAX_LIFETIME_S;
    let mut body = serde_json::to_value(claims()).unwrap_or_default();
    for exp in [u64::MAX, u64::MAX - 1, i64::MAX as u64 + 1, i64::MAX as u64, now + cap + 120] {
        body["exp"] = json!(exp);
        let reason = refused(&hs(), &sign(&header, &body, &secret));
        assert!(reason.contains("CHAT_JWT_MAX_LIFETIME_S"), "exp {exp}: {reason}");
    }
    body["exp"] = json!(now + cap - 120);
    let accepted = hs().verify(&sign(&header, &body, &secret)).unwrap_or_else(|e| panic!("within the cap: {e}"));
    assert!(accepted.valid_for() <= std::time::Duration::from_secs(cap));
    let mut args = dev_jwt_args();
    args.jwt_max_lifetime_s = 3600;
    let strict = TokenVerifier::from_args(&args).unwrap_or_else(|e| panic!("{e}"));
    refused(&strict, &mint_hs256(DEV_SECRET, &dev_claims("u1", "Ann", &[], 7200)).unwrap_or_default());
    assert!(strict.verify(&mint_hs256(DEV_SECRET, &dev_claims("u1", "Ann", &[], 600)).unwrap_or_default()).is_ok());
}

#[test]
fn an_audience_array_must_contain_the_configured_audience() {
    let secret = EncodingKey::from_secret(DEV_SECRET.as_bytes());
    let header = Header::new(Algorithm::HS256);
    let mut body = serde_json::to_value(claims()).unwrap_or_default();
    for aud in [json!(["chat"]), json!(["lms", "chat"]), json!(["chat", "chat"])] {
        body["aud"] = aud.clone();
        let accepted = hs().verify(&sign(&header, &body, &secret)).unwrap_or_else(|e| panic!("{aud}: {e}"));
        assert!(accepted.aud.is_some_and(|a| a.contains("chat")), "{aud}");
    }
    for aud in [
        json!([]),
        json!(["lms", "billing"]),
        json!(["chat", 1]),
        json!([1]),
        json!([["chat"]]),
        json!({"chat": 1}),
        json!(7),
        json!(null),
    ] {
        body["aud"] = aud.clone();
        refused(&hs(), &sign(&header, &body, &secret));
    }
}

#[test]
fn a_name_the_directory_would_refuse_is_refused() {
    let secret = EncodingKey::from_secret(DEV_SECRET.as_bytes());
    let header = Header::new(Algorithm::HS256);
    let mut body = serde_json::to_value(claims()).unwrap_or_default();
    let too_long = "я".repeat(chat_nats::limits::MAX_NAME_CHARS + 1);
    for name in ["", "  ", "Ann\nTeacher", "Ann\u{7}", "Ann\u{202E}rehcaeT", "a\u{2067}b", too_long.as_str()] {
        body["name"] = json!(name);
        let reason = refused(&hs(), &sign(&header, &body, &secret));
        assert!(reason.contains("name"), "{name:?}: {reason}");
    }
    body["name"] = json!(" Мария Ивановна ");
    let accepted = hs().verify(&sign(&header, &body, &secret)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(accepted.name.as_deref(), Some("Мария Ивановна"), "stored as the directory would store it");
    body.as_object_mut().map(|o| o.remove("name"));
    assert!(hs().verify(&sign(&header, &body, &secret)).is_ok(), "the name stays optional");
}

#[test]
fn public_key_algorithms_verify_with_their_pem() {
    let body = serde_json::to_value(claims()).unwrap_or_default();
    for (alg, name, private, public) in [
        (Algorithm::RS256, "RS256", "rsa-private.pem", "rsa-public.pem"),
        (Algorithm::ES256, "ES256", "ec-private.pem", "ec-public.pem"),
        (Algorithm::EdDSA, "EdDSA", "ed-private.pem", "ed-public.pem"),
    ] {
        let mut args = dev_jwt_args();
        args.jwt_algorithms = vec![name.into()];
        args.jwt_secret = None;
        args.jwt_public_key_file = Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/keys").join(public));
        let verifier = TokenVerifier::from_args(&args).unwrap_or_else(|e| panic!("{name}: {e}"));
        let signing = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&key(private)),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&key(private)),
            _ => EncodingKey::from_ed_pem(&key(private)),
        }
        .unwrap_or_else(|e| panic!("{e}"));
        let token = sign(&Header::new(alg), &body, &signing);
        assert_eq!(verifier.verify(&token).map(|c| c.sub).ok().as_deref(), Some("u1"), "{name}");
        refused(&verifier, &mint_hs256(DEV_SECRET, &claims()).unwrap_or_default());
    }
}

#[test]
fn jwks_keys_are_chosen_by_kid_only() {
    let mut args = dev_jwt_args();
    args.jwt_algorithms = vec!["RS256".into()];
    args.jwt_secret = None;
    args.jwt_jwks_file = Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/keys/jwks.json"));
    let verifier = TokenVerifier::from_args(&args).unwrap_or_else(|e| panic!("{e}"));
    let body = serde_json::to_value(claims()).unwrap_or_default();
    let k2 = EncodingKey::from_rsa_pem(&key("rsa2-private.pem")).unwrap_or_else(|e| panic!("{e}"));
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k2".into());
    assert!(verifier.verify(&sign(&header, &body, &k2)).is_ok());
    header.kid = Some("k-unknown".into());
    assert!(refused(&verifier, &sign(&header, &body, &k2)).contains("unknown key id"));
    let other = EncodingKey::from_rsa_pem(&key("rsa-private.pem")).unwrap_or_else(|e| panic!("{e}"));
    header.kid = Some("k2".into());
    refused(&verifier, &sign(&header, &body, &other));
}

#[test]
fn bad_configuration_stops_start_up_with_the_variable_named() {
    let mut args = dev_jwt_args();
    args.jwt_secret = Some("short".into());
    assert!(TokenVerifier::from_args(&args).is_err());
    let mut args = dev_jwt_args();
    args.jwt_algorithms = vec!["none".into()];
    assert!(TokenVerifier::from_args(&args).is_err());
    let mut args = dev_jwt_args();
    args.jwt_algorithms = vec!["RS256".into()];
    let error = TokenVerifier::from_args(&args).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("CHAT_JWT_PUBLIC_KEY_FILE"), "{error}");
    args.jwt_public_key_file = Some(PathBuf::from("/nonexistent.pem"));
    let error = TokenVerifier::from_args(&args).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("CHAT_JWT_PUBLIC_KEY_FILE"), "{error}");
}
