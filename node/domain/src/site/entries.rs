//! The records the site keeps: contacts (slots), the items an agent holds, agents with their
//! presence, and per-skill queues and counters.

use super::*;

#[derive(Clone, Copy, Debug)]
pub(super) struct ContactEntry {
    pub(super) contact: Contact,
    pub(super) live: bool,
    pub(super) phase: InternalPhase,
    pub(super) generation: u32,
    pub(super) sequence: u64,
    pub(super) entered_queue_at: TimeMs,
    pub(super) entered_site_at: TimeMs,
    pub(super) offered_at: TimeMs,
    pub(super) answered_at: TimeMs,
    pub(super) hold_since: Option<TimeMs>,
    pub(super) hold_ms: u64,
    pub(super) answered_before: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum InternalPhase {
    Queued,
    Offered(u32),
    Talking(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ItemPhase {
    Offered,
    Talking,
    WrapUp,
}

/// A contact an agent holds: ringing, talking or in wrap-up.
#[derive(Clone, Copy, Debug)]
pub(super) struct Item {
    pub(super) contact: ContactId,
    pub(super) skill: SkillId,
    pub(super) channel: Channel,
    pub(super) phase: ItemPhase,
    pub(super) since: TimeMs,
    /// Talk + hold of the finished conversation, for the handle-time average (saturates at
    /// 49 days, far beyond any conversation; keeps an item at 24 bytes).
    pub(super) handled_ms: u32,
}

pub(super) const EMPTY_ITEM: Item = Item {
    contact: ContactId(0),
    skill: SkillId(0),
    channel: Channel::Voice,
    phase: ItemPhase::WrapUp,
    since: TimeMs::ZERO,
    handled_ms: 0,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Presence {
    LoggedOut,
    Ready,
    NotReady(NotReadyReason),
    /// Logged out as soon as the contacts in hand are finished; takes no new work.
    LoggingOut,
}

/// `repr(C)` keeps the fields every routing step reads in the first cache line, followed by
/// the first items; grants (read only on expiry and renewal) come last.
#[derive(Clone, Debug)]
#[repr(C)]
pub(super) struct AgentEntry {
    /// Skills whose grant is valid now (expired certificates removed by `advance`).
    pub(super) skills: SkillSet,
    pub(super) idle_since: TimeMs,
    pub(super) id: AgentId,
    pub(super) generation: u32,
    pub(super) presence: Presence,
    pub(super) state: AgentState,
    pub(super) item_count: u8,
    pub(super) chat_slots: u8,
    pub(super) items: [Item; CHAT_SLOTS_MAX as usize],
    pub(super) grants: Vec<SkillGrant>,
}

impl AgentEntry {
    pub(super) fn items(&self) -> &[Item] {
        &self.items[..usize::from(self.item_count)]
    }

    pub(super) fn holds_voice(&self) -> bool {
        self.items()
            .iter()
            .any(|item| item.channel == Channel::Voice)
    }

    /// Whether the agent may be offered a contact of `channel` now.
    pub(super) fn has_room_for(&self, channel: Channel) -> bool {
        if !matches!(self.presence, Presence::Ready) {
            return false;
        }
        match channel {
            Channel::Voice => self.item_count == 0,
            Channel::Chat => !self.holds_voice() && self.item_count < self.chat_slots,
        }
    }

    /// What the agent adds to the per-skill counters now.
    #[inline]
    pub(super) fn contribution(&self) -> AgentContribution {
        let ready = matches!(self.presence, Presence::Ready);
        AgentContribution {
            idle_skills: if ready && self.item_count == 0 {
                self.skills
            } else {
                SkillSet::EMPTY
            },
            serving_skills: if ready { self.skills } else { SkillSet::EMPTY },
        }
    }

    pub(super) fn derive_state(&self) -> AgentState {
        if matches!(self.presence, Presence::LoggedOut) {
            return AgentState::LoggedOut;
        }
        // One pass over at most CHAT_SLOTS_MAX items: this runs on every agent change.
        let mut offered = false;
        for item in self.items() {
            match item.phase {
                ItemPhase::Talking => return AgentState::Busy,
                ItemPhase::Offered => offered = true,
                ItemPhase::WrapUp => {}
            }
        }
        if offered {
            AgentState::Reserved
        } else if self.item_count > 0 {
            AgentState::WrapUp
        } else {
            match self.presence {
                Presence::Ready => AgentState::Available,
                Presence::NotReady(reason) => AgentState::NotReady(reason),
                Presence::LoggingOut | Presence::LoggedOut => AgentState::LoggedOut,
            }
        }
    }

    pub(super) fn find_item(&self, contact: ContactId, phase: ItemPhase) -> Option<usize> {
        self.items()
            .iter()
            .position(|item| item.contact == contact && item.phase == phase)
    }

    pub(super) fn remove_item(&mut self, position: usize) -> Item {
        let count = usize::from(self.item_count);
        let item = self.items[position];
        self.items.copy_within(position + 1..count, position);
        self.item_count -= 1;
        item
    }
}

/// What an agent contributed to the per-skill counters before a change.
#[derive(Clone, Copy)]
pub(super) struct AgentContribution {
    pub(super) idle_skills: SkillSet,
    pub(super) serving_skills: SkillSet,
}

#[derive(Debug, Default)]
pub(super) struct SkillQueue {
    pub(super) heap: LazyHeap<QueueEntry>,
    pub(super) waiting: u32,
}

/// Per-skill routing state.
#[derive(Debug)]
pub(super) struct SkillState {
    pub(super) channel: Channel,
    pub(super) queue: SkillQueue,
    pub(super) idle: LazyHeap<IdleEntry>,
    /// Ready agents holding nothing who have the skill.
    pub(super) idle_agents: u32,
    /// Ready agents who have the skill.
    pub(super) serving_agents: u32,
    /// Contacts the skill's ready agents can hold at once (1 per voice agent, slots per chat
    /// agent): the divisor of the wait estimate.
    pub(super) serving_capacity: u32,
    /// Moving average of handle time (talk + hold + wrap-up).
    pub(super) handle_ms_average: u64,
    /// Overflow hysteresis: currently overflowing.
    pub(super) overflowing: bool,
}

pub(super) fn capacity_for(channel: Channel, chat_slots: u32) -> u32 {
    match channel {
        Channel::Voice => 1,
        Channel::Chat => chat_slots,
    }
}

pub(super) fn idle_entry_live(
    agents: &[AgentEntry],
    entry: &IdleEntry,
    skill: SkillId,
    channel: Channel,
) -> bool {
    let agent = &agents[entry.index as usize];
    agent.generation == entry.generation()
        && agent.skills.contains(skill)
        && agent.has_room_for(channel)
}
