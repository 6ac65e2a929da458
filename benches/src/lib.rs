//! Chronicle's benches and load tools: shared set-up for the criterion benches in `benches/`.
//!
//! Each bench measures Chronicle beside a ceiling or a peer in the same run, so `BENCHMARKS.md`
//! quotes ratios, not bare figures from one machine.

use chronicle_domain::{NewEvent, PreparedEvent};
use chronicle_fixtures::{HistoryGenerator, Scale};
use serde_json::Value;
use uuid::Uuid;

/// A pool of realistic events as producers send them, handed out in batches with fresh ids so
/// every batch appends new events.
#[derive(Debug)]
pub struct EventPool {
    events: Vec<Value>,
    next: usize,
}

impl EventPool {
    /// Generates `size` events of a realistic history.
    pub fn new(size: usize) -> EventPool {
        let events: Vec<Value> = HistoryGenerator::new(1, Scale::with_events(size))
            .take(size)
            .collect();
        EventPool { events, next: 0 }
    }

    /// Returns the next `count` events, validated and prepared, each with a new random id.
    pub fn next_batch(&mut self, count: usize) -> Vec<PreparedEvent> {
        (0..count)
            .map(|_| {
                let mut value = self.events[self.next % self.events.len()].clone();
                self.next += 1;
                value["id"] = Value::String(Uuid::new_v4().to_string());
                PreparedEvent::new(
                    NewEvent::from_json(&value, Uuid::nil()).expect("generated events are valid"),
                )
            })
            .collect()
    }
}
