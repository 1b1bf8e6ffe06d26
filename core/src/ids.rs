//! Ids: time-ordered UUIDv7 in simple (hyphen-free) form, which sorts by creation time
//! and is safe inside NATS subjects.

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}
