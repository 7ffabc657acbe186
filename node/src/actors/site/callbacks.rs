//! Due callbacks: claimed through Raft, queued here as outbound contacts, outcomes recorded
//! through the durable outbox.

use actix::prelude::*;
use callgrid_domain::{Channel, Contact, ContactId, Direction, Priority, TimeMs, Topic};

use super::{
    CALLBACK_ORPHAN_AFTER_MS, CALLBACKS_PER_SWEEP_MAX, ContactStage, SiteActor, caller_number,
};
use crate::replicate::now_ms;
use crate::state::Command;
use crate::state::model::{Actor as Principal, CallbackOutcome, CallbackReason};
use crate::state::site_writes::SiteWrite;

/// Sent to itself when a callback claim committed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct CallbackClaimed {
    callback: u64,
    caller: String,
    reason: CallbackReason,
}

/// Sent to itself when a claim failed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct CallbackClaimFailed {
    callback: u64,
}

/// How long to wait before asking again for a read barrier that failed (no leader yet).
pub const RELOAD_RETRY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl SiteActor {
    /// Re-queues the callbacks this site had claimed (queued as calls) before a restart, once
    /// the replicated state holds everything committed before now (a read barrier). Read
    /// earlier, the state may still be replaying and miss them: they would stay claimed and
    /// never be dialled.
    pub(super) fn requeue_claimed_after_reload(&mut self, ctx: &mut Context<Self>) {
        let replicator = self.proposer.replicator().clone();
        ctx.spawn(
            async move {
                while let Err(error) = replicator.read_barrier().await {
                    tracing::debug!(%error, "replicated state not reloaded yet; retrying");
                    tokio::time::sleep(RELOAD_RETRY_INTERVAL).await;
                }
            }
            .into_actor(self)
            .map(|(), actor, ctx| {
                actor.requeue_claimed(ctx);
                actor.flush(ctx);
            }),
        );
    }

    /// Queues every callback the replicated state shows as claimed by this site.
    fn requeue_claimed(&mut self, ctx: &mut Context<Self>) {
        let site = self.config.site.id.clone();
        let claimed: Vec<(u64, String, CallbackReason)> = self.shared.read(|state| {
            state
                .callbacks_claimed_by(&site)
                .into_iter()
                .map(|callback| {
                    (
                        callback.id,
                        callback.caller.clone(),
                        callback.reason.clone(),
                    )
                })
                .collect()
        });
        tracing::info!(
            callbacks = claimed.len(),
            "re-queueing this site's claimed callbacks"
        );
        for (callback, caller, reason) in claimed {
            self.queue_callback(ctx, callback, caller, &reason);
        }
    }

    pub(super) fn sweep_callbacks(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        let site = self.config.site.id.clone();
        if self.shared.read(|state| state.is_drained(&site)) {
            self.release_claimed_while_drained(ctx);
            return;
        }
        let now = now_ms();
        let due: Vec<(u64, String, CallbackReason)> = self.shared.read(|state| {
            state
                .callbacks_due(now, CALLBACKS_PER_SWEEP_MAX * 4)
                .into_iter()
                .filter(|callback| {
                    // Its own, an orphan whose owner has not claimed it for long, or one of a
                    // drained site (which claims none).
                    callback.site == site
                        || callback.due_at_ms.saturating_add(CALLBACK_ORPHAN_AFTER_MS) <= now
                        || state.is_drained(&callback.site)
                })
                .map(|callback| {
                    (
                        callback.id,
                        callback.caller.clone(),
                        callback.reason.clone(),
                    )
                })
                .take(CALLBACKS_PER_SWEEP_MAX)
                .collect()
        });
        for (callback, caller, reason) in due {
            if !self.callbacks.claiming.insert(callback) {
                continue;
            }
            let proposer = self.proposer.clone();
            ctx.spawn(
                async move {
                    let result = proposer
                        .propose(Principal::system(), Command::ClaimCallback { callback })
                        .await;
                    (callback, caller, reason, result)
                }
                .into_actor(self)
                .map(
                    |(callback, caller, reason, result), _actor, ctx| match result {
                        Ok(_) => ctx.notify(CallbackClaimed {
                            callback,
                            caller,
                            reason,
                        }),
                        Err(error) => {
                            tracing::debug!(callback, %error, "callback claim failed");
                            ctx.notify(CallbackClaimFailed { callback });
                        }
                    },
                ),
            );
        }
    }

    /// A drained site gives back the callbacks it claimed and has not started to dial: each
    /// one still waiting in the queue leaves it (withdrawn: counted as served by the
    /// self-service path, never as abandoned) and is released through Raft, so a peer
    /// claims and dials it. One already ringing or talking finishes here.
    fn release_claimed_while_drained(&mut self, ctx: &mut Context<Self>) {
        let site = self.config.site.id.clone();
        let claimed: Vec<u64> = self.shared.read(|state| {
            state
                .callbacks_claimed_by(&site)
                .into_iter()
                .map(|callback| callback.id)
                .take(CALLBACKS_PER_SWEEP_MAX)
                .collect()
        });
        for callback in claimed {
            if let Some(contact) = self.callbacks.queued.get(&callback).copied() {
                let waiting = self
                    .live
                    .contacts
                    .get(&contact)
                    .is_some_and(|record| record.stage == ContactStage::Queued);
                if !waiting {
                    continue;
                }
                if let Err(error) = self.self_served(contact) {
                    tracing::warn!(%error, callback, "drained: callback contact not withdrawn");
                    continue;
                }
                self.callbacks.queued.remove(&callback);
            }
            if !self.callbacks.releasing.insert(callback) {
                continue;
            }
            let proposer = self.proposer.clone();
            ctx.spawn(
                async move {
                    let result = proposer
                        .propose(Principal::system(), Command::ReleaseCallback { callback })
                        .await;
                    (callback, result)
                }
                .into_actor(self)
                .map(|(callback, result), actor, _ctx| {
                    actor.callbacks.releasing.remove(&callback);
                    match result {
                        Ok(_) => tracing::info!(callback, "drained: callback released for a peer"),
                        // Retried by the next sweep while the claim is still this site's.
                        Err(error) => tracing::warn!(callback, %error, "drained: release failed"),
                    }
                }),
            );
        }
    }

    pub(super) fn queue_callback(
        &mut self,
        ctx: &mut Context<Self>,
        callback: u64,
        caller: String,
        reason: &CallbackReason,
    ) {
        if self.callbacks.queued.contains_key(&callback) {
            return;
        }
        let now = self.now();
        let (skill, ordering_time) = match reason {
            CallbackReason::Abandoned {
                skill,
                ordering_time_ms,
            } => (
                self.skill_id(skill).ok(),
                // The caller's original place in the queue.
                TimeMs(ordering_time_ms.saturating_sub(self.epoch_ms)),
            ),
            _ => (None, now),
        };
        let skill = match skill {
            Some(skill) => skill,
            None => match self.skill_for(Topic::Other, Channel::Voice) {
                Ok(skill) => skill,
                Err(error) => {
                    tracing::error!(%error, callback, "no voice skill for callbacks");
                    return;
                }
            },
        };
        let id = self.allocate_contact_id();
        let topic = match reason {
            CallbackReason::Abandoned { .. } => Topic::Other,
            CallbackReason::OrderReady { .. } | CallbackReason::FollowUp { .. } => {
                Topic::OrderStatus
            }
            CallbackReason::PreOrderArrived { .. } => Topic::PreOrder,
        };
        let contact = Contact {
            id,
            channel: Channel::Voice,
            topic,
            skill,
            caller: caller_number(&caller),
            entry_site: self.site_id,
            arrived_at: now,
            priority: Priority::default(),
            ordering_time: ordering_time.min(now),
            direction: Direction::OutboundCallback,
            callback: Some(callgrid_domain::CallbackId(callback)),
            // The callback is this site's claim and is dialled from here; a gateway cannot
            // re-present an outbound call elsewhere, so the overflow rule never moves it (it
            // counts as having used its hops; while it heads a queue, that queue does not
            // overflow).
            overflow_count: callgrid_domain::OVERFLOW_HOPS_MAX,
            transfer_count: 0,
        };
        match self.arrive(ctx, contact, caller, Some(callback), None) {
            Ok(_) => {
                self.callbacks.queued.insert(callback, id);
                tracing::info!(
                    callback,
                    contact = id.0,
                    kind = reason.kind(),
                    "callback queued as outbound contact"
                );
            }
            Err(error) => tracing::error!(%error, callback, "callback could not be queued"),
        }
    }

    pub(super) fn record_callback_outcome(&mut self, contact: ContactId, outcome: CallbackOutcome) {
        let Some(callback) = self
            .live
            .contacts
            .get(&contact)
            .and_then(|record| record.callback)
        else {
            return;
        };
        self.callbacks.queued.remove(&callback);
        self.write_through_outbox(SiteWrite::CallbackAttempt { callback, outcome });
    }
}

impl Handler<CallbackClaimed> for SiteActor {
    type Result = ();

    fn handle(&mut self, claimed: CallbackClaimed, ctx: &mut Self::Context) {
        self.callbacks.claiming.remove(&claimed.callback);
        self.queue_callback(ctx, claimed.callback, claimed.caller, &claimed.reason);
        self.flush(ctx);
    }
}

impl Handler<CallbackClaimFailed> for SiteActor {
    type Result = ();

    fn handle(&mut self, failed: CallbackClaimFailed, _ctx: &mut Self::Context) {
        self.callbacks.claiming.remove(&failed.callback);
    }
}
