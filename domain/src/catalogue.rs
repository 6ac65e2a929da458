//! The event catalogue: every event type Chronicle records, the stream kind it belongs in, and
//! its `data` as a typed struct.
//!
//! [`parse_data`] turns an event's `data` into [`EventData`], one variant per type. A rejection
//! names the failing field by its path inside `data` (`hostname`, `changes.require_2fa`,
//! `machines[1]`) so that a producer can fix its payload without guessing.
//!
//! Unknown extra fields are ignored by the typed view rather than refused: producers may ship a
//! field before the catalogue learns it, and the log keeps the `data` they sent verbatim anyway.
//!
//! The list of types is written once, in the `catalogue!` invocation that follows the structs:
//! it generates [`EVENT_TYPES`], [`stream_kind`], [`EventData`], [`parse_data`] and
//! [`minimal_example`], so adding a type is one struct plus one line there.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;

use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Why an event's `data` does not fit its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("unknown event type `{0}`")]
    UnknownType(String),
    /// `field` is the path inside `data`: `"hostname"`, `"changes.require_2fa"`,
    /// `"machines[1]"`, or `""` when `data` itself is wrong (e.g. not an object).
    #[error("{message}")]
    Field { field: String, message: String },
}

impl DataError {
    fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Field {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why a single value was refused by one of the checked types below; the message says what is
/// expected and becomes the `message` of [`DataError::Field`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(&'static str);

// ---------------------------------------------------------------------------------------------
// Checked scalar values
// ---------------------------------------------------------------------------------------------

/// Declares a `String` newtype that can only be built (and deserialized) through `$check`, so a
/// value of the type is valid by construction and a failure carries the field's path.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            /// Returns the value as sent.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Returns the owned value as sent.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                $check(&value).map_err(InvalidValue)?;
                Ok(Self(value))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = InvalidValue;

            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::try_from(value.to_owned())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }
    };
}

checked_string! {
    /// An id or name that must say something: not empty and not only whitespace.
    NonEmptyString, check_non_empty
}
checked_string! {
    /// An email address, checked lightly: exactly one `@` with text on both sides.
    Email, check_email
}
checked_string! {
    /// The last four digits of a card number, the only part of it the log may hold.
    Last4, check_last4
}
checked_string! {
    /// An ISO 4217 currency code such as `EUR`: three uppercase ASCII letters.
    Currency, check_currency
}
checked_string! {
    /// A SHA-256 digest as 64 lowercase hex characters.
    Sha256Hex, check_sha256_hex
}
checked_string! {
    /// A cron expression with 5 fields, or 6 when the producer's scheduler counts seconds. The
    /// fields themselves are the scheduler's business and are not interpreted here.
    CronExpression, check_cron
}
checked_string! {
    /// An RFC 3339 timestamp inside `data`, kept exactly as sent so that the typed view
    /// serializes back to the same bytes.
    Timestamp, check_rfc3339
}

impl Timestamp {
    /// Returns the instant the timestamp names.
    pub fn instant(&self) -> OffsetDateTime {
        // Every `Timestamp` went through `check_rfc3339`, so parsing again cannot fail.
        OffsetDateTime::parse(&self.0, &Rfc3339).expect("timestamp checked on construction")
    }
}

fn check_non_empty(value: &str) -> Result<(), &'static str> {
    if value.trim().is_empty() {
        return Err("must not be empty");
    }
    Ok(())
}

fn check_email(value: &str) -> Result<(), &'static str> {
    match value.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(())
        }
        _ => Err("must be an email address: one @ with text on both sides"),
    }
}

fn check_last4(value: &str) -> Result<(), &'static str> {
    if value.len() == 4 && value.bytes().all(|byte| byte.is_ascii_digit()) {
        return Ok(());
    }
    Err("must be exactly 4 digits")
}

fn check_currency(value: &str) -> Result<(), &'static str> {
    if value.len() == 3 && value.bytes().all(|byte| byte.is_ascii_uppercase()) {
        return Ok(());
    }
    Err("must be a currency code of 3 uppercase letters")
}

fn check_sha256_hex(value: &str) -> Result<(), &'static str> {
    let is_lower_hex = |byte: u8| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte);
    if value.len() == 64 && value.bytes().all(is_lower_hex) {
        return Ok(());
    }
    Err("must be 64 lowercase hex characters")
}

fn check_cron(value: &str) -> Result<(), &'static str> {
    match value.split_whitespace().count() {
        5 | 6 => Ok(()),
        _ => Err("must be a cron expression of 5 or 6 whitespace-separated fields"),
    }
}

fn check_rfc3339(value: &str) -> Result<(), &'static str> {
    match OffsetDateTime::parse(value, &Rfc3339) {
        Ok(_) => Ok(()),
        Err(_) => Err("must be an RFC 3339 timestamp"),
    }
}

/// A quota threshold in percent of the quota. Up to 1000: overage alerts fire past 100%.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64")]
pub struct ThresholdPct(u16);

impl ThresholdPct {
    /// Returns the threshold in percent.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<u64> for ThresholdPct {
    type Error = InvalidValue;

    fn try_from(value: u64) -> Result<Self, Self::Error> {
        match u16::try_from(value) {
            Ok(percent) if percent <= 1000 => Ok(Self(percent)),
            _ => Err(InvalidValue("must be an integer from 0 to 1000")),
        }
    }
}

/// The POSIX signals a terminal session may send, carried as their number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u8")]
pub enum Signal {
    /// `SIGINT`, 2: what Ctrl-C sends.
    Interrupt = 2,
    /// `SIGKILL`, 9.
    Kill = 9,
    /// `SIGTERM`, 15.
    Terminate = 15,
}

impl TryFrom<u64> for Signal {
    type Error = InvalidValue;

    fn try_from(value: u64) -> Result<Self, Self::Error> {
        match value {
            2 => Ok(Self::Interrupt),
            9 => Ok(Self::Kill),
            15 => Ok(Self::Terminate),
            _ => Err(InvalidValue("expected one of 2, 9, 15")),
        }
    }
}

impl From<Signal> for u8 {
    fn from(signal: Signal) -> Self {
        signal as u8
    }
}

// ---------------------------------------------------------------------------------------------
// Closed value sets
// ---------------------------------------------------------------------------------------------

/// A member's role in a workspace. A workspace always keeps at least one owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Member,
    Viewer,
}

/// A workspace's plan; it sets audit retention and machine and member limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    Personal,
    TeamStarter,
    TeamScale,
    Enterprise,
}

/// Whether a machine's agent answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    Online,
    Degraded,
    Starting,
    Offline,
}

/// What a member may do on one machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLevel {
    Full,
    Execute,
    View,
    /// Sent as `none`; named so that it is not mistaken for `Option::None`.
    #[serde(rename = "none")]
    NoAccess,
}

/// The program a session client runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    Desktop,
    Cli,
    Browser,
    Bot,
}

/// Whether a session client may type (operator) or only watch (observer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionMode {
    Operator,
    Observer,
}

/// Which machines a schedule runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleTarget {
    /// Every machine of the workspace.
    All,
    /// The machines listed in the schedule's `machines`.
    Machines,
}

/// What started a schedule run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunTrigger {
    Cron,
    Manual,
    Api,
}

/// How a schedule run ended on one machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

/// Where a workspace integration delivers notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationKind {
    Webhook,
    Slack,
}

/// Whom an API token acts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Personal,
    Workspace,
    Agent,
}

/// The file format of an audit export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    Ndjson,
    Csv,
    Parquet,
}

// ---------------------------------------------------------------------------------------------
// Edits
// ---------------------------------------------------------------------------------------------

/// One edited field: its value before and after. Either may be any JSON value, `null` included.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub from: Value,
    pub to: Value,
}

// Written by hand because the derived impl would also accept a two-element array `[from, to]`
// (serde_json lets structs be read from sequences), and both keys are required by name.
impl<'de> Deserialize<'de> for Change {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ChangeVisitor;

        impl<'de> Visitor<'de> for ChangeVisitor {
            type Value = Change;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an object with from and to")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Change, A::Error> {
                let (mut from, mut to) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "from" => from = Some(map.next_value()?),
                        "to" => to = Some(map.next_value()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Change {
                    from: from.ok_or_else(|| de::Error::missing_field("from"))?,
                    to: to.ok_or_else(|| de::Error::missing_field("to"))?,
                })
            }
        }

        deserializer.deserialize_map(ChangeVisitor)
    }
}

/// The `changes` of an edit event: edited field name to [`Change`], never empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, Change>")]
pub struct Changes(BTreeMap<String, Change>);

impl Changes {
    /// Returns the edits by field name.
    pub fn into_map(self) -> BTreeMap<String, Change> {
        self.0
    }
}

impl TryFrom<BTreeMap<String, Change>> for Changes {
    type Error = InvalidValue;

    fn try_from(changes: BTreeMap<String, Change>) -> Result<Self, Self::Error> {
        if changes.is_empty() {
            return Err(InvalidValue("must list at least one changed field"));
        }
        Ok(Self(changes))
    }
}

impl Deref for Changes {
    type Target = BTreeMap<String, Change>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'a> IntoIterator for &'a Changes {
    type Item = (&'a String, &'a Change);
    type IntoIter = std::collections::btree_map::Iter<'a, String, Change>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

// ---------------------------------------------------------------------------------------------
// workspace (stream `workspace-<ws>`)
// ---------------------------------------------------------------------------------------------

/// `workspace.created`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceCreated {
    pub name: NonEmptyString,
    pub slug: NonEmptyString,
    pub plan: Plan,
}

/// `workspace.settings_changed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceSettingsChanged {
    pub changes: Changes,
}

/// `workspace.security_policy_changed`: only the keys of [`Self::POLICIES`] may change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceSecurityPolicyChanged {
    pub changes: Changes,
}

impl WorkspaceSecurityPolicyChanged {
    /// The security policies a workspace has.
    pub const POLICIES: &[&str] = &[
        "require_2fa",
        "ip_allowlist",
        "session_timeout_min",
        "default_permission_mode",
    ];

    fn check(&self) -> Result<(), DataError> {
        match self
            .changes
            .keys()
            .find(|key| !Self::POLICIES.contains(&key.as_str()))
        {
            Some(unknown) => Err(DataError::field(
                format!("changes.{unknown}"),
                format!("expected one of {}", Self::POLICIES.join(", ")),
            )),
            None => Ok(()),
        }
    }
}

/// `workspace.integration_configured`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceIntegrationConfigured {
    pub kind: IntegrationKind,
    /// The webhook URL or the Slack channel.
    pub target: NonEmptyString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_rotated: Option<bool>,
}

/// `workspace.deletion_requested`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceDeletionRequested {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `workspace.deleted`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceDeleted {}

/// `workspace.suspended`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceSuspended {
    pub reason: NonEmptyString,
}

// ---------------------------------------------------------------------------------------------
// member, role, permission (stream `member-<ws>:<user>`)
// ---------------------------------------------------------------------------------------------

/// `member.invited`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberInvited {
    pub email: Email,
    pub role: Role,
    pub expires_at: Timestamp,
}

/// `member.invitation_resent`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberInvitationResent {}

/// `member.invitation_revoked`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberInvitationRevoked {}

/// `member.joined`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberJoined {
    pub email: Email,
    pub role: Role,
}

/// `member.role_changed`: `from` may equal `to` (a producer may re-assert a role).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRoleChanged {
    pub from: Role,
    pub to: Role,
}

/// `member.suspended`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberSuspended {}

/// `member.removed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRemoved {}

/// `permission.machine_access_set`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermissionMachineAccessSet {
    /// The member's user id.
    pub member: NonEmptyString,
    pub machine: NonEmptyString,
    pub level: AccessLevel,
}

/// `permission.rules_changed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermissionRulesChanged {
    pub changes: Changes,
}

// ---------------------------------------------------------------------------------------------
// machine (stream `machine-<id>`)
// ---------------------------------------------------------------------------------------------

/// `machine.registered`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineRegistered {
    pub name: NonEmptyString,
    pub hostname: NonEmptyString,
    pub os: NonEmptyString,
    pub os_version: NonEmptyString,
    pub arch: NonEmptyString,
    pub agent_version: NonEmptyString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<NonEmptyString>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<NonEmptyString>,
}

/// `machine.renamed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineRenamed {
    pub from: NonEmptyString,
    pub to: NonEmptyString,
}

/// `machine.retagged`: either list may be empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineRetagged {
    pub added: Vec<NonEmptyString>,
    pub removed: Vec<NonEmptyString>,
}

/// `machine.moved`: recorded twice, in the workspace the machine leaves (as sent) and as the
/// first event of its stream in the one it joins, where Chronicle adds `machine`, what the
/// destination needs to know of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineMoved {
    pub from_workspace: NonEmptyString,
    pub to_workspace: NonEmptyString,
    /// The machine's attributes as it left, on the destination's copy only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<MachineRegistered>,
}

/// `machine.presence_changed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachinePresenceChanged {
    pub status: PresenceStatus,
}

/// `machine.agent_updated`: agent versions before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineAgentUpdated {
    pub from: NonEmptyString,
    pub to: NonEmptyString,
}

/// `machine.deregistered`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineDeregistered {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// session (stream `session-<id>`)
// ---------------------------------------------------------------------------------------------

/// `session.opened`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionOpened {
    pub machine: NonEmptyString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<NonEmptyString>,
    pub client_kind: ClientKind,
    pub mode: SessionMode,
}

/// `session.attached`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionAttached {
    pub client_id: NonEmptyString,
    pub client_kind: ClientKind,
    pub mode: SessionMode,
}

/// `session.detached`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionDetached {
    pub client_id: NonEmptyString,
}

/// `session.input_sent`: raw input never enters the log, only its length and digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInputSent {
    pub seq: u64,
    pub bytes: u64,
    pub sha256: Sha256Hex,
    /// The typed line, already scrubbed of secrets, when the producer chose to record it; it is
    /// what reviewers search for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// `session.signal_sent`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSignalSent {
    pub signal: Signal,
}

/// `session.closed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionClosed {
    pub reason: NonEmptyString,
    /// Signed: some platforms report a process killed by a signal as a negative code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    pub duration_ms: u64,
}

/// `session.flagged`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionFlagged {
    pub reason: NonEmptyString,
}

// ---------------------------------------------------------------------------------------------
// schedule and runs (stream `schedule-<id>`)
// ---------------------------------------------------------------------------------------------

/// `schedule.created`: with `target` = `machines`, `machines` must list at least one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleCreated {
    pub name: NonEmptyString,
    pub cron: CronExpression,
    /// An IANA time zone name such as `Europe/Berlin`, not interpreted here.
    pub timezone: NonEmptyString,
    pub command: NonEmptyString,
    pub target: ScheduleTarget,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machines: Option<Vec<NonEmptyString>>,
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
}

impl ScheduleCreated {
    fn check(&self) -> Result<(), DataError> {
        let lists_machines = self
            .machines
            .as_ref()
            .is_some_and(|machines| !machines.is_empty());
        if self.target == ScheduleTarget::Machines && !lists_machines {
            return Err(DataError::field(
                "machines",
                "must list at least one machine when target is machines",
            ));
        }
        Ok(())
    }
}

/// `schedule.updated`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleUpdated {
    pub changes: Changes,
}

/// `schedule.paused`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchedulePaused {}

/// `schedule.resumed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleResumed {}

/// `schedule.deleted`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleDeleted {}

/// `schedule.run_triggered`: the run is queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRunTriggered {
    pub run_id: NonEmptyString,
    pub trigger: RunTrigger,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machines: Option<Vec<NonEmptyString>>,
}

/// `schedule.run_started`: the run is running on `machine`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRunStarted {
    pub run_id: NonEmptyString,
    pub machine: NonEmptyString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<NonEmptyString>,
}

/// `schedule.run_finished`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRunFinished {
    pub run_id: NonEmptyString,
    pub machine: NonEmptyString,
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `schedule.run_cancel_requested`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRunCancelRequested {
    pub run_id: NonEmptyString,
}

/// `schedule.run_degraded`: the run's machine stopped answering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRunDegraded {
    pub run_id: NonEmptyString,
    pub machine: NonEmptyString,
}

// ---------------------------------------------------------------------------------------------
// billing (stream `billing-<ws>`)
// ---------------------------------------------------------------------------------------------

/// `billing.plan_changed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillingPlanChanged {
    pub from: Plan,
    pub to: Plan,
}

/// `billing.seats_changed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillingSeatsChanged {
    pub from: u64,
    pub to: u64,
}

/// `billing.payment_method_added`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillingPaymentMethodAdded {
    pub brand: NonEmptyString,
    pub last4: Last4,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<bool>,
}

/// `billing.payment_method_removed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillingPaymentMethodRemoved {
    pub last4: Last4,
}

/// `billing.payment_succeeded`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillingPaymentSucceeded {
    pub amount_cents: u64,
    pub currency: Currency,
    pub invoice: NonEmptyString,
}

/// `billing.payment_failed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillingPaymentFailed {
    pub amount_cents: u64,
    pub currency: Currency,
    pub attempt: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `billing.invoice_issued`: the period may not end before it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillingInvoiceIssued {
    pub invoice: NonEmptyString,
    pub amount_cents: u64,
    pub currency: Currency,
    pub period_start: Timestamp,
    pub period_end: Timestamp,
}

impl BillingInvoiceIssued {
    fn check(&self) -> Result<(), DataError> {
        check_time_range(
            Some(&self.period_start),
            Some(&self.period_end),
            "period_end",
        )
    }
}

/// `billing.invoice_voided`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillingInvoiceVoided {
    pub invoice: NonEmptyString,
}

/// `billing.refund_issued`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillingRefundIssued {
    pub invoice: NonEmptyString,
    pub amount_cents: u64,
}

/// `billing.grace_period_entered`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillingGracePeriodEntered {
    pub ends_at: Timestamp,
}

/// `billing.usage_recorded`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillingUsageRecorded {
    pub meter: NonEmptyString,
    pub quantity: u64,
    /// The billing period the usage counts towards, as the producer names it (`2024-05`).
    pub period: NonEmptyString,
}

/// `billing.quota_threshold_crossed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillingQuotaThresholdCrossed {
    pub quota: NonEmptyString,
    pub threshold_pct: ThresholdPct,
    pub used: u64,
    pub limit: u64,
}

// ---------------------------------------------------------------------------------------------
// auth, account, tokens (streams `account-<user>`, `token-<id>`)
// ---------------------------------------------------------------------------------------------

/// `auth.login_succeeded`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthLoginSucceeded {
    /// Whether a second factor was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<bool>,
    /// Whether the login came from a device not seen before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_device: Option<bool>,
}

/// `auth.login_failed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthLoginFailed {
    pub reason: NonEmptyString,
}

/// `auth.logout`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthLoggedOut {}

/// `auth.session_refreshed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthSessionRefreshed {}

/// `account.mfa_enabled`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountMfaEnabled {
    /// The second factor, as the producer names it (`totp`, `webauthn` ...).
    pub method: NonEmptyString,
}

/// `account.mfa_disabled`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountMfaDisabled {}

/// `account.backup_code_used`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountBackupCodeUsed {}

/// `account.password_changed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountPasswordChanged {}

/// `account.email_changed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountEmailChanged {
    pub from: Email,
    pub to: Email,
}

/// `account.oauth_linked`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountOauthLinked {
    pub provider: NonEmptyString,
}

/// `account.oauth_unlinked`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountOauthUnlinked {
    pub provider: NonEmptyString,
}

/// `token.issued`: the token value never enters the log, only its `prefix`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenIssued {
    pub name: NonEmptyString,
    pub kind: TokenKind,
    pub scopes: Vec<NonEmptyString>,
    pub prefix: NonEmptyString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// `token.revoked`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRevoked {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// share links (stream `share-<id>`)
// ---------------------------------------------------------------------------------------------

/// `share_link.issued`: the link's secret never enters the log, only its `prefix`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareLinkIssued {
    pub machine: NonEmptyString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<NonEmptyString>,
    pub prefix: NonEmptyString,
    pub ttl_hours: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// `share_link.used`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareLinkUsed {}

/// `share_link.revoked`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareLinkRevoked {}

/// `share_link.expired`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareLinkExpired {}

// ---------------------------------------------------------------------------------------------
// audit of the audit (stream `audit-<ws>`, appended by Chronicle only)
// ---------------------------------------------------------------------------------------------

/// `audit.searched`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditSearched {
    /// The search as the caller wrote it, so a reviewer can run it again; empty for "everything".
    pub query: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Timestamp>,
    pub hits: u64,
}

impl AuditSearched {
    fn check(&self) -> Result<(), DataError> {
        check_time_range(self.from.as_ref(), self.to.as_ref(), "to")
    }
}

/// `audit.exported`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditExported {
    /// The search as the caller wrote it; empty for "everything".
    pub query: String,
    pub format: ExportFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Timestamp>,
    pub count: u64,
}

impl AuditExported {
    fn check(&self) -> Result<(), DataError> {
        check_time_range(self.from.as_ref(), self.to.as_ref(), "to")
    }
}

/// `evidence.exported`: a verifiable evidence bundle covering `from`..`to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceExported {
    pub from: Timestamp,
    pub to: Timestamp,
    pub count: u64,
    /// The Merkle tree size the bundle's proofs are against.
    pub tree_size: u64,
}

impl EvidenceExported {
    fn check(&self) -> Result<(), DataError> {
        check_time_range(Some(&self.from), Some(&self.to), "to")
    }
}

/// How a replay of past events reached its reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayTransport {
    /// `GET …/live` (Server-Sent Events).
    Sse,
    /// `GET …/live/ws`.
    Websocket,
    /// A webhook created to deliver from a past position.
    Webhook,
}

/// `audit.replayed`: a live stream or a webhook about to replay more than 1,000 past events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditReplayed {
    /// The log position the replay starts after.
    pub after: u64,
    /// The type filters asked for; empty for every type.
    pub types: Vec<String>,
    /// The workspace's events after `after` when the replay began, before the type filter:
    /// what the replay reads.
    pub count: u64,
    pub transport: ReplayTransport,
}

/// `audit.signing_key_rotated`: the server started with a new checkpoint signing key next to
/// checkpoints signed by another (`--rotate-signing-key`); recorded in every workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditSigningKeyRotated {
    /// The new note verifier key, `NAME+KEYID+BASE64`: checkpoints from here on verify with it.
    pub key: String,
}

/// Refuses a range whose end comes before its start; the error names the end field.
fn check_time_range(
    start: Option<&Timestamp>,
    end: Option<&Timestamp>,
    end_field: &str,
) -> Result<(), DataError> {
    match (start, end) {
        (Some(start), Some(end)) if end.instant() < start.instant() => Err(DataError::field(
            end_field,
            "must not be before the start of the range",
        )),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// The catalogue
// ---------------------------------------------------------------------------------------------

/// Generates everything that lists the types, from one entry per type:
/// `"type.name" => StructName { minimal example data } [check StructName::check]`, grouped by
/// stream kind.
macro_rules! catalogue {
    ($(
        $kind:literal {
            $( $name:literal => $variant:ident $example:tt $(check $check:path)? ),* $(,)?
        }
    )*) => {
        /// Every event type of the catalogue, in DOMAIN.md order.
        pub const EVENT_TYPES: &[&str] = &[$($($name,)*)*];

        /// Returns the stream kind an event type belongs in: "workspace", "member" (member.* and
        /// permission.*), "machine", "session", "schedule", "billing", "account" (auth.* and
        /// account.*), "token", "share" (share_link.*), "audit" (audit.searched,
        /// audit.exported, evidence.exported, audit.replayed, audit.signing_key_rotated), or
        /// `None` for an unknown type.
        pub fn stream_kind(event_type: &str) -> Option<&'static str> {
            match event_type {
                $( $($name)|* => Some($kind), )*
                _ => None,
            }
        }

        /// The typed `data` of an event: one variant per catalogue type, each holding the
        /// struct named after the event.
        ///
        /// Serializes as the bare `data` object (untagged); the type is [`Self::event_type`].
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum EventData {
            $($(
                #[doc = concat!("`", $name, "`")]
                $variant($variant),
            )*)*
        }

        impl EventData {
            /// Returns the catalogue name of the event's type, e.g. `machine.registered`.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $($( Self::$variant(_) => $name, )*)*
                }
            }
        }

        /// Parses `data` as the typed payload of `event_type`.
        ///
        /// Extra fields are ignored. A rejection names the failing field by its path inside
        /// `data`, or "" when `data` is not an object.
        pub fn parse_data(event_type: &str, data: &Value) -> Result<EventData, DataError> {
            match event_type {
                $($(
                    $name => {
                        let typed: $variant = parse_typed(data)?;
                        $( $check(&typed)?; )?
                        Ok(EventData::$variant(typed))
                    }
                )*)*
                _ => Err(DataError::UnknownType(event_type.to_owned())),
            }
        }

        /// Returns a minimal valid `data` object for each type: every required field, no
        /// optional one, realistic values. Used by tests and docs.
        pub fn minimal_example(event_type: &str) -> Option<Value> {
            match event_type {
                $($( $name => Some(serde_json::json!($example)), )*)*
                _ => None,
            }
        }
    };
}

catalogue! {
    "workspace" {
        "workspace.created" => WorkspaceCreated {
            "name": "Acme Robotics", "slug": "acme-robotics", "plan": "team_scale"
        },
        "workspace.settings_changed" => WorkspaceSettingsChanged {
            "changes": {"name": {"from": "Acme", "to": "Acme Robotics"}}
        },
        "workspace.security_policy_changed" => WorkspaceSecurityPolicyChanged {
            "changes": {"require_2fa": {"from": false, "to": true}}
        } check WorkspaceSecurityPolicyChanged::check,
        "workspace.integration_configured" => WorkspaceIntegrationConfigured {
            "kind": "webhook", "target": "https://hooks.acme.example/chronicle"
        },
        "workspace.deletion_requested" => WorkspaceDeletionRequested {},
        "workspace.deleted" => WorkspaceDeleted {},
        "workspace.suspended" => WorkspaceSuspended { "reason": "payment overdue" },
    }
    "member" {
        "member.invited" => MemberInvited {
            "email": "dana@acme.example", "role": "admin", "expires_at": "2024-05-08T09:30:00Z"
        },
        "member.invitation_resent" => MemberInvitationResent {},
        "member.invitation_revoked" => MemberInvitationRevoked {},
        "member.joined" => MemberJoined { "email": "dana@acme.example", "role": "member" },
        "member.role_changed" => MemberRoleChanged { "from": "member", "to": "admin" },
        "member.suspended" => MemberSuspended {},
        "member.removed" => MemberRemoved {},
        "permission.machine_access_set" => PermissionMachineAccessSet {
            "member": "usr_4", "machine": "mch_9", "level": "execute"
        },
        "permission.rules_changed" => PermissionRulesChanged {
            "changes": {"default_level": {"from": "view", "to": "execute"}}
        },
    }
    "machine" {
        "machine.registered" => MachineRegistered {
            "name": "build-01", "hostname": "build-01.acme.internal", "os": "linux",
            "os_version": "Ubuntu 22.04", "arch": "x86_64", "agent_version": "2.4.1"
        },
        "machine.renamed" => MachineRenamed { "from": "build-01", "to": "ci-runner-01" },
        "machine.retagged" => MachineRetagged { "added": ["ci"], "removed": [] },
        "machine.moved" => MachineMoved { "from_workspace": "ws_1", "to_workspace": "ws_2" },
        "machine.presence_changed" => MachinePresenceChanged { "status": "online" },
        "machine.agent_updated" => MachineAgentUpdated { "from": "2.4.1", "to": "2.5.0" },
        "machine.deregistered" => MachineDeregistered {},
    }
    "session" {
        "session.opened" => SessionOpened {
            "machine": "mch_9", "client_kind": "browser", "mode": "operator"
        },
        "session.attached" => SessionAttached {
            "client_id": "cli_2", "client_kind": "desktop", "mode": "observer"
        },
        "session.detached" => SessionDetached { "client_id": "cli_2" },
        "session.input_sent" => SessionInputSent {
            "seq": 1, "bytes": 7,
            "sha256": "7d88e721e241c7694a68f07596182386eb3a31bda4f8fdfba489b57a58657f80"
        },
        "session.signal_sent" => SessionSignalSent { "signal": 2 },
        "session.closed" => SessionClosed { "reason": "client_closed", "duration_ms": 95000 },
        "session.flagged" => SessionFlagged { "reason": "command launched from the web terminal" },
    }
    "schedule" {
        "schedule.created" => ScheduleCreated {
            "name": "nightly backup", "cron": "0 3 * * *", "timezone": "Europe/Berlin",
            "command": "/usr/local/bin/backup.sh", "target": "all", "enabled": true
        } check ScheduleCreated::check,
        "schedule.updated" => ScheduleUpdated {
            "changes": {"cron": {"from": "0 3 * * *", "to": "30 2 * * *"}}
        },
        "schedule.paused" => SchedulePaused {},
        "schedule.resumed" => ScheduleResumed {},
        "schedule.deleted" => ScheduleDeleted {},
        "schedule.run_triggered" => ScheduleRunTriggered { "run_id": "run_41", "trigger": "cron" },
        "schedule.run_started" => ScheduleRunStarted { "run_id": "run_41", "machine": "mch_9" },
        "schedule.run_finished" => ScheduleRunFinished {
            "run_id": "run_41", "machine": "mch_9", "status": "succeeded", "duration_ms": 42000
        },
        "schedule.run_cancel_requested" => ScheduleRunCancelRequested { "run_id": "run_41" },
        "schedule.run_degraded" => ScheduleRunDegraded { "run_id": "run_41", "machine": "mch_9" },
    }
    "billing" {
        "billing.plan_changed" => BillingPlanChanged { "from": "team_starter", "to": "team_scale" },
        "billing.seats_changed" => BillingSeatsChanged { "from": 10, "to": 25 },
        "billing.payment_method_added" => BillingPaymentMethodAdded {
            "brand": "visa", "last4": "4242"
        },
        "billing.payment_method_removed" => BillingPaymentMethodRemoved { "last4": "4242" },
        "billing.payment_succeeded" => BillingPaymentSucceeded {
            "amount_cents": 4900, "currency": "EUR", "invoice": "inv_2024_05"
        },
        "billing.payment_failed" => BillingPaymentFailed {
            "amount_cents": 4900, "currency": "EUR", "attempt": 1
        },
        "billing.invoice_issued" => BillingInvoiceIssued {
            "invoice": "inv_2024_05", "amount_cents": 4900, "currency": "EUR",
            "period_start": "2024-05-01T00:00:00Z", "period_end": "2024-06-01T00:00:00Z"
        } check BillingInvoiceIssued::check,
        "billing.invoice_voided" => BillingInvoiceVoided { "invoice": "inv_2024_05" },
        "billing.refund_issued" => BillingRefundIssued {
            "invoice": "inv_2024_05", "amount_cents": 1200
        },
        "billing.grace_period_entered" => BillingGracePeriodEntered {
            "ends_at": "2024-06-15T00:00:00Z"
        },
        "billing.usage_recorded" => BillingUsageRecorded {
            "meter": "session_minutes", "quantity": 1320, "period": "2024-05"
        },
        "billing.quota_threshold_crossed" => BillingQuotaThresholdCrossed {
            "quota": "machines", "threshold_pct": 80, "used": 20, "limit": 25
        },
    }
    "account" {
        "auth.login_succeeded" => AuthLoginSucceeded {},
        "auth.login_failed" => AuthLoginFailed { "reason": "wrong_password" },
        "auth.logout" => AuthLoggedOut {},
        "auth.session_refreshed" => AuthSessionRefreshed {},
        "account.mfa_enabled" => AccountMfaEnabled { "method": "totp" },
        "account.mfa_disabled" => AccountMfaDisabled {},
        "account.backup_code_used" => AccountBackupCodeUsed {},
        "account.password_changed" => AccountPasswordChanged {},
        "account.email_changed" => AccountEmailChanged {
            "from": "dana@acme.example", "to": "dana.w@acme.example"
        },
        "account.oauth_linked" => AccountOauthLinked { "provider": "github" },
        "account.oauth_unlinked" => AccountOauthUnlinked { "provider": "github" },
    }
    "token" {
        "token.issued" => TokenIssued {
            "name": "ci deploy", "kind": "workspace", "scopes": ["events:append"],
            "prefix": "cmd_ws1_ab12"
        },
        "token.revoked" => TokenRevoked {},
    }
    "share" {
        "share_link.issued" => ShareLinkIssued {
            "machine": "mch_9", "prefix": "shl_5_k3", "ttl_hours": 24
        },
        "share_link.used" => ShareLinkUsed {},
        "share_link.revoked" => ShareLinkRevoked {},
        "share_link.expired" => ShareLinkExpired {},
    }
    "audit" {
        "audit.searched" => AuditSearched {
            "query": "type:machine.* actor:usr_4", "hits": 17
        } check AuditSearched::check,
        "audit.exported" => AuditExported {
            "query": "type:session.*", "format": "csv", "count": 120
        } check AuditExported::check,
        "evidence.exported" => EvidenceExported {
            "from": "2024-05-01T00:00:00Z", "to": "2024-06-01T00:00:00Z",
            "count": 5230, "tree_size": 88120
        } check EvidenceExported::check,
        "audit.replayed" => AuditReplayed {
            "after": 0, "types": [], "count": 40000, "transport": "sse"
        },
        "audit.signing_key_rotated" => AuditSigningKeyRotated {
            "key": "chronicle.local+1a2b3c4d+AQ"
        },
    }
}

/// Returns true for the types only Chronicle itself may append (audit.searched, audit.exported,
/// evidence.exported, audit.replayed, audit.signing_key_rotated).
pub fn is_reserved(event_type: &str) -> bool {
    // The audit stream holds exactly the events Chronicle appends about its own use.
    stream_kind(event_type) == Some("audit")
}

// ---------------------------------------------------------------------------------------------
// Parsing and error wording
// ---------------------------------------------------------------------------------------------

/// The integer a float holds exactly (`3489.0`), if any.
fn integral(number: &serde_json::Number) -> Option<Value> {
    let float = number.as_f64().filter(|_| number.is_f64())?;
    if float.fract() != 0.0 || float.abs() >= 9_007_199_254_740_992.0 {
        return None;
    }
    Some(Value::from(float as i64))
}

fn holds_integral_float(value: &Value) -> bool {
    match value {
        Value::Number(number) => integral(number).is_some(),
        Value::Array(items) => items.iter().any(holds_integral_float),
        Value::Object(object) => object.values().any(holds_integral_float),
        _ => false,
    }
}

fn with_integral_floats_as_integers(value: Value) -> Value {
    match value {
        Value::Number(number) => integral(&number).unwrap_or(Value::Number(number)),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(with_integral_floats_as_integers)
                .collect(),
        ),
        Value::Object(object) => Value::Object(
            object
                .into_iter()
                .map(|(key, value)| (key, with_integral_floats_as_integers(value)))
                .collect(),
        ),
        other => other,
    }
}

fn parse_typed<T: DeserializeOwned>(data: &Value) -> Result<T, DataError> {
    // Checked up front because serde_json would otherwise read a struct from an array of its
    // field values in order.
    if !data.is_object() {
        return Err(DataError::field(
            "",
            format!("expected an object, found {}", json_kind(data)),
        ));
    }
    // JSON Schema judges numbers by value: `3489.0` is an integer. So does the catalogue.
    let normalized;
    let data = if holds_integral_float(data) {
        normalized = with_integral_floats_as_integers(data.clone());
        &normalized
    } else {
        data
    };
    serde_path_to_error::deserialize(data).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = error.into_inner().to_string();
        // serde reports a missing field at its parent; the producer wants the field itself.
        if let Some(missing) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
        {
            let field = if path.is_empty() {
                missing.to_owned()
            } else {
                format!("{path}.{missing}")
            };
            return DataError::field(field, "missing required field");
        }
        DataError::field(path, reword(&message))
    })
}

/// Rewords serde's messages into ours: what is expected first, and without echoing the value
/// (a value sent in the wrong field may be a secret, and errors end up in logs).
fn reword(message: &str) -> String {
    // Let chains would read better but need Rust 1.88; the workspace promises 1.85.
    let unknown_variant = message.strip_prefix("unknown variant `");
    if let Some((_, expected)) = unknown_variant.and_then(|rest| rest.split_once("`, expected ")) {
        let names = expected
            .trim_start_matches("one of ")
            .replace('`', "")
            .replace(" or ", ", ");
        return format!("expected one of {names}");
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        let rest = message.strip_prefix(prefix);
        if let Some((found, expected)) = rest.and_then(|rest| rest.rsplit_once(", expected ")) {
            return format!(
                "expected {}, found {}",
                reword_expected(expected),
                reword_found(found)
            );
        }
    }
    message.to_owned()
}

fn reword_expected(expected: &str) -> &str {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "an unsigned integer",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
        "f32" | "f64" => "a number",
        "a sequence" => "an array",
        "a map" => "an object",
        // serde_json's wording for an enum read from the wrong JSON type.
        "string or map" => "a string",
        _ if expected.starts_with("struct ") => "an object",
        _ => expected,
    }
}

fn reword_found(found: &str) -> &str {
    if found.starts_with("integer `-") {
        return "a negative integer";
    }
    match found.split(' ').next().unwrap_or(found) {
        "integer" => "an integer",
        "floating" => "a floating-point number",
        "string" => "a string",
        "boolean" => "a boolean",
        "unit" => "null",
        "map" => "an object",
        "sequence" => "an array",
        _ => found,
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// The catalogue section of DOMAIN.md, copied verbatim, so that the list of types is
    /// checked against the spec's own words.
    const DOMAIN_CATALOGUE: &str = r#"
- `workspace.created` {name, slug, plan}
- `workspace.settings_changed` {changes}
- `workspace.security_policy_changed` {changes: require_2fa, ip_allowlist, session_timeout_min, default_permission_mode}
- `workspace.integration_configured` {kind: webhook|slack, target, [secret_rotated]}
- `workspace.deletion_requested` {[reason]} · `workspace.deleted` {} · `workspace.suspended` {reason}
- `member.invited` {email, role, expires_at} · `member.invitation_resent` {} · `member.invitation_revoked` {}
- `member.joined` {email, role} · `member.role_changed` {from, to} · `member.suspended` {} · `member.removed` {}
- `permission.machine_access_set` {member, machine, level: full|execute|view|none}
- `permission.rules_changed` {changes}
- `machine.registered` {name, hostname, os, os_version, arch, agent_version, [tags], [fingerprint]}
- `machine.renamed` {from, to} · `machine.retagged` {added, removed}
- `machine.moved` {from_workspace, to_workspace}
- `machine.presence_changed` {status: online|degraded|starting|offline}
- `machine.agent_updated` {from, to}
- `machine.deregistered` {[reason]}
- `session.opened` {machine, [name], client_kind: desktop|cli|browser|bot, mode: operator|observer}
- `session.attached` {client_id, client_kind, mode} · `session.detached` {client_id}
- `session.input_sent` {seq, bytes, sha256, [command]}: `command` is the typed line when the producer
- `session.signal_sent` {signal: 2|9|15}
- `session.closed` {reason, [exit_code], duration_ms}
- `session.flagged` {reason} (for example, a command launched from the web terminal)
- `schedule.created` {name, cron, timezone, command, target: all|machines, [machines], enabled, [timeout_s]}
- `schedule.updated` {changes} · `schedule.paused` {} · `schedule.resumed` {} · `schedule.deleted` {}
- `schedule.run_triggered` {run_id, trigger: cron|manual|api, [machines]}
- `schedule.run_started` {run_id, machine, [session]}
- `schedule.run_finished` {run_id, machine, status: succeeded|failed|cancelled|timed_out, [exit_code], duration_ms, [error]}
- `schedule.run_cancel_requested` {run_id} · `schedule.run_degraded` {run_id, machine}
- `billing.plan_changed` {from, to} · `billing.seats_changed` {from, to}
- `billing.payment_method_added` {brand, last4, [default]} · `billing.payment_method_removed` {last4}
- `billing.payment_succeeded` {amount_cents, currency, invoice} · `billing.payment_failed` {amount_cents, currency, attempt, [reason]}
- `billing.invoice_issued` {invoice, amount_cents, currency, period_start, period_end}
- `billing.invoice_voided` {invoice} · `billing.refund_issued` {invoice, amount_cents}
- `billing.grace_period_entered` {ends_at} · `billing.usage_recorded` {meter, quantity, period}
- `billing.quota_threshold_crossed` {quota, threshold_pct, used, limit}
- `auth.login_succeeded` {[mfa], [new_device]} · `auth.login_failed` {reason} · `auth.logout` {} · `auth.session_refreshed` {}
- `account.mfa_enabled` {method} · `account.mfa_disabled` {} · `account.backup_code_used` {}
- `account.password_changed` {} · `account.email_changed` {from, to}
- `account.oauth_linked` {provider} · `account.oauth_unlinked` {provider}
- `token.issued` {name, kind: personal|workspace|agent, scopes, prefix, [expires_at]} · `token.revoked` {[reason]}
- `share_link.issued` {machine, [session], prefix, ttl_hours, [expires_at]}
- `share_link.used` {} · `share_link.revoked` {} · `share_link.expired` {}
- `audit.searched` {query, [from], [to], hits}
- `audit.exported` {query, format, [from], [to], count}
- `evidence.exported` {from, to, count, tree_size}
- `audit.replayed` {after, types, count, transport}
- `audit.signing_key_rotated` {key}
"#;

    /// Returns the type names of [`DOMAIN_CATALOGUE`] in order, with their field lists: the
    /// backticked dotted names followed by ` {`.
    fn domain_catalogue() -> Vec<(String, Vec<(String, bool)>)> {
        let pieces: Vec<&str> = DOMAIN_CATALOGUE.split('`').collect();
        let mut types = Vec::new();
        for pair in pieces.windows(2).skip(1).step_by(2) {
            let (name, after) = (pair[0], pair[1]);
            let Some(fields) = after.strip_prefix(" {") else {
                continue;
            };
            let fields = &fields[..fields.find('}').unwrap()];
            // `{changes: require_2fa, ...}` lists the keys allowed inside `changes`.
            let fields = if fields.starts_with("changes:") {
                "changes"
            } else {
                fields
            };
            let fields = fields
                .split(", ")
                .filter(|field| !field.is_empty())
                .map(|field| {
                    // `kind: webhook|slack` lists the allowed values.
                    let field = field.split(':').next().unwrap();
                    match field.strip_prefix('[') {
                        Some(optional) => (optional.trim_end_matches(']').to_owned(), false),
                        None => (field.to_owned(), true),
                    }
                })
                .collect();
            types.push((name.to_owned(), fields));
        }
        types
    }

    fn example(event_type: &str) -> Value {
        minimal_example(event_type).unwrap_or_else(|| panic!("no example for {event_type}"))
    }

    /// Returns the minimal example of `event_type` with `edits` applied at top level.
    #[test]
    fn numbers_are_judged_by_value_as_json_schema_judges_them() {
        let whole = example_with("billing.usage_recorded", json!({"quantity": 3489.0}));
        assert!(
            parse_data("billing.usage_recorded", &whole).is_ok(),
            "3489.0 is an integer"
        );
        let nested = example_with("billing.refund_issued", json!({"amount_cents": 1.2e3}));
        assert!(
            parse_data("billing.refund_issued", &nested).is_ok(),
            "1.2e3 is 1200"
        );
        for (fraction, field) in [(json!(3489.5), "quantity"), (json!(1e300), "quantity")] {
            let data = example_with("billing.usage_recorded", json!({field: fraction}));
            assert!(
                parse_data("billing.usage_recorded", &data).is_err(),
                "{data}"
            );
        }
    }

    fn example_with(event_type: &str, edits: Value) -> Value {
        let mut data = example(event_type);
        for (key, value) in edits.as_object().unwrap() {
            data[key] = value.clone();
        }
        data
    }

    fn field_error(event_type: &str, data: &Value) -> (String, String) {
        match parse_data(event_type, data) {
            Err(DataError::Field { field, message }) => (field, message),
            other => panic!("{event_type} {data}: expected a field error, got {other:?}"),
        }
    }

    fn assert_field_error(event_type: &str, data: Value, field: &str, message: &str) {
        let (actual_field, actual_message) = field_error(event_type, &data);
        assert_eq!(
            (actual_field.as_str(), actual_message.as_str()),
            (field, message),
            "{event_type} {data}"
        );
    }

    #[test]
    fn event_types_match_the_domain_catalogue_in_order() {
        let documented: Vec<String> = domain_catalogue()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(EVENT_TYPES, documented.as_slice());
        assert_eq!(EVENT_TYPES.len(), 74);
        let unique: BTreeSet<&str> = EVENT_TYPES.iter().copied().collect();
        assert_eq!(unique.len(), EVENT_TYPES.len(), "duplicate event type");
    }

    #[test]
    fn minimal_examples_hold_exactly_the_documented_required_fields() {
        for (name, fields) in domain_catalogue() {
            let required: BTreeSet<String> = fields
                .iter()
                .filter(|(_, required)| *required)
                .map(|(field, _)| field.clone())
                .collect();
            let example: BTreeSet<String> = example(&name)
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            assert_eq!(example, required, "{name}");
        }
    }

    #[test]
    fn documented_optional_fields_are_accepted_and_kept() {
        let values = [
            ("secret_rotated", json!(true)),
            ("reason", json!("moving to another provider")),
            ("tags", json!(["ci", "linux"])),
            ("fingerprint", json!("SHA256:Zmlu")),
            ("name", json!("deploy shell")),
            ("command", json!("systemctl restart nginx")),
            ("exit_code", json!(-9)),
            ("machines", json!(["mch_9", "mch_10"])),
            ("timeout_s", json!(600)),
            ("session", json!("ses_3")),
            ("error", json!("connection reset")),
            ("default", json!(true)),
            ("mfa", json!(true)),
            ("new_device", json!(false)),
            ("expires_at", json!("2025-01-01T00:00:00+01:00")),
            ("from", json!("2024-05-01T00:00:00Z")),
            ("to", json!("2024-05-31T23:59:59.999Z")),
        ];
        let mut checked = 0;
        for (name, fields) in domain_catalogue() {
            let optional: Vec<&String> = fields
                .iter()
                .filter(|(_, required)| !*required)
                .map(|(field, _)| field)
                .collect();
            if optional.is_empty() {
                continue;
            }
            let mut data = example(&name);
            for field in optional {
                let (_, value) = values
                    .iter()
                    .find(|(key, _)| key == field)
                    .unwrap_or_else(|| panic!("no test value for {name} {field}"));
                data[field.as_str()] = value.clone();
            }
            let parsed =
                parse_data(&name, &data).unwrap_or_else(|error| panic!("{name}: {error:?}"));
            assert_eq!(serde_json::to_value(&parsed).unwrap(), data, "{name}");
            checked += 1;
        }
        assert!(checked >= 15, "only {checked} types with optional fields");
    }

    #[test]
    fn every_minimal_example_parses_and_round_trips() {
        for &event_type in EVENT_TYPES {
            let data = example(event_type);
            let parsed = parse_data(event_type, &data)
                .unwrap_or_else(|error| panic!("{event_type}: {error:?}"));
            assert_eq!(parsed.event_type(), event_type);
            assert!(stream_kind(event_type).is_some(), "{event_type}");

            let serialized = serde_json::to_value(&parsed).unwrap();
            assert_eq!(
                serialized, data,
                "{event_type}: the typed view lost something"
            );
            assert_eq!(
                parse_data(event_type, &serialized).unwrap(),
                parsed,
                "{event_type}"
            );
        }
    }

    #[test]
    fn stream_kinds_follow_the_type_prefix() {
        for &event_type in EVENT_TYPES {
            let prefix = event_type.split('.').next().unwrap();
            let expected = match prefix {
                "permission" => "member",
                "auth" => "account",
                "share_link" => "share",
                "evidence" => "audit",
                other => other,
            };
            assert_eq!(stream_kind(event_type), Some(expected), "{event_type}");
        }
        assert_eq!(stream_kind("machine.exploded"), None);
        assert_eq!(minimal_example("machine.exploded"), None);
    }

    #[test]
    fn only_the_audit_of_the_audit_is_reserved() {
        let reserved: Vec<&str> = EVENT_TYPES
            .iter()
            .copied()
            .filter(|t| is_reserved(t))
            .collect();
        assert_eq!(
            reserved,
            [
                "audit.searched",
                "audit.exported",
                "evidence.exported",
                "audit.replayed",
                "audit.signing_key_rotated"
            ]
        );
        assert!(!is_reserved("audit.unknown"));
    }

    #[test]
    fn removing_any_required_field_names_it() {
        for &event_type in EVENT_TYPES {
            let data = example(event_type);
            for key in data.as_object().unwrap().keys() {
                let mut without = data.clone();
                without.as_object_mut().unwrap().remove(key);
                assert_field_error(event_type, without, key, "missing required field");
            }
        }
    }

    #[test]
    fn null_is_not_a_value_for_a_required_field() {
        assert_field_error(
            "machine.registered",
            example_with("machine.registered", json!({"hostname": null})),
            "hostname",
            "expected a string, found null",
        );
    }

    #[test]
    fn null_for_an_optional_field_means_absent() {
        let data = example_with("session.closed", json!({"exit_code": null}));
        assert_eq!(
            parse_data("session.closed", &data).unwrap(),
            parse_data("session.closed", &example("session.closed")).unwrap()
        );
    }

    #[test]
    fn unknown_type_is_reported_as_such() {
        assert_eq!(
            parse_data("machine.exploded", &json!({})),
            Err(DataError::UnknownType("machine.exploded".into()))
        );
        assert_eq!(
            DataError::UnknownType("x.y".into()).to_string(),
            "unknown event type `x.y`"
        );
    }

    #[test]
    fn data_that_is_not_an_object_is_refused_at_the_root() {
        for data in [
            json!(null),
            json!("x"),
            json!(3),
            json!(["Acme", "acme", "team_scale"]),
        ] {
            let (field, message) = field_error("workspace.created", &data);
            assert_eq!(field, "");
            assert!(
                message.starts_with("expected an object, found"),
                "{message}"
            );
        }
        // Empty types too: `{}` would happily read from `[]` otherwise.
        let (field, _) = field_error("workspace.deleted", &json!([]));
        assert_eq!(field, "");
    }

    #[test]
    fn extra_fields_are_ignored_by_empty_types() {
        let parsed = parse_data("auth.logout", &json!({"reason": "idle", "n": 1})).unwrap();
        assert_eq!(parsed, EventData::AuthLoggedOut(AuthLoggedOut {}));
        assert_eq!(serde_json::to_value(&parsed).unwrap(), json!({}));
    }

    #[test]
    fn wrong_enum_values_name_the_field_and_the_allowed_values() {
        const PLANS: &str = "expected one of personal, team_starter, team_scale, enterprise";
        const ROLES: &str = "expected one of owner, admin, member, viewer";
        #[rustfmt::skip]
        let cases = [
            ("workspace.created", "plan", PLANS),
            ("billing.plan_changed", "to", PLANS),
            ("member.invited", "role", ROLES),
            ("member.role_changed", "from", ROLES),
            ("machine.presence_changed", "status", "expected one of online, degraded, starting, offline"),
            ("permission.machine_access_set", "level", "expected one of full, execute, view, none"),
            ("session.opened", "client_kind", "expected one of desktop, cli, browser, bot"),
            ("session.attached", "mode", "expected one of operator, observer"),
            ("schedule.created", "target", "expected one of all, machines"),
            ("schedule.run_triggered", "trigger", "expected one of cron, manual, api"),
            ("schedule.run_finished", "status", "expected one of succeeded, failed, cancelled, timed_out"),
            ("workspace.integration_configured", "kind", "expected one of webhook, slack"),
            ("token.issued", "kind", "expected one of personal, workspace, agent"),
            ("audit.exported", "format", "expected one of ndjson, csv, parquet"),
        ];
        for (event_type, field, message) in cases {
            let data = example_with(event_type, json!({ field: "Bogus" }));
            assert_field_error(event_type, data, field, message);
        }
        let none = example_with("permission.machine_access_set", json!({"level": "none"}));
        let EventData::PermissionMachineAccessSet(access) =
            parse_data("permission.machine_access_set", &none).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(access.level, AccessLevel::NoAccess);
        let numeric_role = example_with("member.joined", json!({"role": 1}));
        assert_field_error(
            "member.joined",
            numeric_role,
            "role",
            "expected a string, found an integer",
        );
    }

    #[test]
    fn signal_must_be_2_9_or_15() {
        for signal in [2, 9, 15] {
            let data = json!({ "signal": signal });
            let parsed = parse_data("session.signal_sent", &data).unwrap();
            assert_eq!(serde_json::to_value(&parsed).unwrap(), data);
        }
        #[rustfmt::skip]
        let cases = [
            (json!(3), "expected one of 2, 9, 15"),
            (json!("9"), "expected an unsigned integer, found a string"),
            (json!(-9), "expected an unsigned integer, found a negative integer"),
        ];
        for (value, message) in cases {
            let data = json!({ "signal": value });
            assert_field_error("session.signal_sent", data, "signal", message);
        }
    }

    #[test]
    fn checked_values_report_what_they_expect() {
        const EMPTY: &str = "must not be empty";
        const EMAIL: &str = "must be an email address: one @ with text on both sides";
        const RFC3339: &str = "must be an RFC 3339 timestamp";
        const LAST4: &str = "must be exactly 4 digits";
        const CURRENCY: &str = "must be a currency code of 3 uppercase letters";
        const SHA256: &str = "must be 64 lowercase hex characters";
        const CRON: &str = "must be a cron expression of 5 or 6 whitespace-separated fields";
        const UNSIGNED: &str = "expected an unsigned integer, found";
        const UPPER_HEX: &str = "7D88E721E241C7694A68F07596182386EB3A31BDA4F8FDFBA489B57A58657F80";
        #[rustfmt::skip]
        let cases = [
            ("machine.registered", json!({"hostname": "  "}), "hostname", EMPTY.to_owned()),
            ("machine.retagged", json!({"added": ["ci", ""]}), "added[1]", EMPTY.to_owned()),
            ("member.invited", json!({"email": "dana"}), "email", EMAIL.to_owned()),
            ("member.joined", json!({"email": "@acme.example"}), "email", EMAIL.to_owned()),
            ("account.email_changed", json!({"to": "a@b@c"}), "to", EMAIL.to_owned()),
            ("member.invited", json!({"expires_at": "tomorrow"}), "expires_at", RFC3339.to_owned()),
            ("member.invited", json!({"expires_at": "2024-05-08"}), "expires_at", RFC3339.to_owned()),
            ("token.issued", json!({"expires_at": "soon"}), "expires_at", RFC3339.to_owned()),
            ("billing.grace_period_entered", json!({"ends_at": 1714521600}), "ends_at",
                "expected a string, found an integer".to_owned()),
            ("billing.payment_method_removed", json!({"last4": "424"}), "last4", LAST4.to_owned()),
            ("billing.payment_method_added", json!({"last4": "42a2"}), "last4", LAST4.to_owned()),
            ("billing.payment_method_added", json!({"last4": 4242}), "last4",
                "expected a string, found an integer".to_owned()),
            ("billing.payment_succeeded", json!({"currency": "eur"}), "currency", CURRENCY.to_owned()),
            ("billing.payment_failed", json!({"currency": "EURO"}), "currency", CURRENCY.to_owned()),
            ("billing.payment_succeeded", json!({"amount_cents": -1}), "amount_cents",
                format!("{UNSIGNED} a negative integer")),
            ("billing.refund_issued", json!({"amount_cents": 12.5}), "amount_cents",
                format!("{UNSIGNED} a floating-point number")),
            ("billing.seats_changed", json!({"to": "25"}), "to", format!("{UNSIGNED} a string")),
            ("session.input_sent", json!({"seq": true}), "seq", format!("{UNSIGNED} a boolean")),
            ("session.input_sent", json!({"sha256": UPPER_HEX}), "sha256", SHA256.to_owned()),
            ("session.input_sent", json!({"sha256": "abc"}), "sha256", SHA256.to_owned()),
            ("billing.quota_threshold_crossed", json!({"threshold_pct": 1001}), "threshold_pct",
                "must be an integer from 0 to 1000".to_owned()),
            ("schedule.created", json!({"cron": "0 3 * *"}), "cron", CRON.to_owned()),
            ("schedule.created", json!({"cron": "0 0 3 * * * 2024"}), "cron", CRON.to_owned()),
            ("schedule.created", json!({"enabled": "yes"}), "enabled",
                "expected a boolean, found a string".to_owned()),
            ("token.issued", json!({"scopes": "events:append"}), "scopes",
                "expected an array, found a string".to_owned()),
        ];
        for (event_type, edits, field, message) in cases {
            assert_field_error(event_type, example_with(event_type, edits), field, &message);
        }
    }

    #[test]
    fn checked_values_accept_their_edge_cases() {
        #[rustfmt::skip]
        let cases = [
            ("billing.quota_threshold_crossed", json!({"threshold_pct": 0})),
            ("billing.quota_threshold_crossed", json!({"threshold_pct": 1000})),
            ("schedule.created", json!({"cron": "0 0 3 * * 1-5"})),
            ("member.invited", json!({"expires_at": "2024-05-08T09:30:00.5+02:00"})),
            ("billing.payment_method_removed", json!({"last4": "0000"})),
            ("machine.retagged", json!({"added": [], "removed": []})),
            ("member.role_changed", json!({"from": "owner", "to": "owner"})),
            ("audit.searched", json!({"query": ""})),
        ];
        for (event_type, edits) in cases {
            let data = example_with(event_type, edits);
            assert!(parse_data(event_type, &data).is_ok(), "{event_type} {data}");
        }
    }

    #[test]
    fn changes_report_nested_paths() {
        assert_field_error(
            "workspace.settings_changed",
            json!({"changes": {"name": {"from": "Acme"}}}),
            "changes.name.to",
            "missing required field",
        );
        assert_field_error(
            "schedule.updated",
            json!({"changes": {"cron": {"to": "1 * * * *"}}}),
            "changes.cron.from",
            "missing required field",
        );
        assert_field_error(
            "permission.rules_changed",
            json!({"changes": {"default_level": ["view", "execute"]}}),
            "changes.default_level",
            "expected an object with from and to, found an array",
        );
        assert_field_error(
            "workspace.settings_changed",
            json!({"changes": {}}),
            "changes",
            "must list at least one changed field",
        );
        assert_field_error(
            "schedule.updated",
            json!({"changes": []}),
            "changes",
            "expected an object, found an array",
        );
    }

    #[test]
    fn changes_keep_any_json_value_including_null() {
        let data =
            json!({"changes": {"description": {"from": null, "to": {"text": "x", "n": [1]}}}});
        let EventData::WorkspaceSettingsChanged(parsed) =
            parse_data("workspace.settings_changed", &data).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(parsed.changes["description"].from, Value::Null);
        assert_eq!(parsed.changes.len(), 1);
        assert_eq!(serde_json::to_value(&parsed).unwrap(), data);
    }

    #[test]
    fn security_policy_changes_only_name_known_policies() {
        let all = json!({"changes": {
            "require_2fa": {"from": false, "to": true},
            "ip_allowlist": {"from": [], "to": ["10.0.0.0/8"]},
            "session_timeout_min": {"from": 60, "to": 15},
            "default_permission_mode": {"from": "view", "to": "execute"},
        }});
        assert!(parse_data("workspace.security_policy_changed", &all).is_ok());
        assert_field_error(
            "workspace.security_policy_changed",
            json!({"changes": {
                "require_2fa": {"from": false, "to": true},
                "theme": {"from": "light", "to": "dark"},
            }}),
            "changes.theme",
            "expected one of require_2fa, ip_allowlist, session_timeout_min, default_permission_mode",
        );
    }

    #[test]
    fn schedule_targeting_machines_must_list_them() {
        let targeted = example_with("schedule.created", json!({"target": "machines"}));
        let message = "must list at least one machine when target is machines";
        assert_field_error("schedule.created", targeted.clone(), "machines", message);
        let mut empty = targeted.clone();
        empty["machines"] = json!([]);
        assert_field_error("schedule.created", empty, "machines", message);
        let mut blank = targeted.clone();
        blank["machines"] = json!(["", "mch_10"]);
        assert_field_error(
            "schedule.created",
            blank,
            "machines[0]",
            "must not be empty",
        );
        let mut listed = targeted;
        listed["machines"] = json!(["mch_9"]);
        assert!(parse_data("schedule.created", &listed).is_ok());
    }

    #[test]
    fn ranges_may_not_end_before_they_start() {
        assert_field_error(
            "billing.invoice_issued",
            example_with(
                "billing.invoice_issued",
                json!({"period_end": "2024-04-30T23:59:59Z"}),
            ),
            "period_end",
            "must not be before the start of the range",
        );
        assert_field_error(
            "evidence.exported",
            example_with("evidence.exported", json!({"to": "2024-04-01T00:00:00Z"})),
            "to",
            "must not be before the start of the range",
        );
        // Compared as instants, not as text: 01:00+02:00 is before 00:00Z.
        assert_field_error(
            "audit.searched",
            example_with(
                "audit.searched",
                json!({"from": "2024-05-01T00:00:00Z", "to": "2024-05-01T01:00:00+02:00"}),
            ),
            "to",
            "must not be before the start of the range",
        );
        let open_ended = example_with("audit.exported", json!({"to": "2024-05-01T00:00:00Z"}));
        assert!(parse_data("audit.exported", &open_ended).is_ok());
    }

    #[test]
    fn timestamps_keep_their_text_and_expose_their_instant() {
        let timestamp = Timestamp::try_from("2024-05-08T11:30:00+02:00").unwrap();
        assert_eq!(timestamp.as_str(), "2024-05-08T11:30:00+02:00");
        assert_eq!(timestamp.instant().unix_timestamp(), 1_715_160_600);
        assert_eq!(
            serde_json::to_value(&timestamp).unwrap(),
            json!("2024-05-08T11:30:00+02:00")
        );
        assert!(
            Timestamp::try_from("2024-05-08T11:30:00").is_err(),
            "an offset is required"
        );
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("\\PC{0,8}", inner, 0..4)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    /// Any key that cannot be a catalogue field: every catalogue field is snake_case ASCII.
    fn extra_key() -> impl Strategy<Value = String> {
        "\\PC{1,16}".prop_filter("must not look like a catalogue field", |key| {
            !key.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
    }

    proptest! {
        #[test]
        fn extra_fields_never_change_the_typed_value(
            index in 0..EVENT_TYPES.len(),
            extras in prop::collection::btree_map(extra_key(), arbitrary_json(), 1..6),
        ) {
            let event_type = EVENT_TYPES[index];
            let data = example(event_type);
            let mut extended = data.clone();
            for (key, value) in extras {
                extended[key.as_str()] = value;
            }
            prop_assert_eq!(parse_data(event_type, &extended), parse_data(event_type, &data));
        }
    }
}
