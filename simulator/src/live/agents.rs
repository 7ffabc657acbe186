//! The agent players: one thread per agent of the staffing plan. Each logs in and out by its
//! shifts, follows its agent stream, picks up offers after the ring time, talks for the
//! caller's planned handle time, takes the order, pre-order or complaint the topic calls for
//! (and reads an order back at another site), transfers to line 2 when planned, ends the
//! contact and wraps up.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

use super::client::About;
use super::clock::wall_us;
use super::history::Request;
use super::plan::{PlannedAgent, index_of_caller};
use super::world::{RecordKind, World, fate};
use super::ws::{self, Read};

/// An agent's stream is read at least this often (to act on time and notice the end).
const READ_TICK: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Login,
    Logout,
    Accept(Leg),
    TalkEnd(Leg),
    WrapUp { contact: u64, outcome: Outcome },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    None,
    Reached,
    NoAnswer,
}

/// One contact at this agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Leg {
    contact: u64,
    index: usize,
    /// The line-2 leg of a transferred contact.
    second: bool,
    /// An outbound callback.
    callback: bool,
}

/// Starts one thread per agent; they stop when the world's stop flag is set.
pub fn start(world: &Arc<World>) -> Result<Vec<JoinHandle<()>>, String> {
    let mut threads = Vec::new();
    for position in 0..world.plan.agents.len() {
        let agent = &world.plan.agents[position];
        let token = world
            .tokens
            .agents
            .get(&agent.login)
            .cloned()
            .ok_or_else(|| format!("tokens file has no token for agent `{}`", agent.login))?;
        let base = &world.api.sites[agent.site];
        let stream = ws::open(
            base,
            &format!("/api/v1/agents/{}/stream", agent.login),
            &token,
        )?;
        let world = Arc::clone(world);
        let thread = std::thread::Builder::new()
            .name(format!("agent-{}", agent.login))
            .stack_size(256 * 1024)
            .spawn(move || {
                let agent = &world.plan.agents[position];
                Player::new(&world, agent, token, stream).run();
            })
            .map_err(|error| format!("starting agent threads: {error}"))?;
        threads.push(thread);
    }
    Ok(threads)
}

struct Player<'a> {
    world: &'a World,
    /// The same world, for the threads that retry creates.
    shared: Arc<World>,
    agent: &'a PlannedAgent,
    token: String,
    stream: ws::Stream,
    agenda: BinaryHeap<Reverse<(u64, u64, Action)>>,
    sequence: u64,
    /// Within a shift and logged in.
    logged_in: bool,
}

impl<'a> Player<'a> {
    fn new(
        world: &'a Arc<World>,
        agent: &'a PlannedAgent,
        token: String,
        stream: ws::Stream,
    ) -> Self {
        let mut player = Player {
            world,
            shared: Arc::clone(world),
            agent,
            token,
            stream,
            agenda: BinaryHeap::new(),
            sequence: 0,
            logged_in: false,
        };
        for (start, end) in &agent.shifts {
            player.at(*start, Action::Login);
            player.at(*end, Action::Logout);
        }
        player
    }

    fn at(&mut self, day_ms: u64, action: Action) {
        self.sequence += 1;
        self.agenda.push(Reverse((day_ms, self.sequence, action)));
    }

    fn run(mut self) {
        while !self.world.stopping() {
            let now = self.world.clock.day_now_ms();
            if let Some(Reverse((at, _, action))) = self.agenda.peek().copied()
                && at <= now
            {
                self.agenda.pop();
                self.act(now, action);
                continue;
            }
            let wait = self.agenda.peek().map_or(READ_TICK, |Reverse((at, _, _))| {
                self.world
                    .clock
                    .wall_duration(at.saturating_sub(now))
                    .min(READ_TICK)
            });
            match self.stream.read(wait) {
                Read::Message(message) if message["type"] == "offer" => self.offered(&message),
                // A missed offer leaves the agent not ready: a drill agent gets ready again.
                Read::Message(message)
                    if message["type"] == "state"
                        && message["state"] == "not_ready"
                        && self.logged_in =>
                {
                    let ready = json!({"state": "ready"});
                    self.call("ready", "POST", "/state", Some(&ready), About::default());
                }
                Read::Message(_) | Read::Idle => {}
                Read::Closed(reason) => {
                    tracing::warn!(agent = %self.agent.login, %reason, "agent stream closed; reopening");
                    if !self.reconnect() {
                        return;
                    }
                }
            }
        }
    }

    /// Reopens the stream after the site went away; a restarted site has forgotten who was
    /// logged in, so an agent within its shift logs in again. False when the run stops first.
    fn reconnect(&mut self) -> bool {
        let world = self.world;
        let base = &world.api.sites[self.agent.site];
        let path = format!("/api/v1/agents/{}/stream", self.agent.login);
        let Some(stream) = ws::reopen(base, &path, &self.token, &|| world.stopping()) else {
            return false;
        };
        self.stream = stream;
        if self.logged_in {
            let about = About::default();
            if self.call("login", "POST", "/login", None, about) {
                let ready = json!({"state": "ready"});
                self.call("ready", "POST", "/state", Some(&ready), about);
            }
        }
        true
    }

    fn call(
        &self,
        class: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
        about: About,
    ) -> bool {
        let path = format!("/api/v1/agents/{}{path}", self.agent.login);
        let world = self.world;
        world
            .api
            .call(
                &self.agent.login,
                self.agent.site,
                class,
                method,
                &path,
                &self.token,
                body,
                about,
            )
            .ok()
    }

    fn offered(&mut self, message: &Value) {
        let view = &message["contact"];
        let (Some(contact), Some(index)) = (
            view["id"].as_u64(),
            view["caller"].as_str().and_then(index_of_caller),
        ) else {
            return;
        };
        self.record_offer_latency(message, contact, index);
        let leg = Leg {
            contact,
            index,
            second: !view["transferred_from"].is_null(),
            callback: view["direction"] == "outbound_callback",
        };
        let now = self.world.clock.day_now_ms();
        self.at(now + self.world.plan.ring_ms, Action::Accept(leg));
    }

    /// The offer's routing time is its deadline less the offer timeout; the latency is how
    /// much later, in wall time, the agent saw it.
    fn record_offer_latency(&self, message: &Value, contact: u64, index: usize) {
        let Some(deadline) = message["timeout_at_ms"].as_u64() else {
            return;
        };
        let clock = &self.world.clock;
        let offered_routing = deadline.saturating_sub(self.world.offer_timeout_ms);
        let offered_wall_us =
            clock.wall_of_day(offered_routing.saturating_sub(clock.midnight_ms)) * 1_000;
        let history = self.world.api.history();
        history.record(Request {
            seq: history.next_seq(),
            actor: self.agent.login.clone(),
            site: self.agent.site,
            class: "offer_seen".to_string(),
            method: "WS".to_string(),
            path: format!("/api/v1/agents/{}/stream", self.agent.login),
            start_us: offered_wall_us,
            end_us: wall_us().max(offered_wall_us),
            status: 200,
            plan: Some(index),
            contact: Some(contact),
            body: Value::Null,
            idempotency_key: None,
            retry: 0,
        });
    }

    fn act(&mut self, now: u64, action: Action) {
        match action {
            Action::Login => {
                let about = About::default();
                if self.call("login", "POST", "/login", None, about) {
                    self.logged_in = true;
                    let ready = json!({"state": "ready"});
                    self.call("ready", "POST", "/state", Some(&ready), about);
                }
            }
            Action::Logout => {
                self.logged_in = false;
                self.call("logout", "POST", "/logout", None, About::default());
            }
            Action::Accept(leg) => self.accept(now, leg),
            Action::TalkEnd(leg) => self.talk_end(now, leg),
            Action::WrapUp { contact, outcome } => {
                let mut body = json!({"code": "drill"});
                match outcome {
                    Outcome::Reached => body["callback_outcome"] = json!("reached"),
                    Outcome::NoAnswer => body["callback_outcome"] = json!("no_answer"),
                    Outcome::None => {}
                }
                let about = About {
                    plan: None,
                    contact: Some(contact),
                };
                self.call(
                    "wrap_up",
                    "POST",
                    &format!("/contacts/{contact}/wrap-up"),
                    Some(&body),
                    about,
                );
            }
        }
    }

    fn accept(&mut self, now: u64, leg: Leg) {
        let world = self.world;
        let first = !leg.second && !leg.callback;
        // The caller may have hung up while it rang: then there is nothing to pick up.
        if first && !world.settle(leg.index, fate::WAITING, fate::ANSWERED) {
            return;
        }
        let about = About {
            plan: Some(leg.index),
            contact: Some(leg.contact),
        };
        let path = format!("/contacts/{}/accept", leg.contact);
        if !self.call("accept", "POST", &path, None, about) {
            if first {
                world.settle(leg.index, fate::ANSWERED, fate::WAITING);
            }
            return;
        }
        if first {
            let path = format!("/api/v1/contacts/{}/answered", leg.contact);
            let body = json!({"agent": self.agent.login});
            world.api.call(
                "gateway",
                self.agent.site,
                "answered",
                "POST",
                &path,
                &world.tokens.gateway,
                Some(&body),
                about,
            );
        }
        let Some(contact) = world.plan.contacts.get(leg.index) else {
            return;
        };
        let talk_ms = if leg.second {
            contact.transfer_handle_ms.unwrap_or(contact.handle_ms)
        } else if leg.callback && !contact.callback_reached {
            0
        } else {
            contact.handle_ms
        };
        self.at(now + talk_ms, Action::TalkEnd(leg));
    }

    fn talk_end(&mut self, now: u64, leg: Leg) {
        let world = self.world;
        let about = About {
            plan: Some(leg.index),
            contact: Some(leg.contact),
        };
        let Some(contact) = world.plan.contacts.get(leg.index) else {
            return;
        };
        if !leg.second && !leg.callback {
            self.take_record(leg, world.topics[contact.topic].record);
            if let (Some(_), Some(skill)) = (contact.transfer_handle_ms, &world.transfer_skill) {
                let body = json!({"skill": skill});
                let path = format!("/contacts/{}/transfer", leg.contact);
                if self.call("transfer", "POST", &path, Some(&body), about) {
                    // The agent's leg ends with the transfer: wrap-up follows.
                    let wrap_up = Action::WrapUp {
                        contact: leg.contact,
                        outcome: Outcome::None,
                    };
                    self.at(now + world.plan.wrap_up_ms, wrap_up);
                    return;
                }
            }
        }
        self.call(
            "end",
            "POST",
            &format!("/contacts/{}/end", leg.contact),
            None,
            about,
        );
        let outcome = match (leg.callback, contact.callback_reached) {
            (false, _) => Outcome::None,
            (true, true) => Outcome::Reached,
            (true, false) => Outcome::NoAnswer,
        };
        self.at(
            now + world.plan.wrap_up_ms,
            Action::WrapUp {
                contact: leg.contact,
                outcome,
            },
        );
    }

    /// Takes the order, pre-order or complaint of the contact's topic; reads an order back at
    /// the next site (a read that begins after the write was acknowledged must see it).
    fn take_record(&self, leg: Leg, kind: Option<RecordKind>) {
        let world = self.world;
        let caller = super::plan::caller_of(leg.index);
        let about = About {
            plan: Some(leg.index),
            contact: Some(leg.contact),
        };
        let (class, path, body) = match kind {
            None => return,
            Some(RecordKind::Order) => (
                "order",
                "/api/v1/orders",
                json!({
                    "caller": caller,
                    "items": [{"sku": "NUR-200", "name": "Nurofen 200 mg", "quantity": 1, "unit_price_minor": 25050}],
                    "fulfilment": {"pickup": {"pharmacy": "apteka-7"}},
                    "payment": "card",
                }),
            ),
            Some(RecordKind::PreOrder) => (
                "pre_order",
                "/api/v1/pre-orders",
                json!({
                    "caller": caller, "sku": "ARB-100", "name": "Arbidol 100 mg", "quantity": 1,
                    "pharmacy": "apteka-7",
                }),
            ),
            Some(RecordKind::Complaint) => (
                "complaint",
                "/api/v1/complaints",
                json!({
                    "caller": caller, "text": "drill complaint",
                }),
            ),
        };
        // One key per planned create: a retry after an unknown outcome (a fault) answers the
        // first result instead of making a second record.
        let create = PendingCreate {
            login: self.agent.login.clone(),
            site: self.agent.site,
            token: self.token.clone(),
            class,
            path,
            body,
            about,
            key: idempotency_key(world.clock.epoch_ms, class, leg.index),
            read_back: kind == Some(RecordKind::Order),
        };
        let answer = create.attempt(world, 0);
        if answer.status == 0 || answer.status == 503 {
            // The agent goes on with the call; the desktop keeps retrying in the background.
            create.retry_in_background(&self.shared);
        } else {
            create.answered(world, &answer);
        }
    }
}

/// A create the agent made: retried with its key until it commits.
#[derive(Debug, Clone)]
struct PendingCreate {
    login: String,
    site: usize,
    token: String,
    class: &'static str,
    path: &'static str,
    body: Value,
    about: About,
    key: String,
    /// An order: read it back at the next site once acknowledged.
    read_back: bool,
}

impl PendingCreate {
    /// One attempt (`retry` 0 is the first).
    fn attempt(&self, world: &World, retry: u32) -> super::client::Answer {
        world.api.create(
            &self.login,
            self.site,
            self.class,
            self.path,
            &self.token,
            &self.body,
            self.about,
            &self.key,
            retry,
            &|| true,
        )
    }

    /// Retries on a thread of its own (joined by the run before it collects).
    fn retry_in_background(self, world: &Arc<World>) {
        let shared = Arc::clone(world);
        let key = self.key.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("create-{key}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                let world = &*shared;
                let answer = world.api.create(
                    &self.login,
                    self.site,
                    self.class,
                    self.path,
                    &self.token,
                    &self.body,
                    self.about,
                    &self.key,
                    1,
                    &|| world.stopping(),
                );
                self.answered(world, &answer);
            });
        match spawned {
            Ok(handle) => {
                if let Ok(mut retries) = world.retries.lock() {
                    retries.push(handle);
                }
            }
            Err(error) => tracing::error!(%key, %error, "cannot retry a create"),
        }
    }

    /// After the create was answered: an acknowledged order is read back at the next site (a
    /// read that begins after the write was acknowledged must see it).
    fn answered(&self, world: &World, answer: &super::client::Answer) {
        let Some(order) = answer.body["order"].as_u64().filter(|_| answer.ok()) else {
            return;
        };
        if !self.read_back {
            return;
        }
        let site = (self.site + 1) % world.api.sites.len().max(1);
        let path = format!("/api/v1/orders/{order}");
        world.api.call(
            "gateway",
            site,
            "order_read",
            "GET",
            &path,
            &world.tokens.gateway,
            None,
            self.about,
        );
    }
}

/// The `Idempotency-Key` of the planned create of `class` for plan index `index` in the run
/// whose clock starts at `epoch_ms` (unique per run: a key is remembered for a day).
pub fn idempotency_key(epoch_ms: u64, class: &str, index: usize) -> String {
    format!("live-{epoch_ms}-{class}-{index}")
}
