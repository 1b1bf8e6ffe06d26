//! Opaque pagination cursors: base64url of a small JSON object, so clients cannot
//! depend on their inside and a forged one is just a bad request.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Serialize, de::DeserializeOwned};

use crate::error::ApiError;

/// Encodes a cursor.
pub fn encode<T: Serialize>(position: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(position).unwrap_or_default())
}

/// Decodes a cursor, refusing anything that does not round-trip.
pub fn decode<T: DeserializeOwned>(cursor: &str) -> Result<T, ApiError> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| ApiError::invalid("malformed cursor"))?;
    serde_json::from_slice(&bytes).map_err(|_| ApiError::invalid("malformed cursor"))
}

/// The page size when `limit` is absent.
pub const DEFAULT_PAGE: u32 = 50;
/// The largest `limit`.
pub const MAX_PAGE: u32 = 200;

/// `limit`: default [`DEFAULT_PAGE`], at most [`MAX_PAGE`].
pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n @ 1..=MAX_PAGE) => Ok(n),
        Some(_) => Err(ApiError::invalid("limit must be between 1 and 200")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_forgeries_fail() {
        let cursor = encode(&(42u64, "b".to_owned()));
        assert_eq!(decode::<(u64, String)>(&cursor).ok(), Some((42, "b".into())));
        assert!(decode::<(u64, String)>("not*base64").is_err());
        assert!(decode::<(u64, String)>(&encode(&"text")).is_err());
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(page_limit(None).ok(), Some(50));
        assert_eq!(page_limit(Some(200)).ok(), Some(200));
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(201)).is_err());
    }
}
