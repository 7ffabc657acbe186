//! Drained sites, cluster-wide tokens and per-site policies in the replicated state.

use super::*;
use crate::state::command::TokenGrant;

fn grant(byte: u8, name: &str, role: Role) -> TokenGrant {
    TokenGrant {
        sha256: [byte; 32],
        name: name.to_string(),
        role,
    }
}

fn at_site(
    harness: &mut Harness,
    site: &str,
    at_ms: u64,
    command: Command,
) -> Result<Outcome, ApplyError> {
    harness.index += 1;
    let envelope = Envelope {
        at_ms,
        actor: Actor::system(),
        site: site.to_string(),
        command,
    };
    harness.state.apply(harness.index, &envelope)
}

#[test]
fn drain_and_undrain_are_replicated_flags() {
    let mut harness = Harness::new();
    let drain = |drained| Command::SetSiteDrained {
        site: "msk".to_string(),
        drained,
    };
    harness.run(1, drain(true)).unwrap();
    harness.run(2, drain(true)).unwrap();
    assert!(harness.state.is_drained("msk"));
    assert!(!harness.state.is_drained("ekb"));
    harness.run(3, drain(false)).unwrap();
    assert!(!harness.state.is_drained("msk"));
    assert_eq!(harness.state.drained_sites().count(), 0);
}

#[test]
fn a_seed_merges_but_never_overwrites_nor_revives_a_revoked_token() {
    let mut harness = Harness::new();
    let seed = |tokens| Command::GrantTokens { tokens, seed: true };
    harness
        .run(
            1,
            seed(vec![
                grant(1, "root", Role::Admin),
                grant(2, "pbx", Role::Gateway),
            ]),
        )
        .unwrap();
    // An operator changes pbx's role; a later seed with the old role leaves it.
    harness
        .run(
            2,
            Command::GrantTokens {
                tokens: vec![grant(2, "pbx", Role::Supervisor)],
                seed: false,
            },
        )
        .unwrap();
    harness
        .run(
            3,
            seed(vec![
                grant(2, "pbx", Role::Gateway),
                grant(3, "ekb-root", Role::Admin),
            ]),
        )
        .unwrap();
    assert_eq!(
        harness.state.token(&[2; 32]).unwrap().role,
        Role::Supervisor
    );
    assert_eq!(harness.state.token(&[3; 32]).unwrap().name, "ekb-root");
    // Revoked, then seeded again by a restart: still revoked.
    harness
        .run(4, Command::RevokeToken { sha256: [2; 32] })
        .unwrap();
    harness
        .run(5, seed(vec![grant(2, "pbx", Role::Gateway)]))
        .unwrap();
    assert!(harness.state.token(&[2; 32]).unwrap().revoked);
    // An operator's explicit add brings it back.
    harness
        .run(
            6,
            Command::GrantTokens {
                tokens: vec![grant(2, "pbx", Role::Gateway)],
                seed: false,
            },
        )
        .unwrap();
    assert!(!harness.state.token(&[2; 32]).unwrap().revoked);
}

#[test]
fn the_last_active_admin_token_cannot_be_revoked() {
    let mut harness = Harness::new();
    harness
        .run(
            1,
            Command::GrantTokens {
                tokens: vec![
                    grant(1, "root", Role::Admin),
                    grant(2, "second", Role::Admin),
                ],
                seed: true,
            },
        )
        .unwrap();
    harness
        .run(2, Command::RevokeToken { sha256: [1; 32] })
        .unwrap();
    let refused = harness.run(3, Command::RevokeToken { sha256: [2; 32] });
    assert!(
        matches!(refused, Err(ApplyError::Conflict(_))),
        "{refused:?}"
    );
    assert!(!harness.state.token(&[2; 32]).unwrap().revoked);
    let unknown = harness.run(4, Command::RevokeToken { sha256: [9; 32] });
    assert!(
        matches!(unknown, Err(ApplyError::Conflict(_))),
        "{unknown:?}"
    );
}

/// Regression (issue 9 item 6): the policy replicated last used to replace every site's.
#[test]
fn each_site_keeps_its_own_policy_whoever_proposed_last() {
    let mut harness = Harness::new();
    let policy = |delay_ms| StatePolicy {
        abandoned_callback_delay_ms: delay_ms,
        ..StatePolicy::default()
    };
    let set = |site: &str, delay_ms| Command::SetSitePolicy {
        site: site.to_string(),
        policy: policy(delay_ms),
    };
    at_site(&mut harness, "ekb", 1, set("ekb", 600_000)).unwrap();
    at_site(&mut harness, "msk", 2, set("msk", 0)).unwrap();
    let abandoned = |caller: &str| Command::CreateAbandonedCallback {
        caller: caller.to_string(),
        skill: "line1".to_string(),
        ordering_time_ms: 5,
    };
    let Outcome::CallbacksCreated(at_ekb) =
        at_site(&mut harness, "ekb", 10, abandoned("+79160000001")).unwrap()
    else {
        panic!("no callback");
    };
    let Outcome::CallbacksCreated(at_msk) =
        at_site(&mut harness, "msk", 10, abandoned("+79160000002")).unwrap()
    else {
        panic!("no callback");
    };
    assert_eq!(
        harness.state.callback(at_ekb[0]).unwrap().due_at_ms,
        600_010
    );
    assert_eq!(harness.state.callback(at_msk[0]).unwrap().due_at_ms, 10);
    assert_eq!(harness.state.site_policy("ekb"), Some(&policy(600_000)));
    // A site that never proposed one follows the cluster default.
    assert_eq!(harness.state.policy_for("nsk"), &StatePolicy::default());
}

#[test]
fn site_control_survives_a_snapshot() {
    let shared = SharedState::new();
    let mut index = 0;
    let mut apply = |command: Command| {
        index += 1;
        let bytes = encode_envelope(&envelope(1, command)).unwrap();
        decode_response(&shared.apply_entry(index, &bytes))
            .unwrap()
            .unwrap();
    };
    apply(Command::SetSiteDrained {
        site: "nsk".to_string(),
        drained: true,
    });
    apply(Command::GrantTokens {
        tokens: vec![grant(7, "root", Role::Admin)],
        seed: true,
    });
    let snapshot = shared.snapshot().unwrap();
    let restored = SharedState::new();
    restored.restore(&snapshot).unwrap();
    restored.read(|state| {
        assert!(state.is_drained("nsk"));
        assert_eq!(state.token(&[7; 32]).unwrap().name, "root");
    });
}
