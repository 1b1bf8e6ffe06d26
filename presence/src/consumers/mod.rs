//! The worker's NATS consumers, one file each, and the loop they share.

pub mod conn_reports;
pub mod typing;

use std::{future::Future, hash::Hash};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::lanes::Lanes;

/// Routes each message of `subscriber` (`route` gives its key and item, or `None` to
/// drop it) into `lanes` sequential lanes that run `handler`, until `shutdown` or the
/// end of the subscription; then unsubscribes and lets the lanes finish what they hold.
async fn consume<T, K, R, H, Fut>(
    mut subscriber: async_nats::Subscriber,
    lanes: usize,
    shutdown: CancellationToken,
    route: R,
    handler: H,
) where
    T: Send + 'static,
    K: Hash,
    R: Fn(async_nats::Message) -> Option<(K, T)>,
    H: Fn(T) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let (lanes, tasks) = Lanes::spawn(lanes, handler);
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => break,
            message = subscriber.next() => match message {
                Some(message) => message,
                None => break,
            },
        };
        if let Some((key, item)) = route(message) {
            lanes.send(key, item).await;
        }
    }
    let _ = subscriber.unsubscribe().await;
    drop(lanes);
    futures::future::join_all(tasks).await;
}
