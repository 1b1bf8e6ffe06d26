//! A three-node JetStream cluster on 127.0.0.1: every node a `nats-server` with its own
//! client, cluster and monitoring ports (all free ports, fixed across restarts), its own
//! store directory, a server name (`n0`, `n1`, `n2`) and routes to the other two. Tests
//! kill nodes by PID with SIGKILL, restart them on the same ports and store, and wait
//! for the cluster by polling each node's monitoring endpoint (`/jsz` for the meta
//! leader, `/healthz` for a node whose streams and consumers are current), with a bound.

use std::time::{Duration, Instant};

use chat_core::config::NatsArgs;
use serde_json::Value;

use crate::{START_TIMEOUT, ServerProcess, process::free_port};

/// Nodes in the cluster: the smallest that keeps a majority with one node down.
pub const NODES: usize = 3;

/// The running cluster; every node is killed on drop.
pub struct NatsCluster {
    /// The nodes, in the order of their names (`n0`, `n1`, `n2`).
    pub nodes: Vec<ServerProcess>,
    monitor_ports: Vec<u16>,
    http: reqwest::Client,
}

impl NatsCluster {
    /// Starts three nodes and waits until every one sees a JetStream meta leader and
    /// reports itself healthy.
    pub async fn start() -> NatsCluster {
        let program = crate::nats_server();
        let cluster_ports: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
        let monitor_ports: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for index in 0..NODES {
            let (cluster_port, monitor_port) = (cluster_ports[index], monitor_ports[index]);
            let routes: Vec<String> = cluster_ports
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .map(|(_, port)| format!("nats://127.0.0.1:{port}"))
                .collect();
            let routes = routes.join(",");
            let node = ServerProcess::start(
                "nats-cluster-node",
                program.clone(),
                move |port, dir| {
                    let args = [
                        "-a",
                        "127.0.0.1",
                        "-p",
                        &port.to_string(),
                        "-m",
                        &monitor_port.to_string(),
                        "--server_name",
                        &node_name(index),
                        "-js",
                        "-sd",
                        &dir.join("jetstream").display().to_string(),
                        "--cluster_name",
                        "chat-test",
                        "--cluster",
                        &format!("nats://127.0.0.1:{cluster_port}"),
                        "--routes",
                        &routes,
                    ];
                    args.into_iter().map(str::to_owned).collect()
                },
                "Server is ready",
                START_TIMEOUT,
            )
            .await;
            nodes.push(node);
        }
        let cluster = NatsCluster { nodes, monitor_ports, http: reqwest::Client::new() };
        cluster.wait_until_healthy(START_TIMEOUT).await;
        cluster
    }

    /// The client URL list, `nats://127.0.0.1:<p0>,nats://127.0.0.1:<p1>,…`.
    pub fn url(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(|node| format!("nats://127.0.0.1:{}", node.port())).collect();
        urls.join(",")
    }

    /// NATS settings for a service under test: every node, three replicas per stream.
    pub fn nats_args(&self) -> NatsArgs {
        NatsArgs {
            nats_url: self.url(),
            stream_replicas: NODES,
            command_partitions: chat_nats::streams::DEFAULT_COMMAND_PARTITIONS,
            auth: Default::default(),
        }
    }

    /// The server name of the node at `index` (as stream and meta replicas name it).
    pub fn name(&self, index: usize) -> String {
        node_name(index)
    }

    /// The index of the node with this server name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        (0..self.nodes.len()).find(|index| node_name(*index) == name)
    }

    /// Kills a node with SIGKILL (by its PID) and waits for it to exit.
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    /// Starts a killed node again on the same ports and store directory, and waits until
    /// every running node is healthy (the restarted one caught up); returns how long the
    /// catching up took after the process was ready.
    pub async fn restart(&mut self, index: usize, timeout: Duration) -> Duration {
        self.nodes[index].restart().await;
        self.wait_until_healthy(timeout).await
    }

    /// The meta leader as the node at `index` sees it; `None` when it does not answer or
    /// knows none.
    pub async fn meta_leader(&self, index: usize) -> Option<String> {
        let jsz = self.monitor(index, "jsz").await?;
        jsz["meta_cluster"]["leader"].as_str().filter(|leader| !leader.is_empty()).map(str::to_owned)
    }

    /// Polls every running node (every 50 ms) until all see the same meta leader and
    /// answer `/healthz` with `ok` (JetStream on, meta group joined, every stream and
    /// consumer it holds current); panics after `timeout`. Returns how long it took.
    pub async fn wait_until_healthy(&self, timeout: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let mut waiting = Vec::new();
            let mut leaders = Vec::new();
            for index in (0..self.nodes.len()).filter(|index| self.nodes[*index].pid().is_some()) {
                let healthy = self.monitor(index, "healthz").await.is_some_and(|health| health["status"] == "ok");
                let leader = self.meta_leader(index).await;
                if !healthy || leader.is_none() {
                    waiting.push(node_name(index));
                }
                leaders.push(leader);
            }
            leaders.dedup();
            if waiting.is_empty() && leaders.len() == 1 {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < timeout,
                "NATS cluster not healthy within {timeout:?}: waiting for {waiting:?}, meta leaders seen {leaders:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A monitoring endpoint's JSON, whatever its status code (an unhealthy `/healthz`
    /// answers 503 with a reason); `None` when the node does not answer within a second.
    async fn monitor(&self, index: usize, path: &str) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}/{path}", self.monitor_ports[index]);
        let response = self.http.get(url).timeout(Duration::from_secs(1)).send().await.ok()?;
        response.json().await.ok()
    }
}

fn node_name(index: usize) -> String {
    format!("n{index}")
}
