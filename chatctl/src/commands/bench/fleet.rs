//! A fleet of clients on their own multi-thread runtime (threads named
//! [`WORKER_THREAD_NAME`] so their CPU can be told apart from the caller's), connected
//! with bounded concurrency, and steered through a [`Phase`] they all watch.

use std::sync::{Arc, atomic::Ordering};

use tokio::sync::{Semaphore, oneshot, watch};

use super::{
    BenchError, Settings,
    client::{self, Phase, Plan, Shared},
    resources::WORKER_THREAD_NAME,
};
use crate::progress::Progress;

/// How long stopping waits for clients to close their sockets.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Connected clients.
#[derive(Debug)]
pub struct Fleet {
    runtime: Option<tokio::runtime::Runtime>,
    phase: watch::Sender<Phase>,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Clients that received `hello`.
    pub connected: usize,
    /// Why the first failed client failed, if any did.
    pub first_error: Option<String>,
}

impl Fleet {
    /// Starts one task per plan and waits until each has connected or failed.
    pub async fn connect(settings: &Settings, plans: Vec<Plan>, progress: &Progress) -> Result<Fleet, BenchError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(settings.threads.max(1))
            .thread_name(WORKER_THREAD_NAME)
            .enable_all()
            .build()
            .map_err(BenchError::Runtime)?;
        let shared = Arc::new(Shared {
            ws_url: settings.ws_url.clone(),
            connecting: Semaphore::new(settings.connect_concurrency.max(1)),
            closed: Default::default(),
        });
        let (phase, watching) = watch::channel(Phase::Idle);
        let bar = progress.bar("connect", plans.len() as u64);
        let mut tasks = Vec::with_capacity(plans.len());
        let mut readiness = Vec::with_capacity(plans.len());
        for plan in plans {
            let (ready, is_ready) = oneshot::channel();
            tasks.push(runtime.spawn(client::run(plan, shared.clone(), watching.clone(), ready)));
            readiness.push(is_ready);
        }
        let mut fleet = Fleet { runtime: Some(runtime), phase, shared, tasks, connected: 0, first_error: None };
        for is_ready in readiness {
            match is_ready.await {
                Ok(Ok(())) => fleet.connected += 1,
                Ok(Err(error)) => {
                    fleet.first_error.get_or_insert(error);
                }
                Err(_) => {
                    fleet.first_error.get_or_insert_with(|| "client task ended before connecting".into());
                }
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok(fleet)
    }

    /// Clients that failed to connect.
    pub fn failed(&self) -> usize {
        self.tasks.len() - self.connected
    }

    /// Connections closed by the server (or broken) so far.
    pub fn closed(&self) -> u64 {
        self.shared.closed.load(Ordering::Relaxed)
    }

    /// Tells every client what to do now.
    pub fn set_phase(&self, phase: Phase) {
        self.phase.send_replace(phase);
    }

    /// Closes every socket (waiting a bounded time) and stops the runtime.
    pub async fn stop(mut self) {
        self.set_phase(Phase::Stop);
        let tasks = std::mem::take(&mut self.tasks);
        let _ = tokio::time::timeout(STOP_WAIT, futures::future::join_all(tasks)).await;
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.phase.send_replace(Phase::Stop);
        // A runtime may not be dropped inside another one's async context; this may.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
