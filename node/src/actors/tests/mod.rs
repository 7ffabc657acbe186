//! The actor split at work: each child does its own IO, stops when the Site drops it, and
//! rebuilds from what the Site holds after a panic. Children are driven by a probe standing
//! in for the Site where the test needs to see what they tell it.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use callgrid_domain::{AgentId, AgentState, Channel, ContactId, Direction, SkillId, Topic};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::agent::{AgentActor, AgentToSite, SiteToAgent, SubscribeAgentStream};
use super::call::{CallActor, CallToSite, LookupCall, SiteToCall};
use super::queue::{LookupQueue, QueueActor, QueueToSite, SiteToQueue, SubscribeQueueStream};
use super::site::views::{ChatAuthor, ChatLine, QueueView};
use super::site::{
    Arrival, Audience, ContactStage, ContactView, LookupChildren, LookupContact, LookupMetrics,
    SiteActor, SiteInput, Subscribe,
};
use super::{ChildCounts, GatewayStreams};
use crate::config::NodeConfig;
use crate::replicate::{LocalReplicator, Proposer, now_ms};
use crate::state::SharedState;

/// Upper bound for anything to happen; a test that waits this long fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(20);
/// Messages the probe buffers.
const PROBE_BUFFER: usize = 64;

/// Stands in for the Site: forwards what children tell it to the test.
struct Probe<M: Send + 'static> {
    sender: mpsc::Sender<M>,
}

impl<M: Send + 'static> Actor for Probe<M> {
    type Context = Context<Self>;
}

macro_rules! probe_handler {
    ($message:ty) => {
        impl Handler<$message> for Probe<$message> {
            type Result = ();

            fn handle(&mut self, message: $message, _ctx: &mut Self::Context) {
                let _ = self.sender.try_send(message);
            }
        }
    };
}

probe_handler!(AgentToSite);
probe_handler!(CallToSite);
probe_handler!(QueueToSite);

fn probe<M>() -> (Addr<Probe<M>>, mpsc::Receiver<M>)
where
    M: Message<Result = ()> + Send + 'static,
    Probe<M>: Actor<Context = Context<Probe<M>>> + Handler<M>,
{
    let (sender, receiver) = mpsc::channel(PROBE_BUFFER);
    (Probe { sender }.start(), receiver)
}

async fn next<M>(receiver: &mut mpsc::Receiver<M>) -> M {
    tokio::time::timeout(PATIENCE, receiver.recv())
        .await
        .expect("nothing arrived in time")
        .expect("channel closed")
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_rt::test]
async fn offer_timeout_fires_from_the_agent_actor_and_a_settled_offer_does_not() {
    let (site, mut told) = probe::<AgentToSite>();
    let counts = ChildCounts::default();
    let actor = AgentActor::new(
        AgentId(7),
        "anna".to_string(),
        site.recipient(),
        counts.clone(),
        Vec::new(),
    );
    let agent = Supervisor::start(move |_| actor);
    let (stream, mut desktop) = mpsc::channel(PROBE_BUFFER);
    agent
        .send(SubscribeAgentStream(stream))
        .await
        .unwrap()
        .unwrap();
    let first: Value = serde_json::from_str(&next(&mut desktop).await).unwrap();
    assert_eq!(
        first["type"], "state",
        "a new stream gets the state at once"
    );

    // Contact 1 would ring out first, but it is settled; contact 2 rings out.
    let now = now_ms();
    agent.do_send(SiteToAgent::Offer {
        contact: ContactId(1),
        view: Box::new(contact_view(1, ContactStage::Offered)),
        deadline_ms: now + 50,
    });
    agent.do_send(SiteToAgent::OfferSettled(ContactId(1)));
    agent.do_send(SiteToAgent::Offer {
        contact: ContactId(2),
        view: Box::new(contact_view(2, ContactStage::Offered)),
        deadline_ms: now + 150,
    });
    match next(&mut told).await {
        AgentToSite::OfferExpired { agent, contact } => {
            assert_eq!(agent, AgentId(7));
            assert_eq!(
                contact,
                ContactId(2),
                "the settled offer's timer was stopped"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let offer: Value = serde_json::from_str(&next(&mut desktop).await).unwrap();
    assert_eq!(offer["type"], "offer");
    assert_eq!(offer["contact"]["id"], 1);
    assert_eq!(counts.snapshot().0, 1);

    // The Site drops its address (logout): the actor stops and hands its streams back.
    drop(agent);
    match next(&mut told).await {
        AgentToSite::Released { agent, streams } => {
            assert_eq!(agent, AgentId(7));
            assert_eq!(streams.len(), 1);
        }
        other => panic!("unexpected {other:?}"),
    }
    eventually("the agent actor to stop", || counts.snapshot().0 == 0).await;
}

#[actix_rt::test]
async fn agent_actor_restarted_after_a_panic_rearms_the_offers_the_site_holds() {
    let (site, mut told) = probe::<AgentToSite>();
    let counts = ChildCounts::default();
    let actor = AgentActor::new(
        AgentId(3),
        "boris".to_string(),
        site.recipient(),
        counts.clone(),
        Vec::new(),
    );
    let agent = Supervisor::start(move |_| actor);
    agent.do_send(SiteToAgent::Offer {
        contact: ContactId(9),
        view: Box::new(contact_view(9, ContactStage::Offered)),
        deadline_ms: now_ms() + 600_000,
    });
    agent.do_send(SiteToAgent::Panic);
    // Stopping hands the streams back (none here), then the restarted actor asks for state.
    loop {
        match next(&mut told).await {
            AgentToSite::Restarted(agent) => {
                assert_eq!(agent, AgentId(3));
                break;
            }
            AgentToSite::Released { .. } => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(counts.snapshot().3, 1, "one restart");
    assert_eq!(counts.snapshot().0, 1, "still one agent actor");
    // The Site answers with what it holds: the offer now rings out soon.
    agent.do_send(SiteToAgent::Restore {
        state: AgentState::Reserved,
        since_ms: now_ms(),
        offers: vec![(
            ContactId(9),
            contact_view(9, ContactStage::Offered),
            now_ms() + 20,
        )],
    });
    match next(&mut told).await {
        AgentToSite::OfferExpired { contact, .. } => assert_eq!(contact, ContactId(9)),
        other => panic!("unexpected {other:?}"),
    }
}

#[actix_rt::test]
async fn call_actor_restarted_after_a_panic_recovers_its_view_and_keeps_the_transcript() {
    let (site, mut told) = probe::<CallToSite>();
    let counts = ChildCounts::default();
    let gateways = GatewayStreams::default();
    let (stream, mut gateway) = mpsc::channel(PROBE_BUFFER);
    gateways.add(stream).unwrap();
    let actor = CallActor::new(
        ContactId(5),
        site.recipient(),
        gateways.clone(),
        counts.clone(),
    );
    let call = Supervisor::start(move |_| actor);
    let mut offered = contact_view(5, ContactStage::Offered);
    offered.agent = Some("anna".to_string());
    offered.direction = Direction::OutboundCallback;
    offered.caller = "+79160000005".to_string();
    offered.callback = Some(11);
    call.do_send(SiteToCall::ViewChanged(Box::new(offered.clone())));
    call.do_send(SiteToCall::ChatMessage(ChatLine {
        from: ChatAuthor::Customer,
        agent: None,
        text: "hello".to_string(),
        at_ms: now_ms(),
    }));
    // Gateway-facing events: the stage change, then the dial request for the callback.
    let stage: Value = serde_json::from_str(&next(&mut gateway).await).unwrap();
    assert_eq!(stage["type"], "contact");
    assert_eq!(stage["stage"], "offered");
    let dial: Value = serde_json::from_str(&next(&mut gateway).await).unwrap();
    assert_eq!(dial["type"], "dial");
    assert_eq!(dial["number"], "+79160000005");
    assert_eq!(dial["agent"], "anna");

    call.do_send(SiteToCall::Panic);
    match next(&mut told).await {
        CallToSite::Restarted(contact) => assert_eq!(contact, ContactId(5)),
    }
    let mut talking = offered;
    talking.stage = ContactStage::Talking;
    call.do_send(SiteToCall::ViewChanged(Box::new(talking)));
    let view = call
        .send(LookupCall {
            fresh: None,
            agent: Some("anna".to_string()),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        view.stage,
        ContactStage::Talking,
        "the view the Site sent after the restart"
    );
    assert_eq!(
        view.messages
            .as_ref()
            .and_then(|lines| lines.first())
            .map(|line| line.text.as_str()),
        Some("hello"),
        "the transcript survived"
    );
    let refused = call
        .send(LookupCall {
            fresh: None,
            agent: Some("boris".to_string()),
        })
        .await
        .unwrap();
    assert!(refused.is_err(), "another agent may not see it");
    assert_eq!(counts.snapshot().1, 1);
    assert_eq!(counts.snapshot().3, 1);
}

#[actix_rt::test]
async fn queue_actor_publishes_only_changes_and_recovers_after_a_panic() {
    let (site, mut told) = probe::<QueueToSite>();
    let counts = ChildCounts::default();
    let actor = QueueActor::new(SkillId(0), queue_view(0), site.recipient(), counts.clone());
    let queue = Supervisor::start(move |_| actor);
    let (stream, mut wallboard) = mpsc::channel(PROBE_BUFFER);
    queue
        .send(SubscribeQueueStream(stream))
        .await
        .unwrap()
        .unwrap();
    let first: Value = serde_json::from_str(&next(&mut wallboard).await).unwrap();
    assert_eq!(first["queue"]["in_queue"], 0, "the current view at once");
    queue.do_send(SiteToQueue::ViewChanged(queue_view(0)));
    queue.do_send(SiteToQueue::ViewChanged(queue_view(2)));
    let update: Value = serde_json::from_str(&next(&mut wallboard).await).unwrap();
    assert_eq!(
        update["queue"]["in_queue"], 2,
        "an unchanged view is not published"
    );

    queue.do_send(SiteToQueue::Panic);
    match next(&mut told).await {
        QueueToSite::Restarted(skill) => assert_eq!(skill, SkillId(0)),
    }
    queue.do_send(SiteToQueue::ViewChanged(queue_view(3)));
    let update: Value = serde_json::from_str(&next(&mut wallboard).await).unwrap();
    assert_eq!(
        update["queue"]["in_queue"], 3,
        "wallboards kept across the restart"
    );
    assert_eq!(queue.send(LookupQueue).await.unwrap().in_queue, 3);
}

/// The test site's config; `data` is its data directory (interval reports are written there).
fn site_config(offer_timeout_ms: u64, data: &Path) -> Arc<NodeConfig> {
    let text = format!(
        r#"
[site]
id = "msk"
city = "Testgrad"
number = 0
data_dir = "{data}"

[routing]
offer_timeout_ms = {offer_timeout_ms}
skills = [
  {{ name = "line1", channel = "voice", line = "line1" }},
  {{ name = "chat", channel = "chat", line = "line1" }},
]

[[agents]]
login = "anna"
id = 1
skills = ["line1", "chat"]

[[agents]]
login = "boris"
id = 2
skills = ["line1"]
"#,
        data = data.display()
    );
    Arc::new(NodeConfig::parse(&text, Path::new("test.toml")).unwrap())
}

/// A site on a fresh data directory, removed when the returned guard drops.
fn start_site(offer_timeout_ms: u64) -> (Addr<SiteActor>, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let shared = SharedState::new();
    let proposer = Proposer::new(
        Arc::new(LocalReplicator::new(shared.clone())),
        "msk".to_string(),
    );
    let actor =
        SiteActor::new(site_config(offer_timeout_ms, data.path()), proposer, shared).unwrap();
    (Supervisor::start(move |_| actor), data)
}

async fn ask(site: &Addr<SiteActor>, input: SiteInput) -> Value {
    serde_json::to_value(site.send(input).await.unwrap().unwrap()).unwrap()
}

/// A contact view for feeding children directly.
fn contact_view(id: u64, stage: ContactStage) -> ContactView {
    ContactView {
        id,
        caller: "+79160000000".to_string(),
        channel: Channel::Voice,
        topic: Topic::Order,
        skill: "line1".to_string(),
        direction: Direction::Inbound,
        callback: None,
        agent: None,
        stage,
        arrived_at_ms: now_ms(),
        queue_position: None,
        wait_ms_estimated: None,
        wrap_up_code: None,
        transferred_from: None,
        overflowed_from: None,
        overflowed_to: None,
        messages: None,
    }
}

/// A queue view with `in_queue` waiting.
fn queue_view(in_queue: u32) -> QueueView {
    QueueView {
        skill: "line1".to_string(),
        channel: Channel::Voice,
        line: callgrid_domain::Line::Line1,
        in_queue,
        oldest_age_ms: None,
        newest_age_ms: None,
        wait_ms_estimated: None,
        agents_staffed: 0,
        agents_available: 0,
        agents_on_contact: 0,
        agents_wrap_up: 0,
        agents_not_ready: 0,
    }
}

async fn arrive(site: &Addr<SiteActor>, channel: Channel) -> Value {
    ask(
        site,
        SiteInput::ContactArrived(Arrival {
            caller: "+79160001122".to_string(),
            channel,
            topic: Topic::Order,
            skill: None,
            priority: 0,
            overflowed_from: None,
        }),
    )
    .await
}

#[actix_rt::test]
async fn login_starts_an_agent_actor_and_logout_stops_it_keeping_the_desktop_stream() {
    let (site, _data) = start_site(60_000);
    let (stream, mut desktop) = mpsc::channel(PROBE_BUFFER);
    // A desktop may connect before its agent logs in.
    site.send(Subscribe {
        audience: Audience::Agent("anna".to_string()),
        sender: stream,
    })
    .await
    .unwrap()
    .unwrap();
    let counts = site.send(LookupChildren).await.unwrap().counts;
    eventually("the queue actors", || counts.snapshot().2 == 2).await;
    assert_eq!(counts.snapshot().0, 0);

    ask(&site, SiteInput::Login("anna".to_string())).await;
    assert!(
        site.send(LookupChildren)
            .await
            .unwrap()
            .agents
            .contains_key("anna")
    );
    assert_eq!(counts.snapshot().0, 1);
    ask(&site, SiteInput::Ready("anna".to_string())).await;
    let arrived = arrive(&site, Channel::Voice).await;
    assert_eq!(arrived["agent"], "anna");
    // The offer reaches the desktop through the Agent actor.
    loop {
        let event: Value = serde_json::from_str(&next(&mut desktop).await).unwrap();
        if event["type"] == "offer" {
            assert_eq!(event["contact"]["id"], arrived["id"]);
            break;
        }
    }
    let contact = ContactId(arrived["id"].as_u64().unwrap());
    ask(
        &site,
        SiteInput::Reject {
            login: "anna".to_string(),
            contact,
        },
    )
    .await;
    ask(&site, SiteInput::Logout("anna".to_string())).await;
    assert!(
        !site
            .send(LookupChildren)
            .await
            .unwrap()
            .agents
            .contains_key("anna")
    );
    eventually("the agent actor to stop", || counts.snapshot().0 == 0).await;
    loop {
        let event: Value = serde_json::from_str(&next(&mut desktop).await).unwrap();
        if event["type"] == "state" && event["state"] == "logged_out" {
            break;
        }
    }
    // The stream outlived the actor: logging in again, the desktop sees the new state.
    ask(&site, SiteInput::Login("anna".to_string())).await;
    assert_eq!(counts.snapshot().0, 1);
    loop {
        let event: Value = serde_json::from_str(&next(&mut desktop).await).unwrap();
        assert_ne!(event["type"], "offer", "no offer after the logout");
        if event["type"] == "state" && event["state"] == "available" {
            break;
        }
    }
}

#[actix_rt::test]
async fn a_contact_has_a_call_actor_that_answers_lookups_after_it_finished() {
    let (site, _data) = start_site(60_000);
    ask(&site, SiteInput::Login("anna".to_string())).await;
    ask(&site, SiteInput::Ready("anna".to_string())).await;
    let arrived = arrive(&site, Channel::Chat).await;
    let contact = ContactId(arrived["id"].as_u64().unwrap());
    let children = site.send(LookupChildren).await.unwrap();
    assert!(children.calls.contains_key(&contact.0));
    drop(children);
    ask(
        &site,
        SiteInput::ChatMessage {
            contact,
            text: "do you have aspirin?".to_string(),
        },
    )
    .await;
    for input in [
        SiteInput::Accept {
            login: "anna".to_string(),
            contact,
        },
        SiteInput::End {
            login: "anna".to_string(),
            contact,
        },
        SiteInput::WrapUp {
            login: "anna".to_string(),
            contact,
            code: "done".to_string(),
            callback_outcome: None,
        },
    ] {
        ask(&site, input).await;
    }
    let view = site
        .send(LookupContact {
            contact,
            agent: Some("anna".to_string()),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.stage, ContactStage::Finished);
    assert_eq!(view.wrap_up_code.as_deref(), Some("done"));
    assert_eq!(
        view.messages
            .as_ref()
            .and_then(|lines| lines.first())
            .map(|line| line.text.as_str()),
        Some("do you have aspirin?")
    );
    let refused = site
        .send(LookupContact {
            contact,
            agent: Some("boris".to_string()),
        })
        .await
        .unwrap();
    assert!(refused.is_err(), "boris may not see anna's contact");
}

#[actix_rt::test]
async fn a_restarted_agent_actor_still_times_out_its_offer() {
    let (site, _data) = start_site(300);
    ask(&site, SiteInput::Login("anna".to_string())).await;
    ask(&site, SiteInput::Ready("anna".to_string())).await;
    let children = site.send(LookupChildren).await.unwrap();
    let anna = children.agents["anna"].clone();
    let counts = children.counts.clone();
    drop(children);
    anna.do_send(SiteToAgent::Panic);
    drop(anna);
    eventually("the restart", || counts.snapshot().3 == 1).await;
    let arrived = arrive(&site, Channel::Voice).await;
    assert_eq!(arrived["agent"], "anna");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let view = ask(&site, SiteInput::AgentView("anna".to_string())).await;
        if view["state"] == "not_ready" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the offer never timed out"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let supervisor_view = site
        .send(LookupContact {
            contact: ContactId(arrived["id"].as_u64().unwrap()),
            agent: None,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(supervisor_view.stage, ContactStage::Queued);
}

#[actix_rt::test]
async fn a_rejected_contact_offered_on_keeps_the_next_agents_timer() {
    let (site, _data) = start_site(300);
    ask(&site, SiteInput::Login("anna".to_string())).await;
    ask(&site, SiteInput::Ready("anna".to_string())).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    ask(&site, SiteInput::Login("boris".to_string())).await;
    ask(&site, SiteInput::Ready("boris".to_string())).await;
    let arrived = arrive(&site, Channel::Voice).await;
    assert_eq!(arrived["agent"], "anna", "the longest idle agent");
    let contact = ContactId(arrived["id"].as_u64().unwrap());
    let rejected = ask(
        &site,
        SiteInput::Reject {
            login: "anna".to_string(),
            contact,
        },
    )
    .await;
    assert_eq!(rejected["agent"], "boris", "offered on at once: {rejected}");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let view = ask(&site, SiteInput::AgentView("boris".to_string())).await;
        if view["state"] == "not_ready" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "boris's offer never timed out"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = site.send(LookupMetrics).await.unwrap();
    assert!(
        metrics.offer_timers_lost == 0,
        "boris's Agent actor timed the offer, not the Site's sweep"
    );
}

#[actix_rt::test]
async fn supervisor_stream_gets_queue_updates_from_the_queue_actors() {
    let (site, _data) = start_site(60_000);
    let (stream, mut wallboard) = mpsc::channel(PROBE_BUFFER);
    site.send(Subscribe {
        audience: Audience::Supervisor,
        sender: stream,
    })
    .await
    .unwrap()
    .unwrap();
    arrive(&site, Channel::Voice).await;
    loop {
        let event: Value = serde_json::from_str(&next(&mut wallboard).await).unwrap();
        if event["type"] == "queue"
            && event["queue"]["skill"] == "line1"
            && event["queue"]["in_queue"] == 1
        {
            break;
        }
    }
}

async fn queue_length(site: &Addr<SiteActor>) -> u64 {
    ask(site, SiteInput::QueuesView).await["queues"][0]["in_queue"]
        .as_u64()
        .unwrap()
}

async fn metric(site: &Addr<SiteActor>, prefix: &str) -> Option<String> {
    let routing = site.send(LookupMetrics).await.ok()?;
    let mut text = String::new();
    crate::api::metrics::render_routing(&mut text, &routing);
    text.lines()
        .find(|line| line.starts_with(prefix))
        .map(str::to_string)
}

mod defects;
mod monitoring;
mod overflow_rule;
mod roster;
