//! A Redis Cluster on 127.0.0.1: `masters` masters with one replica each, every node a
//! `redis-server` in cluster mode on free ports (client and bus) with its own temporary
//! directory, joined by `redis-cli --cluster create`. Tests kill nodes by PID and wait
//! for the failover by polling the cluster's own view of itself, with a bound.
//!
//! `redis-cli` is `CHAT_TEST_REDIS_CLI`, else the one next to the `redis-server` that
//! runs (Debian installs both in `/usr/bin`), else `redis-cli` on the `PATH`.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use chat_core::config::RedisArgs;

use crate::{START_TIMEOUT, ServerProcess, process::free_port};

/// How long a node may wait for a silent peer before it counts it as failed: the
/// failover of a killed master takes about twice this.
pub const NODE_TIMEOUT_MS: u64 = 1500;

/// One node as `CLUSTER NODES` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// The node's id.
    pub id: String,
    /// Its client port.
    pub port: u16,
    /// A master (else a replica).
    pub master: bool,
    /// Flagged as failed (`fail`, or `fail?` while suspected).
    pub failed: bool,
    /// The id of its master, for a replica.
    pub master_id: Option<String>,
    /// The slot ranges it serves (masters), inclusive.
    pub slots: Vec<(u16, u16)>,
}

/// The running cluster; every node is killed on drop.
pub struct RedisCluster {
    /// The nodes, masters first as `redis-cli` was given them.
    pub nodes: Vec<ServerProcess>,
}

impl RedisCluster {
    /// Starts `masters` masters and as many replicas, and waits until every node sees
    /// every slot served.
    pub async fn start(masters: usize) -> RedisCluster {
        let program = crate::binary("CHAT_TEST_REDIS_SERVER", &[], "redis-server");
        let mut nodes = Vec::new();
        for _ in 0..masters * 2 {
            let bus_port = free_port();
            let node = ServerProcess::start(
                "redis-cluster-node",
                program.clone(),
                move |port, dir| {
                    let args = [
                        "--bind",
                        "127.0.0.1",
                        "--port",
                        &port.to_string(),
                        "--cluster-enabled",
                        "yes",
                        "--cluster-port",
                        &bus_port.to_string(),
                        "--cluster-config-file",
                        &dir.join("nodes.conf").display().to_string(),
                        "--cluster-node-timeout",
                        &NODE_TIMEOUT_MS.to_string(),
                        // A replica that never synced cannot take over: sync at once.
                        "--repl-diskless-sync-delay",
                        "0",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        &dir.display().to_string(),
                    ];
                    args.into_iter().map(str::to_owned).collect()
                },
                "Ready to accept connections",
                START_TIMEOUT,
            )
            .await;
            nodes.push(node);
        }
        let cluster = RedisCluster { nodes };
        cluster.create().await;
        let all: Vec<usize> = (0..cluster.nodes.len()).collect();
        cluster
            .wait_until(START_TIMEOUT, "every node sees the cluster formed", |views| {
                views.iter().all(|view| view.len() == all.len() && view.iter().filter(|n| n.master).count() == masters)
            })
            .await;
        cluster.wait_for_replication(START_TIMEOUT).await;
        cluster
    }

    /// Polls every running replica (every 50 ms) until its link to its master is up (a
    /// replica that never synced cannot be promoted); panics after `timeout`.
    pub async fn wait_for_replication(&self, timeout: Duration) {
        let started = Instant::now();
        loop {
            let mut waiting = Vec::new();
            for node in self.nodes.iter().filter(|node| node.pid().is_some()) {
                let info: String = query(node.port(), redis::cmd("INFO").arg("replication")).await.unwrap_or_default();
                let replica = info.lines().any(|line| line.trim() == "role:slave");
                if info.is_empty() || (replica && !info.lines().any(|line| line.trim() == "master_link_status:up")) {
                    waiting.push(node.port());
                }
            }
            if waiting.is_empty() {
                return;
            }
            assert!(started.elapsed() < timeout, "replicas on ports {waiting:?} not in sync within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `redis-cli --cluster create … --cluster-replicas 1 --cluster-yes`.
    async fn create(&self) {
        let mut command = tokio::process::Command::new(redis_cli());
        command.arg("--cluster").arg("create");
        for node in &self.nodes {
            command.arg(format!("127.0.0.1:{}", node.port()));
        }
        command.args(["--cluster-replicas", "1", "--cluster-yes"]).kill_on_drop(true);
        let output = tokio::time::timeout(START_TIMEOUT, command.output())
            .await
            .unwrap_or_else(|_| panic!("redis-cli --cluster create took more than {START_TIMEOUT:?}"))
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run redis-cli ({}): {error}; run the test command, which installs it",
                    redis_cli().display()
                )
            });
        let log = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && log.contains("[OK] All 16384 slots covered"),
            "cluster create failed:\n{log}"
        );
    }

    /// The URL naming the cluster by its nodes' addresses (a seed list).
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self.nodes.iter().map(|node| format!("127.0.0.1:{}", node.port())).collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// Redis settings for a service under test.
    pub fn redis_args(&self) -> RedisArgs {
        RedisArgs { redis_url: self.url() }
    }

    /// The index of the node with this client port.
    pub fn index_of(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|node| node.port() == port)
    }

    /// Kills a node with SIGKILL (by its PID) and waits for it to exit.
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    /// `CLUSTER NODES` as the node at `index` sees it; `None` when it does not answer.
    pub async fn view(&self, index: usize) -> Option<Vec<NodeView>> {
        let text: String = query(self.nodes[index].port(), redis::cmd("CLUSTER").arg("NODES")).await?;
        Some(text.lines().filter_map(parse_node).collect())
    }

    /// The slot of a key (`CLUSTER KEYSLOT`, asked of any running node).
    pub async fn slot_of(&self, key: &str) -> u16 {
        for node in self.nodes.iter().filter(|node| node.pid().is_some()) {
            if let Some(slot) = query(node.port(), redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).await {
                return slot;
            }
        }
        panic!("no node answers CLUSTER KEYSLOT")
    }

    /// The index of the master serving `slot`, as the first running node sees it.
    pub async fn master_of(&self, slot: u16) -> usize {
        let views = self.views().await;
        let view = views.first().unwrap_or_else(|| panic!("no node answers CLUSTER NODES"));
        let master = view
            .iter()
            .find(|node| node.master && !node.failed && node.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
            .unwrap_or_else(|| panic!("no master serves slot {slot}: {view:?}"));
        self.index_of(master.port).unwrap_or_else(|| panic!("unknown node {master:?}"))
    }

    /// The index of the replica of the master at `master`.
    pub async fn replica_of(&self, master: usize) -> usize {
        let views = self.views().await;
        let view = views.first().unwrap_or_else(|| panic!("no node answers CLUSTER NODES"));
        let port = self.nodes[master].port();
        let id = view.iter().find(|node| node.port == port).map(|node| node.id.clone());
        let replica = view
            .iter()
            .find(|node| node.master_id.is_some() && node.master_id == id)
            .unwrap_or_else(|| panic!("no replica of node {master}: {view:?}"));
        self.index_of(replica.port).unwrap_or_else(|| panic!("unknown node {replica:?}"))
    }

    /// The views of every running node that answers.
    async fn views(&self) -> Vec<Vec<NodeView>> {
        let mut views = Vec::new();
        for index in (0..self.nodes.len()).filter(|index| self.nodes[*index].pid().is_some()) {
            if let Some(view) = self.view(index).await {
                views.push(view);
            }
        }
        views
    }

    /// Polls the running nodes' views (every 50 ms) until `done` holds for them and every
    /// one reports `cluster_state:ok`; panics with `what` after `timeout`. Returns how long
    /// it took.
    pub async fn wait_until(&self, timeout: Duration, what: &str, done: impl Fn(&[Vec<NodeView>]) -> bool) -> Duration {
        let started = Instant::now();
        let running: Vec<u16> =
            self.nodes.iter().filter(|node| node.pid().is_some()).map(ServerProcess::port).collect();
        loop {
            let views = self.views().await;
            let mut ok = views.len() == running.len() && done(&views);
            for port in &running {
                let info: Option<String> = query(*port, redis::cmd("CLUSTER").arg("INFO")).await;
                ok &= info.is_some_and(|info| info.lines().any(|line| line.trim() == "cluster_state:ok"));
            }
            if ok {
                return started.elapsed();
            }
            assert!(started.elapsed() < timeout, "{what}: not within {timeout:?}; last views: {views:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the killed master at `dead` is flagged failed by every running node
    /// and its replica `heir` serves its slots, with the cluster state ok everywhere.
    pub async fn wait_for_failover(&self, dead: usize, heir: usize, timeout: Duration) -> Duration {
        let (dead_port, heir_port) = (self.nodes[dead].port(), self.nodes[heir].port());
        self.wait_until(timeout, "the replica takes over the killed master", |views| {
            views.iter().all(|view| {
                let dead = view.iter().any(|node| node.port == dead_port && node.failed);
                let heir = view.iter().any(|node| node.port == heir_port && node.master && !node.slots.is_empty());
                dead && heir
            })
        })
        .await
    }
}

/// One reply of one node, on a connection of its own; `None` when it does not answer
/// within a second.
async fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> Option<T> {
    let attempt = async {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
        let mut connection = client.get_multiplexed_async_connection().await.ok()?;
        cmd.query_async(&mut connection).await.ok()
    };
    tokio::time::timeout(Duration::from_secs(1), attempt).await.ok().flatten()
}

/// One line of `CLUSTER NODES`:
/// `<id> <ip:port@bus[,host]> <flags> <master|-> <ping> <pong> <epoch> <link> <slot>...`.
fn parse_node(line: &str) -> Option<NodeView> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (id, address, flags, master) = (fields.first()?, fields.get(1)?, fields.get(2)?, fields.get(3)?);
    let port = address.split('@').next()?.rsplit(':').next()?.parse().ok()?;
    let flags: Vec<&str> = flags.split(',').collect();
    let slots = fields
        .iter()
        .skip(8)
        .filter(|range| !range.starts_with('['))
        .filter_map(|range| match range.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => range.parse().ok().map(|slot| (slot, slot)),
        })
        .collect();
    Some(NodeView {
        id: (*id).to_owned(),
        port,
        master: flags.contains(&"master"),
        failed: flags.iter().any(|flag| flag.starts_with("fail")),
        master_id: (*master != "-").then(|| (*master).to_owned()),
        slots,
    })
}

fn redis_cli() -> PathBuf {
    if let Ok(path) = std::env::var("CHAT_TEST_REDIS_CLI")
        && !path.is_empty()
    {
        return PathBuf::from(path);
    }
    let server = crate::binary("CHAT_TEST_REDIS_SERVER", &[], "redis-server");
    let sibling = server.with_file_name("redis-cli");
    if sibling.exists() { sibling } else { PathBuf::from("redis-cli") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_lines_are_read() {
        let master = "07c3 127.0.0.1:30004@31004 myself,master - 0 0 1 connected 0-5460 5462 [5461->-e7d1]";
        assert_eq!(
            parse_node(master),
            Some(NodeView {
                id: "07c3".into(),
                port: 30004,
                master: true,
                failed: false,
                master_id: None,
                slots: vec![(0, 5460), (5462, 5462)],
            })
        );
        let replica = "67ed 127.0.0.1:30002@31002,host slave,fail 07c3 0 0 3 disconnected";
        let replica = parse_node(replica).unwrap_or_else(|| panic!("a replica line"));
        assert!(!replica.master && replica.failed && replica.slots.is_empty());
        assert_eq!(replica.master_id.as_deref(), Some("07c3"));
    }
}
