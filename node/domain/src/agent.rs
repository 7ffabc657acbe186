//! Agents as the driver describes them (skills, certificates, chat slots) and the states
//! routing reports for them. The agent state machine itself lives in [`crate::Site`].

use crate::ids::{AgentId, SkillId, TimeMs};
use serde::{Deserialize, Serialize};

/// The most chat contacts an agent may hold at once; bounds the per-agent work list.
pub const CHAT_SLOTS_MAX: u8 = 8;

/// Why an agent is not ready. A small code, not a String; APIs show it by name
/// ([`NotReadyReason::name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NotReadyReason(pub u16);

impl NotReadyReason {
    /// Set by routing when an agent let an offer time out ("no answer", as mature ACDs do).
    pub const NO_ANSWER: NotReadyReason = NotReadyReason(1);
    /// Set by routing when an agent rejected an offer, so the contact is not offered straight back.
    pub const REJECTED: NotReadyReason = NotReadyReason(2);
    /// A break.
    pub const BREAK: NotReadyReason = NotReadyReason(3);
    /// Training, meeting, back-office work.
    pub const OTHER_WORK: NotReadyReason = NotReadyReason(4);

    /// The reasons with a name of their own; any other code is named `code_<n>`.
    const NAMED: [(NotReadyReason, &'static str); 4] = [
        (NotReadyReason::NO_ANSWER, "no_answer"),
        (NotReadyReason::REJECTED, "rejected"),
        (NotReadyReason::BREAK, "break"),
        (NotReadyReason::OTHER_WORK, "other_work"),
    ];

    /// The reason's name as APIs show it: `no_answer`, `rejected`, `break`, `other_work`, or
    /// `code_<n>` for a site-defined code.
    pub fn name(self) -> std::borrow::Cow<'static, str> {
        Self::NAMED
            .iter()
            .find(|(reason, _)| *reason == self)
            .map_or_else(
                || std::borrow::Cow::Owned(format!("code_{}", self.0)),
                |(_, name)| std::borrow::Cow::Borrowed(*name),
            )
    }

    /// The reason named `name` (the inverse of [`NotReadyReason::name`]); `None` for a name
    /// that is neither a known one nor `code_<n>`.
    pub fn from_name(name: &str) -> Option<NotReadyReason> {
        if let Some((reason, _)) = Self::NAMED.iter().find(|(_, known)| *known == name) {
            return Some(*reason);
        }
        let code = name.strip_prefix("code_")?;
        if code.is_empty() || !code.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        code.parse().ok().map(NotReadyReason)
    }
}

/// A skill granted to an agent, optionally only until a moment (e.g. a line-2 pharma
/// certificate). Routing never offers work of this skill at or after `valid_until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillGrant {
    /// The skill.
    pub skill: SkillId,
    /// Exclusive end of validity; `None` means no expiry.
    #[serde(default)]
    pub valid_until: Option<TimeMs>,
}

impl SkillGrant {
    /// A grant without expiry.
    pub fn permanent(skill: SkillId) -> SkillGrant {
        SkillGrant {
            skill,
            valid_until: None,
        }
    }

    /// Whether the grant is valid at `now`.
    #[inline]
    pub fn is_valid_at(&self, now: TimeMs) -> bool {
        self.valid_until.is_none_or(|until| now < until)
    }
}

/// An agent's static description, given to [`crate::Site::add_agent`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Unique id.
    pub id: AgentId,
    /// Skills with optional validity.
    pub skills: Vec<SkillGrant>,
    /// How many chats the agent handles at once (1..=[`CHAT_SLOTS_MAX`]). Voice always takes
    /// the whole agent.
    #[serde(default = "default_chat_slots")]
    pub chat_slots: u8,
}

fn default_chat_slots() -> u8 {
    1
}

impl AgentSpec {
    /// An agent with permanent skills and one chat slot.
    pub fn new(id: AgentId, skills: &[SkillId]) -> AgentSpec {
        AgentSpec {
            id,
            skills: skills.iter().copied().map(SkillGrant::permanent).collect(),
            chat_slots: 1,
        }
    }
}

/// An agent's state as shown on wallboards and used for occupancy. Derived from the agent's
/// presence and the contacts it holds: Busy (any contact talking) wins over Reserved (an offer
/// ringing), which wins over WrapUp; otherwise the presence shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Not logged in; not staffed.
    LoggedOut,
    /// Ready and holding nothing.
    Available,
    /// An offer is ringing on the agent's desktop.
    Reserved,
    /// Talking (or chatting) with at least one contact.
    Busy,
    /// Finishing after-contact work.
    WrapUp,
    /// Logged in but not taking work.
    NotReady(NotReadyReason),
}

impl AgentState {
    /// Whether the agent counts as staffed (logged in) in this state.
    pub fn is_staffed(self) -> bool {
        !matches!(self, AgentState::LoggedOut)
    }

    /// The state's name as APIs show it (`logged_out`, `available`, `reserved`, `busy`,
    /// `wrap_up`, `not_ready`); the not-ready reason is [`AgentState::not_ready_reason`].
    pub fn name(self) -> &'static str {
        match self {
            AgentState::LoggedOut => "logged_out",
            AgentState::Available => "available",
            AgentState::Reserved => "reserved",
            AgentState::Busy => "busy",
            AgentState::WrapUp => "wrap_up",
            AgentState::NotReady(_) => "not_ready",
        }
    }

    /// The not-ready reason, in the not-ready state only.
    pub fn not_ready_reason(self) -> Option<NotReadyReason> {
        match self {
            AgentState::NotReady(reason) => Some(reason),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reasons and states have one name each, and a reason's name reads back as the reason.
    #[test]
    fn reason_names_round_trip() {
        for code in [1_u16, 2, 3, 4, 0, 17, u16::MAX] {
            let reason = NotReadyReason(code);
            assert_eq!(NotReadyReason::from_name(&reason.name()), Some(reason));
        }
        assert_eq!(NotReadyReason::BREAK.name(), "break");
        assert_eq!(NotReadyReason(17).name(), "code_17");
        for bad in [
            "",
            "lunch",
            "code_",
            "code_x",
            "code_-1",
            "code_70000",
            "code_+1",
        ] {
            assert_eq!(NotReadyReason::from_name(bad), None, "{bad}");
        }
        let state = AgentState::NotReady(NotReadyReason::BREAK);
        assert_eq!(state.name(), "not_ready");
        assert_eq!(state.not_ready_reason(), Some(NotReadyReason::BREAK));
        assert_eq!(AgentState::Busy.not_ready_reason(), None);
    }
}
