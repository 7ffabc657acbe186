//! The Queue actor: one per skill, started with the Site.
//!
//! It owns the queue's live view for supervisors — contacts in queue, oldest contact's age,
//! estimated wait, agents staffed/available/on contact/in wrap-up/not ready — and the
//! wallboard streams that watch it. The Site computes the view (it holds the queue and the
//! agents) and sends it when something in the queue changed, at most once per
//! [`QUEUE_VIEW_PUBLISH_INTERVAL`] (a burst of arrivals is one update, not thousands); the
//! Queue actor publishes it to its wallboards only if it differs from the last one.
//!
//! If a handler panics the actor is restarted by its supervisor and asks the Site for the
//! current view (`QueueToSite::Restarted`); wallboard streams are kept.

use std::time::Duration;

use actix::prelude::*;
use callgrid_domain::SkillId;
use serde_json::{Value, json};

use super::site::views::QueueView;
use tokio::sync::mpsc;

use super::{ChildCounts, StreamsFull, Subscribers, count_in, count_out, guarded};

/// Messages a Queue actor may hold before the Site's sends to it fail.
pub const QUEUE_MAILBOX_CAPACITY: usize = 256;
/// The Site sends a queue's view at most this often.
pub const QUEUE_VIEW_PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// What the Site tells a Queue actor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum SiteToQueue {
    /// The queue's view changed.
    ViewChanged(QueueView),
    /// Makes the handler panic (tests of supervision).
    #[cfg(test)]
    Panic,
}

/// A wallboard stream to add; it gets the current view at once.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StreamsFull>")]
pub struct SubscribeQueueStream(pub mpsc::Sender<String>);

/// The queue's current view.
#[derive(Debug, Message)]
#[rtype(result = "QueueView")]
pub struct LookupQueue;

/// What a Queue actor tells the Site.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum QueueToSite {
    /// The actor restarted after a failure and needs the queue's view.
    Restarted(SkillId),
}

/// The Queue actor.
pub struct QueueActor {
    skill: SkillId,
    site: Recipient<QueueToSite>,
    counts: ChildCounts,
    view: QueueView,
    wallboards: Subscribers,
    restarted: bool,
}

impl std::fmt::Debug for QueueActor {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("QueueActor")
            .field("skill", &self.skill.0)
            .finish()
    }
}

impl QueueActor {
    /// An actor for `skill` with its first view.
    pub fn new(
        skill: SkillId,
        view: QueueView,
        site: Recipient<QueueToSite>,
        counts: ChildCounts,
    ) -> Self {
        Self {
            skill,
            site,
            counts,
            view,
            wallboards: Subscribers::default(),
            restarted: false,
        }
    }

    fn update(&self) -> Value {
        json!({"type": "queue", "queue": self.view})
    }

    fn handle_message(&mut self, message: SiteToQueue) {
        match message {
            SiteToQueue::ViewChanged(view) => {
                if view == self.view {
                    return;
                }
                self.view = view;
                let update = self.update();
                self.wallboards.publish(&update);
            }
            #[cfg(test)]
            SiteToQueue::Panic => panic!("queue actor asked to fail"),
        }
    }
}

impl Actor for QueueActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(QUEUE_MAILBOX_CAPACITY);
        count_in(&self.counts.queues);
        if self.restarted {
            self.site.do_send(QueueToSite::Restarted(self.skill));
        }
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        count_out(&self.counts.queues);
    }
}

impl actix::Supervised for QueueActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::warn!(skill = self.skill.0, "queue actor restarting");
        count_in(&self.counts.restarts);
        self.restarted = true;
    }
}

impl Handler<SiteToQueue> for QueueActor {
    type Result = ();

    fn handle(&mut self, message: SiteToQueue, ctx: &mut Self::Context) {
        if !guarded("queue", || self.handle_message(message)) {
            ctx.stop();
        }
    }
}

impl Handler<SubscribeQueueStream> for QueueActor {
    type Result = Result<(), StreamsFull>;

    fn handle(
        &mut self,
        subscribe: SubscribeQueueStream,
        _ctx: &mut Self::Context,
    ) -> Self::Result {
        self.wallboards.add(subscribe.0)?;
        let update = self.update().to_string();
        self.wallboards.send_to_last(update);
        Ok(())
    }
}

impl Handler<LookupQueue> for QueueActor {
    type Result = MessageResult<LookupQueue>;

    fn handle(&mut self, _lookup: LookupQueue, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.view.clone())
    }
}
