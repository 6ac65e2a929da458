//! The live feed: the newest committed events, read from the log once and encoded once, shared
//! by every live stream.
//!
//! Without it each of N subscribers read and encoded every new event itself: N reads of the
//! same rows per commit. The feed follows the head (every node's commits, on PostgreSQL), reads
//! each new event once, keeps the newest `capacity` of them with their JSON, and says up to
//! which position it holds every event. A stream at or past the feed's start takes its events
//! from here; one further behind reads the log on its own (catch-up), so a slow client still
//! costs only itself. While no stream listens the feed lets its events go and reads nothing:
//! a server nobody follows live neither reads every event a second time nor keeps them.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use chronicle_domain::RecordedEvent;
use chronicle_store::Store;
use tokio::sync::watch;

use crate::live::TypeFilter;

/// Events read from the log per query while following it.
const READ_PAGE: u32 = 1_000;

/// One committed event, encoded once, as every live stream sends it.
#[derive(Debug)]
pub(crate) struct LiveEvent {
    pub position: u64,
    pub workspace: Option<String>,
    pub event_type: String,
    /// The Server-Sent-Events message: `id: POSITION`, `event: TYPE`, `data: JSON` and a blank
    /// line. Every SSE stream sends these same bytes, shared, not copied.
    sse: Bytes,
    /// Where in `sse` the JSON lies: the recorded event exactly as `GET /v1/events/ID` answers.
    json: Range<usize>,
}

impl LiveEvent {
    pub(crate) fn new(event: &RecordedEvent) -> LiveEvent {
        let json = serde_json::to_string(event).expect("a recorded event serialises");
        LiveEvent::encoded(
            event.position,
            event.workspace.clone(),
            event.event_type.clone(),
            &json,
        )
    }

    /// Serialised JSON never holds a line break (strings escape theirs), and event types are
    /// catalogue names, so each field is one SSE line.
    fn encoded(
        position: u64,
        workspace: Option<String>,
        event_type: String,
        json: &str,
    ) -> LiveEvent {
        let mut sse = String::with_capacity(event_type.len() + json.len() + 48);
        write!(sse, "id: {position}\nevent: {event_type}\ndata: ")
            .expect("writing to a String never fails");
        let start = sse.len();
        sse.push_str(json);
        let json = start..sse.len();
        sse.push_str("\n\n");
        LiveEvent {
            position,
            workspace,
            event_type,
            // Exactly its length: `Bytes` keeps a buffer's spare capacity, and the feed holds
            // 20,000 of these.
            sse: Bytes::from(sse.into_bytes().into_boxed_slice()),
            json,
        }
    }

    /// The event as one Server-Sent-Events message.
    pub(crate) fn sse(&self) -> Bytes {
        self.sse.clone()
    }

    /// The recorded event's JSON.
    pub(crate) fn json(&self) -> &str {
        std::str::from_utf8(&self.sse[self.json.clone()]).expect("the JSON was a str")
    }
}

/// A handle on the feed; cheap to clone.
#[derive(Clone)]
pub(crate) struct Feed {
    inner: Arc<Inner>,
}

struct Inner {
    /// The newest events, consecutive positions, oldest first.
    recent: RwLock<VecDeque<Arc<LiveEvent>>>,
    capacity: usize,
    /// Every event up to this position is in `recent` or older than its first one.
    filled: watch::Sender<u64>,
    /// Live streams listening now; the feed follows the log only while there are some.
    listeners: watch::Sender<usize>,
}

/// A live stream's hold on the feed: while one is held the feed follows the log.
pub(crate) struct Listener {
    inner: Arc<Inner>,
    /// The position the feed is filled up to.
    pub(crate) filled: watch::Receiver<u64>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.inner.listeners.send_modify(|count| *count -= 1);
    }
}

/// What [`Feed::read`] found.
pub(crate) enum Read {
    /// The matching events after the position asked, and the position up to which every event
    /// was looked at.
    Events(Vec<Arc<LiveEvent>>, u64),
    /// The position asked is older than the feed holds: read the log.
    TooOld,
}

impl Feed {
    /// A feed that keeps the newest `capacity` events, starting at `position`.
    pub(crate) fn new(capacity: usize, position: u64) -> Feed {
        Feed {
            inner: Arc::new(Inner {
                recent: RwLock::new(VecDeque::new()),
                capacity: capacity.max(1),
                filled: watch::Sender::new(position),
                listeners: watch::Sender::new(0),
            }),
        }
    }

    /// Starts listening: the feed follows the log until every listener is dropped.
    pub(crate) fn listen(&self) -> Listener {
        self.inner.listeners.send_modify(|count| *count += 1);
        Listener {
            inner: Arc::clone(&self.inner),
            filled: self.inner.filled.subscribe(),
        }
    }

    /// Returns up to `limit` events of `workspace` passing `filter` after position `after`.
    pub(crate) fn read(
        &self,
        workspace: &str,
        filter: &TypeFilter,
        after: u64,
        limit: usize,
    ) -> Read {
        let recent = self
            .inner
            .recent
            .read()
            .expect("the feed lock is never poisoned");
        let filled = *self.inner.filled.borrow();
        if after >= filled {
            return Read::Events(Vec::new(), after);
        }
        let Some(first) = recent.front().map(|event| event.position) else {
            return Read::TooOld;
        };
        if after + 1 < first {
            return Read::TooOld;
        }
        let mut events = Vec::new();
        let mut reached = after;
        for event in recent.range((after + 1 - first) as usize..) {
            if event.position > filled {
                break;
            }
            reached = event.position;
            if event.workspace.as_deref() == Some(workspace) && filter.matches(&event.event_type) {
                events.push(Arc::clone(event));
                if events.len() == limit {
                    break;
                }
            }
        }
        Read::Events(events, reached)
    }

    /// Follows the log while live streams listen, until `stopping` turns true, reading each
    /// commit once.
    pub(crate) async fn run(self, store: Store, mut stopping: watch::Receiver<bool>) {
        let mut head = store.subscribe_head();
        let mut listeners = self.inner.listeners.subscribe();
        loop {
            if *stopping.borrow() {
                return;
            }
            if *listeners.borrow_and_update() == 0 {
                self.rest(store.head().position);
                tokio::select! {
                    changed = listeners.changed() => if changed.is_err() { return },
                    _ = stopping.changed() => {}
                }
                // What committed meanwhile is read by the streams that want it, from the log:
                // the feed starts over at the head as it stands now.
                self.rest(store.head().position);
                continue;
            }
            let target = head.borrow_and_update().position;
            match self.fill(&store, target).await {
                Ok(()) => {
                    tokio::select! {
                        changed = head.changed() => if changed.is_err() { return },
                        _ = listeners.changed() => {}
                        _ = stopping.changed() => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %error, "the live feed cannot read the log; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stopping.changed() => {}
                    }
                }
            }
        }
    }

    /// Lets every event go and stands at the head: a stream that comes later reads what it
    /// needs from the log, and the feed holds what commits after it.
    fn rest(&self, head: u64) {
        self.inner
            .recent
            .write()
            .expect("the feed lock is never poisoned")
            .clear();
        self.inner.filled.send_replace(head);
    }

    /// Reads every event up to `target` into the feed.
    async fn fill(&self, store: &Store, target: u64) -> Result<(), chronicle_store::StoreError> {
        let mut filled = *self.inner.filled.borrow();
        while filled < target {
            let events = store.read_all(filled, READ_PAGE).await?;
            let Some(last) = events.last().map(|event| event.position) else {
                break;
            };
            let encoded: Vec<Arc<LiveEvent>> = events
                .iter()
                .map(|event| Arc::new(LiveEvent::new(event)))
                .collect();
            {
                let mut recent = self
                    .inner
                    .recent
                    .write()
                    .expect("the feed lock is never poisoned");
                recent.extend(encoded);
                let excess = recent.len().saturating_sub(self.inner.capacity);
                recent.drain(..excess);
            }
            filled = last;
            self.inner.filled.send_replace(filled);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(position: u64, workspace: &str, event_type: &str) -> Arc<LiveEvent> {
        Arc::new(LiveEvent::encoded(
            position,
            Some(workspace.into()),
            event_type.into(),
            "{}",
        ))
    }

    /// The bytes every SSE stream sends, and the JSON within them that WebSocket streams send.
    #[test]
    fn an_event_is_encoded_once_as_an_sse_message_holding_its_json() {
        let event = LiveEvent::encoded(
            42,
            Some("ws_acme".into()),
            "machine.renamed".into(),
            r#"{"a":"x\ny"}"#,
        );
        assert_eq!(
            &event.sse()[..],
            b"id: 42\nevent: machine.renamed\ndata: {\"a\":\"x\\ny\"}\n\n"
        );
        assert_eq!(event.json(), r#"{"a":"x\ny"}"#);
    }

    fn positions(read: Read) -> Option<(Vec<u64>, u64)> {
        match read {
            Read::Events(events, reached) => {
                Some((events.iter().map(|event| event.position).collect(), reached))
            }
            Read::TooOld => None,
        }
    }

    #[test]
    fn reads_one_workspace_after_a_position_and_says_when_it_is_too_old() {
        let feed = Feed::new(4, 10);
        {
            let mut recent = feed.inner.recent.write().unwrap();
            for position in 11..=16 {
                let workspace = if position % 2 == 0 { "a" } else { "b" };
                recent.push_back(event(position, workspace, "machine.renamed"));
            }
            let excess = recent.len() - feed.inner.capacity;
            recent.drain(..excess);
        }
        feed.inner.filled.send_replace(16);
        let all = TypeFilter::default();
        // The feed holds 13..=16: from 12 on it answers, before that the log must.
        assert_eq!(
            positions(feed.read("a", &all, 12, 10)),
            Some((vec![14, 16], 16))
        );
        assert_eq!(
            positions(feed.read("b", &all, 13, 10)),
            Some((vec![15], 16))
        );
        assert_eq!(positions(feed.read("a", &all, 12, 1)), Some((vec![14], 14)));
        assert_eq!(positions(feed.read("a", &all, 16, 10)), Some((vec![], 16)));
        assert!(positions(feed.read("a", &all, 11, 10)).is_none());
        let renamed_only = TypeFilter::parse(["session.*"]).unwrap();
        assert_eq!(
            positions(feed.read("a", &renamed_only, 12, 10)),
            Some((vec![], 16))
        );
    }

    #[tokio::test]
    async fn reads_nothing_committed_while_nobody_listened() {
        use chronicle_domain::envelope::{NewEvent, PreparedEvent};
        use chronicle_store::StoreConfig;
        use chronicle_store::checkpoint::NoteSigner;

        let directory = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(
            directory.path().join("feed.db"),
            NoteSigner::generate("chronicle.test"),
        ))
        .await
        .unwrap();
        let append = |count: usize| {
            let events = (0..count)
                .map(|n| {
                    let event = serde_json::json!({
                        "stream": format!("machine-mch_{n}"), "type": "machine.renamed",
                        "workspace": "ws_a", "occurred_at": "2026-11-24T03:50:26.123Z",
                        "actor": {"kind": "member", "id": "usr_4"},
                        "data": {"from": "web-1", "to": "web-2"}
                    });
                    PreparedEvent::new(
                        NewEvent::from_json(&event, uuid::Uuid::now_v7()).unwrap(),
                        "test",
                    )
                })
                .collect();
            store.append(events)
        };
        let feed = Feed::new(100, 0);
        let (stop, stopping) = watch::channel(false);
        let running = tokio::spawn(feed.clone().run(store.clone(), stopping));
        // On this one-thread runtime the feed runs up to its rest before anything commits.
        tokio::task::yield_now().await;

        // Nobody listens: three events commit and the feed stays empty.
        append(3).await.unwrap();
        let mut listener = feed.listen();
        listener
            .filled
            .wait_for(|&filled| filled >= 3)
            .await
            .unwrap();
        assert!(
            feed.inner.recent.read().unwrap().is_empty(),
            "the events committed while nobody listened are left to the log"
        );
        // A listener is there: what commits now is read into the feed.
        append(2).await.unwrap();
        listener
            .filled
            .wait_for(|&filled| filled >= 5)
            .await
            .unwrap();
        let held: Vec<u64> = feed
            .inner
            .recent
            .read()
            .unwrap()
            .iter()
            .map(|event| event.position)
            .collect();
        assert_eq!(held, vec![4, 5]);

        drop(listener);
        stop.send_replace(true);
        running.await.unwrap();
        store.shutdown().await;
    }

    #[test]
    fn counts_its_listeners_and_lets_its_events_go_at_rest() {
        let feed = Feed::new(4, 10);
        let listeners = feed.inner.listeners.subscribe();
        let first = feed.listen();
        let second = feed.listen();
        assert_eq!(*listeners.borrow(), 2);
        drop(first);
        assert_eq!(*listeners.borrow(), 1);
        drop(second);
        assert_eq!(*listeners.borrow(), 0);

        feed.inner
            .recent
            .write()
            .unwrap()
            .extend((11..=14).map(|position| event(position, "a", "machine.renamed")));
        feed.inner.filled.send_replace(14);
        feed.rest(20);
        assert!(feed.inner.recent.read().unwrap().is_empty());
        let all = TypeFilter::default();
        // Up to the head it stood at, the log answers; after it, the feed (empty so far).
        assert!(positions(feed.read("a", &all, 12, 10)).is_none());
        assert!(positions(feed.read("a", &all, 19, 10)).is_none());
        assert_eq!(positions(feed.read("a", &all, 20, 10)), Some((vec![], 20)));
    }
}
