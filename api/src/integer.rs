//! JSON integers as JSON Schema reads them: `934.0` is the integer 934 there (a number
//! with no fraction), so a body field the document calls an integer accepts it too;
//! serde alone would refuse it as a float.

use serde::{Deserialize, Deserializer, de::Error};

/// A JSON number that is a whole number from 0 to `u64::MAX`, written with or without
/// a fraction of zero.
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Whole(u64),
    Float(f64),
}

/// Deserialises a `u64` from any JSON number without a fraction.
pub fn u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    match Number::deserialize(deserializer)? {
        Number::Whole(n) => Ok(n),
        // 2^64 is the first float past u64::MAX; below it every float without a
        // fraction converts exactly.
        Number::Float(f) if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) => Ok(f as u64),
        Number::Float(_) => Err(D::Error::custom("expected a whole number from 0 to 18446744073709551615")),
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, serde::Deserialize)]
    struct Mark {
        #[serde(deserialize_with = "super::u64")]
        seq: u64,
    }

    fn read(json: &str) -> Option<u64> {
        serde_json::from_str::<Mark>(json).ok().map(|mark| mark.seq)
    }

    #[test]
    fn whole_numbers_pass_in_either_spelling_and_nothing_else_does() {
        assert_eq!(read(r#"{"seq":934}"#), Some(934));
        assert_eq!(read(r#"{"seq":934.0}"#), Some(934));
        assert_eq!(read(r#"{"seq":9.34e2}"#), Some(934));
        assert_eq!(read(r#"{"seq":18446744073709551615}"#), Some(u64::MAX));
        for bad in [r#"{"seq":934.5}"#, r#"{"seq":-1}"#, r#"{"seq":-0.5}"#, r#"{"seq":1e20}"#, r#"{"seq":"1"}"#] {
            assert_eq!(read(bad), None, "{bad}");
        }
    }
}
