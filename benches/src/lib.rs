//! Chronicle's benches and load tools: shared set-up for the criterion benches in `benches/`.
//!
//! Each bench measures Chronicle beside a ceiling or a peer in the same run, so `BENCHMARKS.md`
//! quotes ratios, not bare figures from one machine.

use chronicle_domain::{NewEvent, PreparedEvent};
use chronicle_fixtures::{HistoryGenerator, Scale};
use serde_json::Value;
use uuid::Uuid;

/// The server's allocator (see `chronicle`'s `main.rs`), so what the benches time is what runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A pool of realistic events as producers send them, handed out in batches with fresh ids so
/// every batch appends new events.
#[derive(Debug)]
pub struct EventPool {
    events: Vec<Value>,
    next: usize,
    ids: IdKind,
}

/// How producers choose event ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// Time-ordered UUIDv7, as Chronicle makes them and as the fixtures' producers send them.
    TimeOrdered,
    /// Random UUIDv4: the worst case for the id index.
    Random,
}

impl IdKind {
    /// `CHRONICLE_BENCH_IDS=v4` picks random ids; anything else time-ordered ones.
    pub fn from_env() -> IdKind {
        match std::env::var("CHRONICLE_BENCH_IDS").as_deref() {
            Ok("v4") => IdKind::Random,
            _ => IdKind::TimeOrdered,
        }
    }

    fn next(self) -> Uuid {
        match self {
            IdKind::TimeOrdered => Uuid::now_v7(),
            IdKind::Random => Uuid::new_v4(),
        }
    }
}

impl EventPool {
    /// Generates `size` events of a realistic history, re-identified with `ids`.
    pub fn new(size: usize, ids: IdKind) -> EventPool {
        let events: Vec<Value> = HistoryGenerator::new(1, Scale::with_events(size))
            .take(size)
            .collect();
        EventPool {
            events,
            next: 0,
            ids,
        }
    }

    /// Returns the next `count` events as producers send them, each with a new id.
    pub fn raw_batch(&mut self, count: usize) -> Vec<Value> {
        (0..count)
            .map(|_| {
                let mut value = self.events[self.next % self.events.len()].clone();
                self.next += 1;
                value["id"] = Value::String(self.ids.next().to_string());
                value
            })
            .collect()
    }

    /// Returns the next `count` events, validated and prepared, each with a new id.
    pub fn next_batch(&mut self, count: usize) -> Vec<PreparedEvent> {
        self.raw_batch(count)
            .iter()
            .map(|value| {
                PreparedEvent::new(
                    NewEvent::from_json(value, Uuid::nil()).expect("generated events are valid"),
                    "bench",
                )
            })
            .collect()
    }
}
