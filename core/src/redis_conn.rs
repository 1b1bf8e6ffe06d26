//! Redis as one server or as a Redis Cluster, behind one connection type.
//!
//! `CHAT_REDIS_URL` names either:
//! - one server: `redis://[[user]:password@]host[:port][/db]` (or `unix:///path`), as the
//!   redis crate reads it;
//! - a cluster, by a seed list of some of its nodes (the client learns the others from
//!   them): `redis+cluster://[[user]:password@]host1[:port1],host2[:port2],...` (port
//!   6379 when left out; the credentials apply to every node), or a comma-separated list
//!   of two or more single-server URLs, `redis://h1:p1,redis://h2:p2,...`.
//!
//! Characters of a password that mean something in a URL (`@`, `:`, `/`, `,`, `%`) are
//! percent-encoded, as in any URL.
//!
//! [`RedisConnection`] is what every Redis user holds: a reconnecting
//! `ConnectionManager` for one server, a `ClusterConnection` (which follows slot moves
//! and failovers by itself) for a cluster. Both are cheap to clone and speak
//! [`redis::aio::ConnectionLike`], so commands, scripts and pipelines are written once.
//!
//! In a cluster:
//! - a command, a script and a `MULTI` block must touch keys of one slot (the keys in
//!   [`crate::redis_keys`] carry hash tags for that); a `MULTI` block that reaches a
//!   node which lost its slot in a failover is sent again once the client follows the
//!   move;
//! - a plain pipeline may span slots: it is split per slot, the parts go to their nodes
//!   concurrently, and the replies come back in the pipeline's order. Commands of
//!   different slots are then not ordered with respect to each other, so a caller that
//!   needs one step to happen before another on different slots awaits them one by one;
//! - nothing here uses pub/sub (the service's fan-out is NATS).

use std::{num::NonZeroUsize, time::Duration};

use redis::{
    Arg, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::{ClusterClient, ClusterClientBuilder},
    cluster_async::ClusterConnection,
    cluster_routing::{RoutingInfo, SingleNodeRoutingInfo, Slot},
};

/// How long connecting to one node may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one request may take (in a cluster: including its redirections and retries).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Retries of one cluster request (connection errors, `TRYAGAIN`, `CLUSTERDOWN`).
const CLUSTER_RETRIES: u32 = 6;
/// Failed reconnections after which a cluster node is dropped from the client's view
/// until the next topology refresh (a killed master, until its replica takes over).
const CLUSTER_NODE_ATTEMPTS: NonZeroUsize = match NonZeroUsize::new(3) {
    Some(attempts) => attempts,
    None => NonZeroUsize::MIN,
};
/// The URL scheme of a seed list.
const CLUSTER_SCHEME: &str = "redis+cluster://";

/// Where Redis is, parsed from `CHAT_REDIS_URL`.
#[derive(Clone)]
pub enum RedisTarget {
    /// One server.
    Server(redis::Client),
    /// A Redis Cluster, by its seed nodes (boxed: the client is large, and made once).
    Cluster(Box<ClusterClient>),
}

impl RedisTarget {
    /// Parses a URL of the forms in the module documentation; the error says what is wrong.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        let seeds = cluster_seeds(url)?;
        if seeds.is_empty() {
            return redis::Client::open(url).map(RedisTarget::Server).map_err(|error| error.to_string());
        }
        ClusterClientBuilder::new(seeds)
            .connection_timeout(CONNECTION_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .retries(CLUSTER_RETRIES)
            .retry_wait_formula(100, 2)
            .min_retry_wait(50)
            .max_retry_wait(1000)
            .max_connection_attempts(CLUSTER_NODE_ATTEMPTS)
            .build()
            .map(|client| RedisTarget::Cluster(Box::new(client)))
            .map_err(|error| error.to_string())
    }

    /// Whether this is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisTarget::Cluster(_))
    }

    /// Connects: to the server, or to the seeds and from them to every node.
    pub async fn connect(&self) -> RedisResult<RedisConnection> {
        match self {
            RedisTarget::Server(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECTION_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT));
                ConnectionManager::new_with_config(client.clone(), config).await.map(RedisConnection::Server)
            }
            RedisTarget::Cluster(client) => client.get_async_connection().await.map(RedisConnection::Cluster),
        }
    }
}

/// The seed URLs of a cluster URL (each `redis://…`), or none for a single server.
fn cluster_seeds(url: &str) -> Result<Vec<String>, String> {
    if let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) {
        let rest = rest.trim_end_matches('/');
        let (credentials, hosts) = match rest.rsplit_once('@') {
            Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
            None => (String::new(), rest),
        };
        let seeds: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .map(|host| {
                if host.is_empty() || host.contains('/') {
                    Err(format!("bad node {host:?} in the seed list (host[:port], comma-separated)"))
                } else {
                    Ok(format!("redis://{credentials}{host}"))
                }
            })
            .collect::<Result<_, _>>()?;
        return Ok(seeds);
    }
    let parts: Vec<&str> = url.split(',').map(str::trim).collect();
    if parts.len() < 2 {
        return Ok(Vec::new());
    }
    match parts.iter().find(|part| !part.starts_with("redis://")) {
        Some(part) => Err(format!("{part:?}: a list of URLs names a cluster's nodes, each redis://host:port")),
        None => Ok(parts.into_iter().map(str::to_owned).collect()),
    }
}

/// A connection to one server or to a cluster; cheap to clone, reconnects by itself.
#[derive(Clone)]
pub enum RedisConnection {
    /// One server.
    Server(ConnectionManager),
    /// A cluster.
    Cluster(ClusterConnection),
}

impl RedisConnection {
    /// Checks that Redis answers: the server, or every master this client knows of,
    /// with the cluster reporting `cluster_state:ok` (every slot served).
    pub async fn check(&mut self) -> RedisResult<()> {
        let _: String = redis::cmd("PING").query_async(self).await?;
        if let RedisConnection::Cluster(cluster) = self {
            let random = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
            let info: String = redis::from_redis_value(
                cluster.route_command(redis::cmd("CLUSTER").arg("INFO").clone(), random).await?,
            )?;
            if !info.lines().any(|line| line.trim() == "cluster_state:ok") {
                return Err((ErrorKind::Io, "cluster state is not ok (a slot is not served)").into());
            }
        }
        Ok(())
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Server(connection) => connection.req_packed_command(cmd),
            RedisConnection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Server(connection) => connection.req_packed_commands(pipeline, offset, count),
            RedisConnection::Cluster(connection) => {
                if pipeline.is_transaction() {
                    return Box::pin(transaction(connection, pipeline, offset, count));
                }
                let whole = offset == 0 && count == pipeline.len();
                match split_by_slot(pipeline).filter(|_| whole) {
                    Some(parts) => Box::pin(query_parts(connection.clone(), parts, pipeline.len())),
                    None => connection.req_packed_commands(pipeline, offset, count),
                }
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Server(connection) => connection.get_db(),
            RedisConnection::Cluster(connection) => connection.get_db(),
        }
    }
}

/// A `MULTI` block on a cluster. A block sent to a node that no longer serves its slot
/// (a failover the client has not noticed yet) is aborted with `MOVED` for each of its
/// commands, which the cluster client does not follow inside a transaction: then a read
/// of the block's first key follows the redirection and refreshes the client's slot
/// map, and the block is sent once more.
async fn transaction(
    connection: &mut ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> RedisResult<Vec<Value>> {
    match connection.req_packed_commands(pipeline, offset, count).await {
        Err(error) if moved_inside(&error) => {
            if let Some(key) = pipeline.cmd_iter().find_map(key_of) {
                // Only the redirection it follows matters, not its answer.
                let _: RedisResult<Value> = redis::cmd("EXISTS").arg(key).query_async(connection).await;
            }
            connection.req_packed_commands(pipeline, offset, count).await
        }
        other => other,
    }
}

/// Whether a transaction was aborted because its slot is served elsewhere.
fn moved_inside(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Server(ServerErrorKind::ExecAbort)
        && error.clone().into_server_errors().is_some_and(|errors| {
            errors.iter().any(|(_, error)| matches!(error.kind(), Some(ServerErrorKind::Moved | ServerErrorKind::Ask)))
        })
}

/// One part of a split pipeline: its commands and their positions in the whole.
type Part = (Pipeline, Vec<usize>);

/// A plain pipeline whose commands fall in more than one slot, split into one pipeline
/// per slot, each keeping its commands' order; a command without a key goes with the
/// first keyed one. `None` when there is nothing to split: a `MULTI` block (one slot, or
/// the server refuses it) or one slot.
fn split_by_slot(pipeline: &Pipeline) -> Option<Vec<Part>> {
    if pipeline.is_transaction() {
        return None;
    }
    let slots: Vec<Option<Slot>> = pipeline.cmd_iter().map(|cmd| key_of(cmd).map(Slot::for_key)).collect();
    let first = slots.iter().flatten().next().copied()?;
    let mut parts: Vec<(Slot, Part)> = Vec::new();
    for (position, (cmd, slot)) in pipeline.cmd_iter().zip(slots).enumerate() {
        let slot = slot.unwrap_or(first);
        let index = match parts.iter().position(|(s, _)| *s == slot) {
            Some(index) => index,
            None => {
                parts.push((slot, (redis::pipe(), Vec::new())));
                parts.len() - 1
            }
        };
        let (part, positions) = &mut parts[index].1;
        part.add_command(cmd.clone());
        positions.push(position);
    }
    (parts.len() > 1).then(|| parts.into_iter().map(|(_, part)| part).collect())
}

/// The key a command is routed by: the first key of a script call (`EVAL`, `EVALSHA`,
/// `FCALL`: after the key count), else the first argument after the command's name, as
/// for every command the service pipelines (a command whose first argument is no key
/// lands on some node, which redirects it).
fn key_of(cmd: &Cmd) -> Option<&[u8]> {
    let mut args = cmd.args_iter().map(|arg| match arg {
        Arg::Simple(bytes) => Some(bytes),
        _ => None,
    });
    let name = args.next()??;
    let script = [&b"EVAL"[..], b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO", b"FCALL", b"FCALL_RO"]
        .iter()
        .any(|known| name.eq_ignore_ascii_case(known));
    if script {
        let _body = args.next()??;
        let key_count = std::str::from_utf8(args.next()??).ok()?.parse::<usize>().ok()?;
        return if key_count > 0 { args.next()? } else { None };
    }
    args.next()?
}

/// Sends the parts concurrently; the replies in the order of the whole pipeline.
async fn query_parts(connection: ClusterConnection, parts: Vec<Part>, len: usize) -> RedisResult<Vec<Value>> {
    let replies = futures::future::try_join_all(parts.iter().map(|(part, _)| {
        let mut connection = connection.clone();
        async move { connection.req_packed_commands(part, 0, part.len()).await }
    }))
    .await?;
    let mut values = vec![Value::Nil; len];
    for ((_, positions), reply) in parts.iter().zip(replies) {
        if reply.len() != positions.len() {
            return Err((ErrorKind::Client, "a pipeline part got the wrong number of replies").into());
        }
        for (position, value) in positions.iter().zip(reply) {
            values[*position] = value;
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_is_one_server() {
        assert!(!RedisTarget::parse("redis://127.0.0.1:6379").unwrap_or_else(|e| panic!("{e}")).is_cluster());
        assert!(
            !RedisTarget::parse("redis://:secret@redis-primary:6379/0").unwrap_or_else(|e| panic!("{e}")).is_cluster()
        );
        assert!(RedisTarget::parse("not a url").is_err());
    }

    #[test]
    fn a_seed_list_is_a_cluster() {
        let seeds = cluster_seeds("redis+cluster://h1:7000, h2 ,h3:7002/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seeds, ["redis://h1:7000", "redis://h2", "redis://h3:7002"]);
        let seeds = cluster_seeds("redis+cluster://:secret@h1:7000,h2:7001").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seeds, ["redis://:secret@h1:7000", "redis://:secret@h2:7001"]);
        let seeds = cluster_seeds("redis://h1:7000,redis://h2:7001").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seeds, ["redis://h1:7000", "redis://h2:7001"]);
        assert!(
            RedisTarget::parse("redis+cluster://127.0.0.1:7000,127.0.0.1:7001")
                .unwrap_or_else(|e| panic!("{e}"))
                .is_cluster()
        );
        assert!(RedisTarget::parse("redis+cluster://h1").unwrap_or_else(|e| panic!("{e}")).is_cluster());
    }

    #[test]
    fn bad_seed_lists_are_refused() {
        assert!(RedisTarget::parse("redis+cluster://").is_err());
        assert!(RedisTarget::parse("redis+cluster://h1,,h2").is_err());
        assert!(RedisTarget::parse("redis+cluster://h1/0").is_err());
        assert!(RedisTarget::parse("redis://h1,h2").is_err());
        assert!(RedisTarget::parse("redis://h1:7000,redis://h2:notaport").is_err());
    }

    #[test]
    fn a_pipeline_across_slots_is_split_in_order_and_one_slot_is_not() {
        let mut pipe = redis::pipe();
        pipe.incr("rate:{a}:msg:1", 1).expire("rate:{a}:msg:1", 2).incr("rate:{b}:msg:1", 1).incr("rate:{a}:x", 1);
        let parts = split_by_slot(&pipe).unwrap_or_else(|| panic!("two slots"));
        let positions: Vec<&[usize]> = parts.iter().map(|(_, positions)| positions.as_slice()).collect();
        assert_eq!(positions, [&[0, 1, 3][..], &[2][..]]);

        let mut one = redis::pipe();
        one.incr("rate:{a}:msg:1", 1).expire("rate:{a}:msg:1", 2);
        assert!(split_by_slot(&one).is_none(), "one slot goes as it is");
        let mut multi = redis::pipe();
        multi.atomic().incr("{a}", 1).incr("{b}", 1);
        assert!(split_by_slot(&multi).is_none(), "MULTI is never split");
    }

    #[test]
    fn scripts_are_routed_by_their_first_key() {
        let mut script = redis::cmd("EVALSHA");
        script.arg("abc123").arg(2).arg("typing:{c1}:u1:throttle").arg("typing:{c1}:u1").arg("start");
        assert_eq!(key_of(&script), Some(&b"typing:{c1}:u1:throttle"[..]));
        let mut keyless = redis::cmd("EVAL");
        keyless.arg("return 1").arg(0);
        assert_eq!(key_of(&keyless), None);
        assert_eq!(key_of(redis::cmd("GET").arg("k")), Some(&b"k"[..]));
        assert_eq!(key_of(&redis::cmd("PING")), None);
    }
}
