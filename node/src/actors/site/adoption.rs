//! Site loss, the Site's part. A restarted site recovers its own contacts that were open
//! when it stopped (`Command::RecoverOwnContacts`, once its outbox committed what it held),
//! so a crash followed by a quick restart forgets no caller either. On each summary tick, a peer whose summaries stopped (stale on
//! this node's clock) and that still has open ledger entries or claimed callbacks is adopted
//! by the lowest-numbered live site (`Command::AdoptSite`: its callers get callback tasks at
//! their original place, its claimed callbacks are released).
//!
//! Bound: a site is stale [`SUMMARY_STALE_AFTER_MS`] after its last summary arrived, and it
//! publishes at least every `SUMMARY_REFRESH_AFTER_MS` + a tick, so its contacts are adopted
//! within [`ADOPTION_BOUND_MS`] of its death (plus one commit); a proposal that fails is
//! made again on the next tick.

use std::time::Duration;

use actix::prelude::*;

use super::SiteActor;
use crate::actors::overflow::{
    SUMMARY_PUBLISH_INTERVAL, SUMMARY_REFRESH_AFTER_MS, SUMMARY_STALE_AFTER_MS,
};
use crate::replicate::now_ms;
use crate::state::model::Actor as Principal;
use crate::state::{Command, Outcome};

/// Longest time from a site's death to the adoption of its contacts (before the commit): its
/// last summary may be a refresh interval and a tick old when it dies, it turns stale
/// [`SUMMARY_STALE_AFTER_MS`] after it arrived, and the adopter looks every tick.
pub const ADOPTION_BOUND_MS: u64 = SUMMARY_REFRESH_AFTER_MS
    + SUMMARY_STALE_AFTER_MS
    + 2 * SUMMARY_PUBLISH_INTERVAL.as_millis() as u64;

impl SiteActor {
    /// Adopts a lost peer's open contacts when this site is the lowest-numbered live one.
    pub(super) fn adoption_tick(&mut self, ctx: &mut Context<Self>) {
        if self.ledger.adopting || self.draining {
            return;
        }
        let wall_ms = now_ms();
        let own = (self.config.site.number, self.config.site.id.clone());
        let mut live = vec![own.0];
        let mut lost = Vec::new();
        let summaries: Vec<(String, u64)> = self.shared.read(|state| {
            state
                .site_summaries()
                .map(|summary| (summary.site.clone(), summary.at_ms))
                .collect()
        });
        for (site, at_ms) in summaries {
            let Some(peer) = self.config.peer_site(&site) else {
                continue;
            };
            let arrived = self.overflow.arrivals.observe(&site, at_ms, wall_ms);
            if wall_ms.saturating_sub(arrived) >= SUMMARY_STALE_AFTER_MS {
                lost.push(site);
            } else {
                live.push(peer.number);
            }
        }
        if live.iter().min() != Some(&own.0) {
            return;
        }
        let Some(site) = lost.into_iter().find(|site| {
            self.shared.read(|state| {
                !state.ledger_open(site, 1).is_empty()
                    || !state.callbacks_claimed_by(site).is_empty()
            })
        }) else {
            return;
        };
        self.ledger.adopting = true;
        let proposer = self.proposer.clone();
        let command = Command::AdoptSite { site: site.clone() };
        ctx.spawn(
            async move { proposer.propose(Principal::system(), command).await }
                .into_actor(self)
                .map(move |result, actor, _ctx| {
                    actor.ledger.adopting = false;
                    match result {
                        Ok(Outcome::SiteAdopted {
                            contacts,
                            callbacks,
                            released,
                        }) => tracing::warn!(
                            lost = %site,
                            contacts,
                            callbacks = callbacks.len(),
                            released,
                            "adopted a lost site's contacts"
                        ),
                        Ok(_) => {}
                        Err(error) => {
                            tracing::info!(lost = %site, %error, "adoption not done; next tick");
                        }
                    }
                }),
        );
    }
}

/// How long a restarted Site waits for its outbox to commit what it held before recovering
/// its own orphaned contacts (it recovers then anyway: late entries stay open, logged).
pub const RECOVERY_OUTBOX_WAIT: Duration = Duration::from_secs(60);
/// Attempts to propose the recovery (one a second) before giving up until the next start.
pub const RECOVERY_ATTEMPTS_MAX: u32 = 120;

impl SiteActor {
    /// After a restart (of the process or of this actor), the contacts this site had open are
    /// gone from its memory: once its outbox committed what it held and the state is caught
    /// up, their callers get callbacks (`Command::RecoverOwnContacts`), as a lost site's do.
    pub(super) fn recover_own_contacts(&mut self, ctx: &mut Context<Self>) {
        let started_ms = now_ms();
        let outbox = self.outbox.clone();
        let proposer = self.proposer.clone();
        let shared = self.shared.clone();
        let site = self.config.site.id.clone();
        ctx.spawn(
            async move {
                if let Err(error) = outbox.durable().await {
                    tracing::warn!(%error, "outbox not durable before recovery");
                }
                let through = outbox.durable_sequence();
                let deadline = tokio::time::Instant::now() + RECOVERY_OUTBOX_WAIT;
                while outbox.committed_sequence() < through
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                for _ in 0..RECOVERY_ATTEMPTS_MAX {
                    if proposer.replicator().read_barrier().await.is_ok() {
                        let orphans = shared.read(|state| {
                            state
                                .ledger_open(&site, usize::MAX)
                                .iter()
                                .any(|entry| entry.updated_at_ms < started_ms)
                        });
                        if !orphans {
                            return;
                        }
                        let command = Command::RecoverOwnContacts {
                            before_ms: started_ms,
                        };
                        match proposer.propose(Principal::system(), command).await {
                            Ok(Outcome::SiteAdopted {
                                contacts,
                                callbacks,
                                ..
                            }) => {
                                tracing::warn!(
                                    contacts,
                                    callbacks = callbacks.len(),
                                    "recovered contacts open before the restart"
                                );
                                continue;
                            }
                            Ok(_) => return,
                            Err(error) => tracing::info!(%error, "recovery not done; retrying"),
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            .into_actor(self),
        );
    }
}
