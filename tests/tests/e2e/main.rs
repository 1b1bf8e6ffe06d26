//! Every end-to-end test in one binary, one module per area: each extra test binary
//! would link the whole stack again, which makes the test command slow on small boxes.

mod authorization;
mod bench;
mod bus_auth;
mod features;
mod limits;
mod moderation;
mod nats_cluster;
mod operations;
mod pipeline;
mod policy;
mod privacy;
mod protocol;
mod redis_cluster;
mod reports;
mod sdk;
mod web;
