//! How persister replicas share `CHAT_CMD`: the stream maps each chat to one of a fixed
//! number of partitions, each partition has one durable consumer `persister-<n>`, and
//! a partition is served by the replica that holds its lease.
//!
//! Layout: [`share`] decides how many partitions each replica should own, [`leases`]
//! keeps the leases in a JetStream key-value bucket, [`coordinator`] claims, renews and
//! hands over partitions and runs a pipeline for each one it owns, [`legacy`] drains
//! what the single consumer of earlier versions left before any of that starts. `docs/bus.md`
//! describes the protocol, its timings and its failure cases.

pub mod coordinator;
pub mod leases;
pub mod legacy;
pub mod share;
