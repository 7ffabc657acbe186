//! The node's side of the overflow rule inside the Site actor: the summary tick (publish
//! this site's summary, read the peers'), the rule's polls and its timer.

use actix::prelude::*;

use super::SiteActor;
use crate::actors::overflow::{self as rule, SUMMARY_REFRESH_AFTER_MS};
use crate::replicate::now_ms;
use crate::state::Command;
use crate::state::model::Actor as Principal;

impl SiteActor {
    /// Applies the overflow rule with the peers' last summaries, then re-arms its timer.
    pub(super) fn poll_overflow(&mut self, ctx: &mut Context<Self>) {
        if !self.config.overflow.enabled {
            return;
        }
        self.overflow.polls += 1;
        let now = self.now();
        let mut effects = std::mem::take(&mut self.effects);
        self.site
            .poll_overflow(now, &self.overflow.peers, &mut effects);
        self.effects = effects;
        self.process_effects();
        self.arm_overflow_timer(ctx);
    }

    /// Schedules one poll at `overflow_deadline()` (the oldest-wait trigger), replacing a
    /// poll scheduled for another time.
    pub(super) fn arm_overflow_timer(&mut self, ctx: &mut Context<Self>) {
        if !self.config.overflow.enabled {
            return;
        }
        let deadline = self.site.overflow_deadline();
        if self.overflow.timer.as_ref().map(|(at, _)| *at) == deadline {
            return;
        }
        if let Some((_, handle)) = self.overflow.timer.take() {
            ctx.cancel_future(handle);
        }
        if let Some(at) = deadline {
            let delay = crate::clock::wall_delay(at.0.saturating_sub(self.now().0));
            let handle = ctx.run_later(delay, |actor, ctx| {
                actor.overflow.timer = None;
                actor.poll_overflow(ctx);
                actor.flush(ctx);
            });
            self.overflow.timer = Some((at, handle));
        }
    }

    /// The summary tick: proposes this site's summary when it changed (or is getting old),
    /// reads the peers' summaries and polls the rule when they changed.
    pub(super) fn overflow_tick(&mut self, ctx: &mut Context<Self>) {
        let wall_ms = now_ms();
        let mut summary = callgrid_domain::SiteSummary::default();
        let now = self.now();
        self.site.fill_summary(now, &mut summary);
        let publication = rule::publishable(&self.config, wall_ms, &summary);
        let due = self
            .overflow
            .published
            .as_ref()
            .is_none_or(|(last, at_ms)| {
                !rule::same_availability(last, &publication)
                    || wall_ms.saturating_sub(*at_ms) >= SUMMARY_REFRESH_AFTER_MS
            });
        if due && !self.overflow.publishing {
            self.overflow.publishing = true;
            let proposer = self.proposer.clone();
            let command = Command::PublishSiteSummary(publication.clone());
            ctx.spawn(
                async move { proposer.propose(Principal::system(), command).await }
                    .into_actor(self)
                    .map(move |result, actor, _ctx| {
                        actor.overflow.publishing = false;
                        match result {
                            Ok(_) => actor.overflow.published = Some((publication, wall_ms)),
                            Err(error) => {
                                tracing::warn!(%error, "site summary not published; retrying next tick");
                            }
                        }
                    }),
            );
        }
        if self.config.overflow.enabled {
            // A drained peer's summary counts as unavailable: nothing overflows to it.
            let peers = self.shared.read(|state| {
                rule::peer_summaries(
                    &self.config,
                    wall_ms,
                    &mut self.overflow.arrivals,
                    state
                        .site_summaries()
                        .filter(|summary| !state.is_drained(&summary.site)),
                )
            });
            if peers != self.overflow.peers {
                self.overflow.peers = peers;
                self.poll_overflow(ctx);
            }
        }
    }
}
