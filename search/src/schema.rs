//! The tantivy schema of `DESIGN.md` and the document each event becomes.

use tantivy::schema::{
    DateOptions, DateTimePrecision, FAST, Field, IndexRecordOption, IpAddrOptions, Schema,
    TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{LowerCaser, SimpleTokenizer, TextAnalyzer};
use tantivy::{DateTime, Index, TantivyDocument};

use crate::terms::EventTerms;

/// Bumped whenever the schema, what feeds it or the index's file format changes: an index built
/// under another version is rebuilt from scratch when it is opened. 4: term dictionaries are
/// sstables (tantivy's `quickwit` feature) instead of FSTs (ADR 0014).
pub const SCHEMA_VERSION: u32 = 4;

/// The analyzer of free text: runs of letters and digits, lowercased.
pub(crate) const WORDS_TOKENIZER: &str = "chronicle_words";

/// The fields of the schema.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    /// The log position, fast only: hits are ordered and read back by it, and cursors are range
    /// queries on the column. Not indexed: a term per event, never looked up, made a term
    /// dictionary as large as the log that every segment write and merge rebuilt.
    pub position: Field,
    pub workspace: Field,
    /// The type and its `prefix.*` forms.
    pub event_type: Field,
    /// The part of the type before the first dot, fast only: the facet counts read it.
    pub category: Field,
    pub actor: Field,
    pub machine: Field,
    pub session: Field,
    pub schedule: Field,
    pub stream: Field,
    pub request: Field,
    /// IPv4 addresses are kept as IPv4-mapped IPv6 addresses, as tantivy stores them.
    pub source_ip: Field,
    /// Fast only: `from`/`to` are range queries on the column, at full precision.
    pub occurred_at: Field,
    pub words: Field,
}

impl Fields {
    /// Builds the schema and names its fields.
    pub fn schema() -> (Schema, Fields) {
        let mut builder = Schema::builder();
        // Hits come back newest first, never by relevance, so no field keeps the field norms
        // that scoring would read: a byte per document and field, written and merged for nothing.
        let keyword = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("raw")
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        );
        let words = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(WORDS_TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions)
                .set_fieldnorms(false),
        );
        let fields = Fields {
            position: builder.add_u64_field("position", FAST),
            workspace: builder.add_text_field("workspace", keyword.clone()),
            event_type: builder.add_text_field("type", keyword.clone()),
            category: builder.add_text_field("category", FAST),
            actor: builder.add_text_field("actor", keyword.clone()),
            machine: builder.add_text_field("machine", keyword.clone()),
            session: builder.add_text_field("session", keyword.clone()),
            schedule: builder.add_text_field("schedule", keyword.clone()),
            stream: builder.add_text_field("stream", keyword.clone()),
            request: builder.add_text_field("request", keyword),
            source_ip: builder
                .add_ip_addr_field("ip", IpAddrOptions::default().set_indexed().set_fast()),
            occurred_at: builder.add_date_field(
                "occurred_at",
                DateOptions::from(FAST).set_precision(DateTimePrecision::Nanoseconds),
            ),
            words: builder.add_text_field("words", words),
        };
        (builder.build(), fields)
    }

    /// Registers the analyzers the schema names; tantivy does not persist them.
    pub fn register_tokenizers(index: &Index) {
        index
            .tokenizers()
            .register(WORDS_TOKENIZER, words_analyzer());
    }

    /// Returns the document of one event.
    pub fn document(&self, terms: &EventTerms) -> TantivyDocument {
        let mut document = TantivyDocument::new();
        document.add_u64(self.position, terms.position);
        if let Some(workspace) = &terms.workspace {
            document.add_text(self.workspace, workspace);
        }
        for event_type in &terms.types {
            document.add_text(self.event_type, event_type);
        }
        document.add_text(self.category, &terms.category);
        for (field, values) in [
            (self.actor, &terms.actors),
            (self.machine, &terms.machines),
            (self.session, &terms.sessions),
            (self.schedule, &terms.schedules),
        ] {
            for value in values {
                document.add_text(field, value);
            }
        }
        document.add_text(self.stream, &terms.stream);
        if let Some(request) = &terms.request {
            document.add_text(self.request, request);
        }
        if let Some(ip) = terms.source_ip {
            document.add_ip_addr(self.source_ip, crate::query::ipv6(ip));
        }
        if let Some(occurred_at) = terms.occurred_at {
            document.add_date(self.occurred_at, DateTime::from_utc(occurred_at));
        }
        for words in &terms.words {
            document.add_text(self.words, words);
        }
        document
    }
}

/// The analyzer of the `words` field, for indexing and for queries alike.
pub(crate) fn words_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(LowerCaser)
        .build()
}
