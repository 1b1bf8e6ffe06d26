//! W3C trace context (`traceparent`), carried from the edge or the api through every
//! NATS hop, so one message's trace id shows up in the logs of every worker it passes.

use rand::Rng;

/// A new `traceparent` (version 00, sampled) with a random trace and span id.
pub fn new_traceparent() -> String {
    let mut rng = rand::rng();
    format!("00-{:032x}-{:016x}-01", rng.random::<u128>().max(1), rng.random::<u64>().max(1))
}

/// The trace id of a well-formed `traceparent`.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(span, 16)
        && span.bytes().any(|b| b != b'0')
        && hex(flags, 2)
        && parts.next().is_none();
    valid.then_some(trace)
}

/// The caller's `traceparent` when well formed, else a new one.
pub fn continue_or_start(incoming: Option<&str>) -> String {
    match incoming {
        Some(traceparent) if trace_id(traceparent).is_some() => traceparent.to_owned(),
        _ => new_traceparent(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_traceparents_are_well_formed_and_distinct() {
        let a = new_traceparent();
        assert!(trace_id(&a).is_some(), "{a}");
        assert_ne!(trace_id(&a), trace_id(&new_traceparent()));
    }

    #[test]
    fn malformed_ones_are_replaced() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id(good), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(continue_or_start(Some(good)), good);
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ] {
            assert!(trace_id(bad).is_none(), "{bad}");
            assert_ne!(continue_or_start(Some(bad)), bad);
        }
    }
}
