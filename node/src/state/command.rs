//! Commands proposed to the replicated state, their validation (done by the proposer before
//! proposing, and again by the state machine, which must never trust the log blindly), and the
//! outcomes and errors the state machine answers with.

use serde::{Deserialize, Serialize};

use super::model::{
    Actor, CallbackId, CallbackOutcome, ComplaintId, Fulfilment, OrderId, OrderItem, OrderStatus,
    PaymentForm, PreOrderId, ReservationId, Role, SiteSummary, StatePolicy, TimestampMs,
};
use super::quality::{ChecklistItem, ItemScore, ReviewId, validate_scores};
use super::site_writes::OutboxBatch;

/// Items allowed in one order, pre-order or reservation.
pub const ITEMS_PER_ORDER_MAX: usize = 100;
/// Units allowed on one line.
pub const QUANTITY_MAX: u32 = 10_000;
/// Price allowed for one unit, in minor units (10 million roubles).
pub const UNIT_PRICE_MINOR_MAX: u64 = 1_000_000_000;
/// Characters allowed in short texts (sku, names, pharmacy ids, site ids).
pub const SHORT_TEXT_CHARS_MAX: usize = 200;
/// Characters allowed in long texts (addresses, notes, complaint texts).
pub const LONG_TEXT_CHARS_MAX: usize = 4_000;
/// Site summaries allowed per publication.
pub const SKILLS_PER_SUMMARY_MAX: usize = 64;
/// Callback attempts a policy may allow.
pub const CALLBACK_ATTEMPTS_MAX: u32 = 20;
/// Tokens one `GrantTokens` command may carry (a config's seed, or one operator's add).
pub const TOKENS_PER_COMMAND_MAX: usize = 1_000;
/// Agents one `SeedAgents` command may carry (a site's `[[agents]]`).
pub const AGENTS_PER_COMMAND_MAX: usize = 10_000;
/// Skill names one `SeedAgents` command may carry (the proposing site's catalogue).
pub const SKILLS_PER_SEED_MAX: usize = 1_000;
/// Characters an idempotency key may have (visible ASCII, `!` to `~`).
pub const IDEMPOTENCY_KEY_CHARS_MAX: usize = 128;

/// A command with the context the proposer stamped on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Proposer's wall clock; the only time the state machine ever sees.
    pub at_ms: TimestampMs,
    /// Who asked.
    pub actor: Actor,
    /// Site whose node proposed it.
    pub site: String,
    /// What to do.
    pub command: Command,
}

/// A change to the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Take a new order.
    CreateOrder {
        /// Customer's phone number.
        caller: String,
        /// Lines.
        items: Vec<OrderItem>,
        /// Pickup or delivery.
        fulfilment: Fulfilment,
        /// Payment form.
        payment: PaymentForm,
        /// Note for the courier or pharmacy.
        delivery_note: String,
    },
    /// Replace an order's items, fulfilment or note (only before it is assembled).
    UpdateOrder {
        /// The order.
        order: OrderId,
        /// New lines, if changed.
        items: Option<Vec<OrderItem>>,
        /// New fulfilment, if changed.
        fulfilment: Option<Fulfilment>,
        /// New payment form, if changed.
        payment: Option<PaymentForm>,
        /// New note, if changed.
        delivery_note: Option<String>,
    },
    /// Move an order to another status (allowed transitions only).
    ChangeOrderStatus {
        /// The order.
        order: OrderId,
        /// Target status.
        status: OrderStatus,
    },
    /// Put a customer on the defectura list for an out-of-stock item.
    CreatePreOrder {
        /// Customer's phone number.
        caller: String,
        /// Missing item.
        sku: String,
        /// Its name.
        name: String,
        /// Units wanted.
        quantity: u32,
        /// Pharmacy.
        pharmacy: String,
    },
    /// Cancel a pre-order.
    CancelPreOrder {
        /// The pre-order.
        pre_order: PreOrderId,
    },
    /// An item arrived: every waiting pre-order for it gets a callback.
    MarkInStock {
        /// The item.
        sku: String,
        /// Only pre-orders at this pharmacy; all pharmacies when absent.
        pharmacy: Option<String>,
    },
    /// Hold items at a pharmacy until an expiry.
    CreateReservation {
        /// Customer's phone number.
        caller: String,
        /// Pharmacy.
        pharmacy: String,
        /// Items.
        items: Vec<OrderItem>,
        /// When the hold ends.
        expires_at_ms: TimestampMs,
    },
    /// Mark a reservation collected.
    CollectReservation {
        /// The reservation.
        reservation: ReservationId,
    },
    /// Cancel a reservation.
    CancelReservation {
        /// The reservation.
        reservation: ReservationId,
    },
    /// File a complaint (escalated when the caller complained recently).
    FileComplaint {
        /// Customer's phone number.
        caller: String,
        /// Related order.
        order: Option<OrderId>,
        /// What the customer said.
        text: String,
    },
    /// Resolve a complaint.
    ResolveComplaint {
        /// The complaint.
        complaint: ComplaintId,
        /// How.
        resolution: String,
    },
    /// A caller abandoned: create a callback unless one is already open for the number.
    CreateAbandonedCallback {
        /// Number to dial.
        caller: String,
        /// Queue the caller waited in.
        skill: String,
        /// Caller's original queue ordering time.
        ordering_time_ms: TimestampMs,
    },
    /// A site takes a due callback into its queue.
    ClaimCallback {
        /// The callback.
        callback: CallbackId,
    },
    /// A site gives a claimed callback back without an attempt (shutdown, no agents).
    ReleaseCallback {
        /// The callback.
        callback: CallbackId,
    },
    /// Record the outcome of a dial attempt.
    RecordCallbackAttempt {
        /// The callback.
        callback: CallbackId,
        /// What happened.
        outcome: CallbackOutcome,
    },
    /// Publish a site's availability summary for overflow decisions.
    PublishSiteSummary(SiteSummary),
    /// Replace the replicated policy.
    SetPolicy(StatePolicy),
    /// The number phoned in: its waiting abandoned-call callback is cancelled (the caller is
    /// being served anyway). Appended last: the log encodes variants by position.
    CallerCalledIn {
        /// The caller's number (normalized).
        caller: String,
    },
    /// An operator drains a site (no new contacts, no callback claims, its claims released)
    /// or undrains it. Appended: the log encodes variants by position.
    SetSiteDrained {
        /// The site id.
        site: String,
        /// Drained (true) or serving again (false).
        drained: bool,
    },
    /// Tokens valid at every site. `seed`: a node's configured tokens, merged — a hash the
    /// cluster already knows (active or revoked) is left as it is; otherwise (an operator's
    /// add) the grant replaces what the cluster had for the hash. Appended.
    GrantTokens {
        /// The tokens (hashes only).
        tokens: Vec<TokenGrant>,
        /// Merge as a configuration seed.
        seed: bool,
    },
    /// Revokes a token at every site (kept as revoked, so no seed brings it back). Appended.
    RevokeToken {
        /// The token's SHA-256.
        sha256: [u8; 32],
    },
    /// A site's own `[callbacks]`/`[orders]` policy, kept per site. Appended.
    SetSitePolicy {
        /// The site id.
        site: String,
        /// Its policy.
        policy: StatePolicy,
    },
    /// A create made at most once per (principal, `key`): the first time it is applied and its
    /// result remembered; a retry with the same key and the same command gets that first
    /// result (`Outcome::Replayed`), the same key with another command is refused
    /// (`ApplyError::IdempotencyKeyReused`). See `machine::idempotency`.
    ///
    /// A wrapper rather than a key field on each create: the creates keep their layout (so
    /// old log entries still decode and no format version changes), and the rule is applied
    /// in one place for every create, present and future. Appended last: the log encodes
    /// variants by position.
    Idempotent {
        /// The client's `Idempotency-Key` (1–128 visible ASCII characters).
        key: String,
        /// The create it guards (see [`Command::takes_idempotency_key`]).
        command: Box<Command>,
    },
    /// A batch of one site's durable outbox (abandoned-call callbacks, attempt outcomes, ...):
    /// applied entry by entry, each once (see [`super::site_writes`]).
    Outbox(OutboxBatch),
    /// The target site claims a contact its owner released for overflow: the first claim
    /// wins, within the hop cap (see `machine::ledger`). Proposed by `to`.
    ClaimOverflow {
        /// The contact's id at `from`.
        contact: u64,
        /// The site that released it.
        from: String,
        /// The claiming site (the proposer).
        to: String,
    },
    /// The proposing site adopts a lost site's open contacts (callbacks for its callers) and
    /// releases the callbacks it had claimed (see `machine::adoption`).
    AdoptSite {
        /// The lost site.
        site: String,
    },
    /// The proposing site, restarted, recovers its own contacts that were open when it
    /// stopped (last updated before `before_ms`): callbacks for their callers.
    RecoverOwnContacts {
        /// The site's start (its clock).
        before_ms: TimestampMs,
    },
    /// A supervisor scores a finished contact of the ledger on a checklist (see
    /// `super::quality` and `machine::quality`): the contact must have ended after an agent
    /// answered it; a second review by the same reviewer replaces the first. Appended last:
    /// the log encodes variants by position.
    ReviewContact {
        /// The contact's id at its site (the ledger's key).
        contact: u64,
        /// The checklist it is scored on (the proposing site's configuration).
        checklist: Vec<ChecklistItem>,
        /// Points per checklist item, every item once.
        scores: Vec<ItemScore>,
        /// The supervisor's comment (may be empty).
        comment: String,
    },
    /// A site's configured agents (`[[agents]]`), merged into the cluster-wide roster so an
    /// agent may log in at any site that has one of its skills (see `machine::agents`).
    /// Idempotent; each agent is checked on its own (login syntax, skills among `skills`,
    /// id not another login's, a login another site defined differently is refused — never
    /// overwritten) and the refusals come back in [`Outcome::AgentsSeeded`]. Appended last.
    SeedAgents {
        /// The proposing site's skill names: the skills its agents may hold.
        skills: Vec<String>,
        /// The agents.
        agents: Vec<AgentDefinition>,
    },
}

/// An agent as a site's configuration defines it, replicated to every site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentDefinition {
    /// Login, also the name of the agent's token.
    pub login: String,
    /// Numeric id, unique in the cluster.
    pub id: u32,
    /// Skill names.
    pub skills: Vec<String>,
    /// Last day (ISO date, inclusive) of the pharma certificate that line-2 skills need.
    pub certificate_valid_until: Option<String>,
    /// Chats the agent can hold at once.
    pub chat_slots: u8,
}

/// A token as the replicated state holds it: its hash, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenGrant {
    /// SHA-256 of the token.
    pub sha256: [u8; 32],
    /// Principal name (an agent's login for agent tokens).
    pub name: String,
    /// Role.
    pub role: Role,
}

impl Command {
    /// Short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::CreateOrder { .. } => "create_order",
            Command::UpdateOrder { .. } => "update_order",
            Command::ChangeOrderStatus { .. } => "change_order_status",
            Command::CreatePreOrder { .. } => "create_pre_order",
            Command::CancelPreOrder { .. } => "cancel_pre_order",
            Command::MarkInStock { .. } => "mark_in_stock",
            Command::CreateReservation { .. } => "create_reservation",
            Command::CollectReservation { .. } => "collect_reservation",
            Command::CancelReservation { .. } => "cancel_reservation",
            Command::FileComplaint { .. } => "file_complaint",
            Command::ResolveComplaint { .. } => "resolve_complaint",
            Command::CreateAbandonedCallback { .. } => "create_abandoned_callback",
            Command::ClaimCallback { .. } => "claim_callback",
            Command::ReleaseCallback { .. } => "release_callback",
            Command::RecordCallbackAttempt { .. } => "record_callback_attempt",
            Command::PublishSiteSummary(_) => "publish_site_summary",
            Command::SetPolicy(_) => "set_policy",
            Command::CallerCalledIn { .. } => "caller_called_in",
            Command::SetSiteDrained { .. } => "set_site_drained",
            Command::GrantTokens { .. } => "grant_tokens",
            Command::RevokeToken { .. } => "revoke_token",
            Command::SetSitePolicy { .. } => "set_site_policy",
            Command::Idempotent { command, .. } => command.kind(),
            Command::Outbox(_) => "outbox",
            Command::ClaimOverflow { .. } => "claim_overflow",
            Command::AdoptSite { .. } => "adopt_site",
            Command::RecoverOwnContacts { .. } => "recover_own_contacts",
            Command::ReviewContact { .. } => "review_contact",
            Command::SeedAgents { .. } => "seed_agents",
        }
    }

    /// Whether the command may be wrapped in [`Command::Idempotent`]: the creates a client
    /// makes (orders, pre-orders, reservations, complaints, callback outcomes).
    pub fn takes_idempotency_key(&self) -> bool {
        matches!(
            self,
            Command::CreateOrder { .. }
                | Command::CreatePreOrder { .. }
                | Command::CreateReservation { .. }
                | Command::FileComplaint { .. }
                | Command::RecordCallbackAttempt { .. }
                | Command::ReviewContact { .. }
        )
    }

    /// Checks everything that can be checked without the state: lengths, ranges, formats.
    pub fn validate(&self) -> Result<(), InvalidCommand> {
        match self {
            Command::CreateOrder {
                caller,
                items,
                fulfilment,
                delivery_note,
                ..
            } => {
                validate_phone("caller", caller)?;
                validate_items(items)?;
                validate_fulfilment(fulfilment)?;
                validate_text("delivery_note", delivery_note, LONG_TEXT_CHARS_MAX, true)
            }
            Command::UpdateOrder {
                items,
                fulfilment,
                delivery_note,
                ..
            } => {
                if let Some(items) = items {
                    validate_items(items)?;
                }
                if let Some(fulfilment) = fulfilment {
                    validate_fulfilment(fulfilment)?;
                }
                if let Some(note) = delivery_note {
                    validate_text("delivery_note", note, LONG_TEXT_CHARS_MAX, true)?;
                }
                Ok(())
            }
            Command::ChangeOrderStatus { .. } => Ok(()),
            Command::CreatePreOrder {
                caller,
                sku,
                name,
                quantity,
                pharmacy,
            } => {
                validate_phone("caller", caller)?;
                validate_text("sku", sku, SHORT_TEXT_CHARS_MAX, false)?;
                validate_text("name", name, SHORT_TEXT_CHARS_MAX, false)?;
                validate_text("pharmacy", pharmacy, SHORT_TEXT_CHARS_MAX, false)?;
                validate_quantity("quantity", *quantity)
            }
            Command::CancelPreOrder { .. } => Ok(()),
            Command::MarkInStock { sku, pharmacy } => {
                validate_text("sku", sku, SHORT_TEXT_CHARS_MAX, false)?;
                if let Some(pharmacy) = pharmacy {
                    validate_text("pharmacy", pharmacy, SHORT_TEXT_CHARS_MAX, false)?;
                }
                Ok(())
            }
            Command::CreateReservation {
                caller,
                pharmacy,
                items,
                ..
            } => {
                validate_phone("caller", caller)?;
                validate_text("pharmacy", pharmacy, SHORT_TEXT_CHARS_MAX, false)?;
                validate_items(items)
            }
            Command::CollectReservation { .. } | Command::CancelReservation { .. } => Ok(()),
            Command::FileComplaint { caller, text, .. } => {
                validate_phone("caller", caller)?;
                validate_text("text", text, LONG_TEXT_CHARS_MAX, false)
            }
            Command::ResolveComplaint { resolution, .. } => {
                validate_text("resolution", resolution, LONG_TEXT_CHARS_MAX, false)
            }
            Command::CreateAbandonedCallback { caller, skill, .. } => {
                validate_phone("caller", caller)?;
                validate_text("skill", skill, SHORT_TEXT_CHARS_MAX, false)
            }
            Command::CallerCalledIn { caller } => validate_phone("caller", caller),
            Command::Outbox(batch) => batch.validate(),
            Command::ClaimOverflow { contact, from, to } => {
                if *contact == 0 {
                    return Err(InvalidCommand::new("contact", "must be positive"));
                }
                validate_text("from", from, SHORT_TEXT_CHARS_MAX, false)?;
                validate_text("to", to, SHORT_TEXT_CHARS_MAX, false)
            }
            Command::AdoptSite { site } => validate_text("site", site, SHORT_TEXT_CHARS_MAX, false),
            Command::RecoverOwnContacts { .. } => Ok(()),
            Command::ReviewContact {
                contact,
                checklist,
                scores,
                comment,
            } => {
                if *contact == 0 {
                    return Err(InvalidCommand::new("contact", "must be positive"));
                }
                validate_scores(checklist, scores, comment)
            }
            // Each agent is checked on apply, alone: one bad entry does not refuse the rest.
            Command::SeedAgents { skills, agents } => {
                if agents.is_empty() || agents.len() > AGENTS_PER_COMMAND_MAX {
                    return Err(InvalidCommand::new(
                        "agents",
                        &format!("must hold 1 to {AGENTS_PER_COMMAND_MAX} agents"),
                    ));
                }
                if skills.len() > SKILLS_PER_SEED_MAX {
                    return Err(InvalidCommand::new("skills", "too many skills"));
                }
                for skill in skills {
                    validate_text("skills.skill", skill, SHORT_TEXT_CHARS_MAX, false)?;
                }
                Ok(())
            }
            Command::ClaimCallback { .. }
            | Command::ReleaseCallback { .. }
            | Command::RecordCallbackAttempt { .. } => Ok(()),
            Command::PublishSiteSummary(summary) => {
                validate_text("site", &summary.site, SHORT_TEXT_CHARS_MAX, false)?;
                if summary.skills.len() > SKILLS_PER_SUMMARY_MAX {
                    return Err(InvalidCommand::new("skills", "too many skills"));
                }
                for skill in &summary.skills {
                    validate_text("skills.skill", &skill.skill, SHORT_TEXT_CHARS_MAX, false)?;
                }
                Ok(())
            }
            Command::SetSiteDrained { site, .. } => {
                validate_text("site", site, SHORT_TEXT_CHARS_MAX, false)
            }
            Command::GrantTokens { tokens, .. } => {
                if tokens.is_empty() || tokens.len() > TOKENS_PER_COMMAND_MAX {
                    return Err(InvalidCommand::new(
                        "tokens",
                        &format!("must hold 1 to {TOKENS_PER_COMMAND_MAX} tokens"),
                    ));
                }
                for token in tokens {
                    validate_text("name", &token.name, SHORT_TEXT_CHARS_MAX, false)?;
                }
                Ok(())
            }
            Command::RevokeToken { .. } => Ok(()),
            Command::SetSitePolicy { site, policy } => {
                validate_text("site", site, SHORT_TEXT_CHARS_MAX, false)?;
                validate_policy(policy)
            }
            Command::SetPolicy(policy) => validate_policy(policy),
            Command::Idempotent { key, command } => {
                validate_idempotency_key(key)?;
                if !command.takes_idempotency_key() {
                    return Err(InvalidCommand::new(
                        "command",
                        "only creates take an idempotency key",
                    ));
                }
                command.validate()
            }
        }
    }
}

/// The bounds every replicated policy keeps.
fn validate_policy(policy: &StatePolicy) -> Result<(), InvalidCommand> {
    if policy.callback_attempts_max == 0 || policy.callback_attempts_max > CALLBACK_ATTEMPTS_MAX {
        return Err(InvalidCommand::new(
            "callback_attempts_max",
            "must be between 1 and 20",
        ));
    }
    if policy.order_ready_repeat_interval_ms == 0 {
        return Err(InvalidCommand::new(
            "order_ready_repeat_interval_ms",
            "must be positive",
        ));
    }
    Ok(())
}

/// Checks an idempotency key: 1 to [`IDEMPOTENCY_KEY_CHARS_MAX`] visible ASCII characters
/// (`!` to `~`; no spaces, no control characters).
pub fn validate_idempotency_key(key: &str) -> Result<(), InvalidCommand> {
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_CHARS_MAX {
        return Err(InvalidCommand::new(
            "Idempotency-Key",
            &format!("must have 1 to {IDEMPOTENCY_KEY_CHARS_MAX} characters"),
        ));
    }
    if !key.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(InvalidCommand::new(
            "Idempotency-Key",
            "must be visible ASCII characters only (no spaces)",
        ));
    }
    Ok(())
}

/// A command that fails validation: which field and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("invalid `{field}`: {reason}")]
pub struct InvalidCommand {
    /// The offending field, as named in the API.
    pub field: String,
    /// Why it is invalid.
    pub reason: String,
}

impl InvalidCommand {
    /// An error for `field`.
    pub fn new(field: &str, reason: &str) -> Self {
        Self {
            field: field.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Normalizes a phone number: keeps a leading `+` and the digits, drops spaces, dashes and
/// brackets. Fails when what is left is not 5–16 digits.
pub fn normalize_phone(raw: &str) -> Result<String, InvalidCommand> {
    let trimmed = raw.trim();
    let mut out = String::with_capacity(trimmed.len());
    for (position, character) in trimmed.chars().enumerate() {
        match character {
            '+' if position == 0 => out.push('+'),
            '0'..='9' => out.push(character),
            ' ' | '-' | '(' | ')' => {}
            _ => {
                return Err(InvalidCommand::new(
                    "caller",
                    "phone number has a character other than digits, +, space, -, ( )",
                ));
            }
        }
    }
    let digits = out.chars().filter(char::is_ascii_digit).count();
    if !(5..=16).contains(&digits) {
        return Err(InvalidCommand::new(
            "caller",
            "phone number must have 5 to 16 digits",
        ));
    }
    Ok(out)
}

pub(super) fn validate_phone(field: &str, value: &str) -> Result<(), InvalidCommand> {
    let normalized =
        normalize_phone(value).map_err(|error| InvalidCommand::new(field, &error.reason))?;
    if normalized != value {
        return Err(InvalidCommand::new(field, "phone number is not normalized"));
    }
    Ok(())
}

pub(super) fn validate_text(
    field: &str,
    value: &str,
    chars_max: usize,
    may_be_empty: bool,
) -> Result<(), InvalidCommand> {
    if !may_be_empty && value.trim().is_empty() {
        return Err(InvalidCommand::new(field, "must not be empty"));
    }
    if value.chars().count() > chars_max {
        return Err(InvalidCommand::new(
            field,
            &format!("longer than {chars_max} characters"),
        ));
    }
    if value
        .chars()
        .any(|character| character.is_control() && character != '\n')
    {
        return Err(InvalidCommand::new(field, "contains control characters"));
    }
    Ok(())
}

fn validate_quantity(field: &str, quantity: u32) -> Result<(), InvalidCommand> {
    if quantity == 0 || quantity > QUANTITY_MAX {
        return Err(InvalidCommand::new(
            field,
            &format!("must be between 1 and {QUANTITY_MAX}"),
        ));
    }
    Ok(())
}

fn validate_items(items: &[OrderItem]) -> Result<(), InvalidCommand> {
    if items.is_empty() {
        return Err(InvalidCommand::new(
            "items",
            "at least one item is required",
        ));
    }
    if items.len() > ITEMS_PER_ORDER_MAX {
        return Err(InvalidCommand::new(
            "items",
            &format!("more than {ITEMS_PER_ORDER_MAX} items"),
        ));
    }
    for item in items {
        validate_text("items.sku", &item.sku, SHORT_TEXT_CHARS_MAX, false)?;
        validate_text("items.name", &item.name, SHORT_TEXT_CHARS_MAX, false)?;
        validate_quantity("items.quantity", item.quantity)?;
        if item.unit_price_minor > UNIT_PRICE_MINOR_MAX {
            return Err(InvalidCommand::new(
                "items.unit_price_minor",
                "price too large",
            ));
        }
    }
    Ok(())
}

fn validate_fulfilment(fulfilment: &Fulfilment) -> Result<(), InvalidCommand> {
    match fulfilment {
        Fulfilment::Pickup { pharmacy } => {
            validate_text("fulfilment.pharmacy", pharmacy, SHORT_TEXT_CHARS_MAX, false)
        }
        Fulfilment::Delivery { address } => {
            validate_text("fulfilment.address", address, LONG_TEXT_CHARS_MAX, false)
        }
    }
}

/// What a successfully applied command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// An order was created.
    OrderCreated(OrderId),
    /// A pre-order was created.
    PreOrderCreated(PreOrderId),
    /// A reservation was created.
    ReservationCreated(ReservationId),
    /// A complaint was filed; `escalated` when it repeats an earlier one.
    ComplaintFiled {
        /// Its id.
        complaint: ComplaintId,
        /// Whether it was escalated as a repeat.
        escalated: bool,
    },
    /// Callbacks were created (possibly none, e.g. an abandoned caller already has one).
    CallbacksCreated(Vec<CallbackId>),
    /// The change was applied; nothing new was created.
    Done,
    /// A retried idempotent create: this is the first request's result; nothing changed now.
    /// Appended last (responses encode variants by position).
    Replayed(Box<Response>),
    /// An outbox batch was applied: entries applied, skipped as already applied, and refused
    /// by the state (a refusal is final: the entry is consumed, the refusal logged).
    OutboxApplied {
        /// Entries applied.
        applied: u32,
        /// Entries skipped: applied before (a retried batch).
        duplicates: u32,
        /// Entries the state refused (e.g. an attempt on a callback that closed meanwhile).
        refused: u32,
    },
    /// An overflow claim committed: the claimer owns the contact now.
    OverflowClaimed {
        /// Moves between sites, this one included (the ledger's count).
        hops: u8,
        /// When the caller first arrived in the chain.
        arrived_at_ms: TimestampMs,
        /// Where the caller first arrived.
        arrived_at_site: String,
    },
    /// A lost site's contacts were adopted.
    SiteAdopted {
        /// Open contacts adopted.
        contacts: u32,
        /// Callbacks created for their callers.
        callbacks: Vec<CallbackId>,
        /// Callbacks of the lost site released.
        released: u32,
    },
    /// A quality review was recorded. Appended last (responses encode variants by position).
    ReviewRecorded {
        /// Its id (a replacement keeps the first review's id).
        review: ReviewId,
        /// Whether it replaced the reviewer's earlier review of the contact.
        replaced: bool,
    },
    /// A site's agents were merged into the cluster roster. Appended last.
    AgentsSeeded {
        /// Agents added or changed by the site that defined them.
        added: u32,
        /// Agents the roster already held exactly so.
        unchanged: u32,
        /// Agents refused: (login, reason).
        refused: Vec<(String, String)>,
    },
}

/// Why the state machine refused a command. The state is unchanged when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApplyError {
    /// The command failed validation.
    #[error("{0}")]
    Invalid(InvalidCommand),
    /// The referenced record does not exist.
    #[error("{kind} {id} not found")]
    NotFound {
        /// Record kind ("order", "callback", ...).
        kind: String,
        /// Its id.
        id: u64,
    },
    /// The record is in a state that does not allow the change.
    #[error("{0}")]
    Conflict(String),
    /// The log entry could not be decoded (written by a newer version, or corrupted).
    #[error("undecodable command: {0}")]
    Undecodable(String),
    /// The idempotency key was used before for another request (a different body). Appended
    /// last (responses encode variants by position).
    #[error("idempotency key `{key}` was already used for a different request")]
    IdempotencyKeyReused {
        /// The key.
        key: String,
    },
}

impl ApplyError {
    /// A not-found error.
    pub fn not_found(kind: &str, id: u64) -> Self {
        ApplyError::NotFound {
            kind: kind.to_string(),
            id,
        }
    }
}

/// The response the proposer gets back through Raft.
pub type Response = Result<Outcome, ApplyError>;
