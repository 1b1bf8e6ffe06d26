//! One simulated client: a task that connects (a few at a time), waits for `hello`, then
//! reads every frame, sends its share of the schedule when it is a sender, and pings at
//! the interval the server asked for. Frames are parsed into a small borrowed struct;
//! nothing per client outlives a frame but the socket itself, whose buffers are kept
//! small so that ten thousand clients fit in one process.

use std::{
    borrow::Cow,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, oneshot, watch};
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};

use super::schedule::{Step, unix_us_now};

/// Bytes of the socket's read buffer (tungstenite's default is 128 KiB per socket).
const READ_BUFFER_BYTES: usize = 4096;
/// How long one connection attempt (TCP, upgrade and `hello`) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The ping interval when `hello` names none.
const DEFAULT_HEARTBEAT_MS: u64 = 25_000;

/// What the whole fleet is doing; every client watches it.
#[derive(Debug, Clone)]
pub enum Phase {
    /// Connected, not sending.
    Idle,
    /// Sending (senders) and measuring (everyone) for one step.
    Step(Arc<Step>),
    /// Close the socket and end.
    Stop,
}

/// What one client does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The client's number: its user, and its shard of the histograms.
    pub index: usize,
    /// Its user's token.
    pub token: String,
    /// Set when the client sends.
    pub sends: Option<Sends>,
}

/// A sender's part of the schedule.
#[derive(Debug, Clone)]
pub struct Sends {
    /// The sender's number: it sends messages `sender`, `sender + senders`, ….
    pub sender: u64,
    /// The chat it sends to.
    pub chat_id: String,
}

/// State shared by every client of a fleet.
#[derive(Debug)]
pub struct Shared {
    /// The edge's `/ws` URL.
    pub ws_url: String,
    /// Bounds the connections being opened at once.
    pub connecting: Semaphore,
    /// Connections the server closed (or that failed) before the fleet stopped.
    pub closed: AtomicU64,
}

/// The frames the client looks at; every other field is skipped unparsed.
#[derive(Debug, Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    message: MessageText<'a>,
    #[serde(default)]
    heartbeat_ms: Option<u64>,
}

/// The `text` of a frame's `message` when it is an object (`msg.created`); `None`
/// when there is none or `message` is something else (an `error`'s is a string).
/// Bench texts never need JSON escapes, so the text is borrowed from the frame; a text
/// that does need them is not a bench message and makes the frame be skipped.
#[derive(Debug, Default)]
struct MessageText<'a>(Option<&'a str>);

impl<'de: 'a, 'a> Deserialize<'de> for MessageText<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MessageTextVisitor(std::marker::PhantomData))
    }
}

struct MessageTextVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> serde::de::Visitor<'de> for MessageTextVisitor<'a> {
    type Value = MessageText<'a>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a message object or a string")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut text = None;
        while let Some(key) = map.next_key::<&'de str>()? {
            if key == "text" {
                text = Some(map.next_value::<&'de str>()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(MessageText(text))
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(MessageText(None))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(MessageText(None))
    }
}

/// A `msg.send` command.
#[derive(Debug, Serialize)]
struct MsgSend<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    chat_id: &'a str,
    client_msg_id: &'a str,
    text: &'a str,
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Runs one client until the phase becomes [`Phase::Stop`] or the server closes it.
/// `ready` gets `Ok` once `hello` arrived, or why the client could not connect.
pub async fn run(
    plan: Plan,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    ready: oneshot::Sender<Result<(), String>>,
) {
    let connected = {
        let _permit = shared.connecting.acquire().await;
        tokio::time::timeout(CONNECT_TIMEOUT, connect(&shared.ws_url, &plan.token))
            .await
            .unwrap_or_else(|_| Err(format!("no hello within {CONNECT_TIMEOUT:?}")))
    };
    let (mut socket, heartbeat) = match connected {
        Ok(connected) => {
            let _ = ready.send(Ok(()));
            connected
        }
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    let mut current: Option<Arc<Step>> = match &*phase.borrow_and_update() {
        Phase::Step(step) => Some(step.clone()),
        Phase::Idle => None,
        Phase::Stop => return,
    };
    let mut next = 0;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // One timer for the next send, moved only when the next send changes.
    let wake = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(wake);
    let mut armed: Option<(u32, u64)> = None;
    loop {
        let due = match (&plan.sends, &current) {
            (Some(sends), Some(step)) if next < step.messages_of(sends.sender) => {
                Some((step.id, sends.sender + next * step.senders))
            }
            _ => None,
        };
        if due != armed {
            if let (Some(step), Some((_, k))) = (&current, due) {
                wake.as_mut().reset(step.due(k).into());
            }
            armed = due;
        }
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() {
                    break;
                }
                match &*phase.borrow_and_update() {
                    Phase::Step(step) => current = Some(step.clone()),
                    Phase::Idle => current = None,
                    Phase::Stop => break,
                }
                next = 0;
            }
            frame = socket.next() => match frame {
                Some(Ok(Message::Text(text))) => on_text(plan.index, text.as_str(), current.as_deref()),
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    shared.closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Some(Ok(_)) => {}
            },
            () = &mut wake, if due.is_some() => {
                if let (Some(step), Some(sends), Some((_, k))) = (&current, &plan.sends, due) {
                    let lag = Instant::now().saturating_duration_since(step.due(k));
                    if send(&mut socket, step, sends, k).await.is_err() {
                        shared.closed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    step.record_send(plan.index, lag);
                }
                next += 1;
            }
            _ = ping.tick() => {
                if socket.send(Message::text(r#"{"type":"ping"}"#)).await.is_err() {
                    shared.closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.close(None)).await;
}

/// Opens the socket with small buffers and reads `hello`; returns the ping interval.
async fn connect(ws_url: &str, token: &str) -> Result<(Socket, Duration), String> {
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES).write_buffer_size(0);
    let separator = if ws_url.contains('?') { '&' } else { '?' };
    let url = format!("{ws_url}{separator}access_token={token}");
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .map_err(|error| error.to_string())?;
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                let frame: Frame<'_> =
                    serde_json::from_str(text.as_str()).map_err(|error| format!("bad first frame: {error}"))?;
                if frame.kind != "hello" {
                    return Err(format!("first frame is {:?}, not hello", frame.kind));
                }
                let heartbeat = frame.heartbeat_ms.filter(|ms| *ms > 0).unwrap_or(DEFAULT_HEARTBEAT_MS);
                return Ok((socket, Duration::from_millis(heartbeat)));
            }
            Some(Ok(Message::Close(close))) => return Err(format!("closed before hello: {close:?}")),
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error.to_string()),
            None => return Err("closed before hello".into()),
        }
    }
}

/// Sends message `k` of the step.
async fn send(socket: &mut Socket, step: &Step, sends: &Sends, k: u64) -> Result<(), String> {
    let client_msg_id = format!("{}-{}-{k}", step.run, step.id);
    let text = step.text(k);
    let command = MsgSend { kind: "msg.send", chat_id: &sends.chat_id, client_msg_id: &client_msg_id, text: &text };
    let frame = serde_json::to_string(&command).map_err(|error| error.to_string())?;
    socket.send(Message::text(frame)).await.map_err(|error| error.to_string())
}

/// Looks at one received text frame.
fn on_text(client: usize, text: &str, step: Option<&Step>) {
    let now_us = unix_us_now();
    let Some(step) = step else {
        return;
    };
    let Ok(frame) = serde_json::from_str::<Frame<'_>>(text) else {
        return;
    };
    match frame.kind.as_ref() {
        "msg.created" => {
            if let Some(due_us) = frame.message.0.and_then(|text| step.due_us_of(text)) {
                step.record_delivery(client, due_us, now_us);
            }
        }
        "error" => {
            step.errors.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::atomic::Ordering, time::Instant};

    use super::on_text;
    use crate::commands::bench::schedule::Step;

    #[test]
    fn a_delivery_of_this_step_is_counted_and_others_are_not() {
        let step = Step::new("run", 1, Instant::now(), 100.0, 1.0, 1, 1);
        let frame = |text: &str| {
            format!(
                r#"{{"v":1,"id":"c:7","chat_id":"c","seq":7,"type":"msg.created","message":{{"id":"m","chat_id":"c","seq":7,"updated_seq":7,"sender_id":"u","client_msg_id":"k","text":"{text}","reply_to":null,"created_at":"2026-01-01T00:00:00.000Z"}}}}"#
            )
        };
        on_text(0, &frame(&step.text(3)), Some(&step));
        on_text(0, &frame("run.2.123"), Some(&step));
        on_text(0, &frame("hello"), Some(&step));
        on_text(0, r#"{"type":"ack","ref":"x"}"#, Some(&step));
        on_text(0, r#"{"type":"error","code":"rate_limited","message":"slow down"}"#, Some(&step));
        on_text(0, "not json", Some(&step));
        assert_eq!(step.received.load(Ordering::Relaxed), 1);
        assert_eq!(step.errors.load(Ordering::Relaxed), 1);
    }
}
