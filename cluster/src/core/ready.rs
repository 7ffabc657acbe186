//! The Ready loop: send what may leave before the write, persist, send the rest, apply
//! committed entries (answering proposals), install received snapshots, take our own.

use super::*;

impl<S: Storage, M: StateMachine> RaftCore<S, M> {
    pub(super) fn handle_ready(
        &mut self,
        send_early: &mut Option<&mut dyn FnMut(NodeId, PeerMessage) -> bool>,
        unsent: &mut Vec<(NodeId, MessageType)>,
    ) -> Result<(), ClusterError> {
        let mut ready = self.raw.ready();

        // 1. What may leave before the local write (a leader's appends), then persist:
        // nothing else leaves this node before its own log and vote are durable.
        let early = ready.take_messages();
        self.send_now(early, send_early, unsent);
        if crate::mutations::enabled(crate::mutations::Mutation::SendBeforePersist)
            && let Some(send) = send_early
        {
            for message in ready.take_persisted_messages() {
                if let Some((to, message)) = self.outgoing(message) {
                    send(to, message);
                }
            }
        }
        let snapshot = (!ready.snapshot().is_empty()).then(|| ready.snapshot().clone());
        // A received snapshot is decoded and restored before it is persisted: one the state
        // machine cannot restore stops the node with its store as it was, instead of a store
        // that holds it and fails on every start.
        let received = match &snapshot {
            Some(snapshot) => {
                let body = self.take_received_body(snapshot)?;
                let envelope = snapshots::restore_from_body(&mut self.state_machine, &body)?;
                Some((body, envelope))
            }
            None => None,
        };
        self.raw.mut_store().persist(PersistRequest {
            snapshot: snapshot
                .as_ref()
                .zip(received.as_ref().map(|(body, _)| body)),
            entries: ready.entries(),
            hard_state: ready.hs(),
            sync: ready.must_sync(),
        })?;
        if let (Some(snapshot), Some((_, envelope))) = (&snapshot, received) {
            self.install_snapshot(snapshot, envelope);
        }

        // 2. Send what needed the write, before applying: a follower's acknowledgement (on
        // the commit's critical path) does not wait for the state machine.
        let messages = ready.take_persisted_messages();
        self.send_now(messages, send_early, unsent);

        // 3. Apply.
        let committed = ready.take_committed_entries();
        self.apply_entries(committed)?;
        self.step_down_if_removed();
        for read_state in ready.take_read_states() {
            self.handle_read_state(read_state);
        }

        // 4. Advance, then the light ready.
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit)?;
        }
        let messages = light.take_messages();
        self.queue_raft_messages(messages);
        let committed = light.take_committed_entries();
        self.apply_entries(committed)?;
        self.step_down_if_removed();
        self.raw.advance_apply();
        self.after_ready_snapshots();
        Ok(())
    }

    /// The bookkeeping of a received snapshot once it is persisted (the state machine was
    /// restored from it before).
    pub(super) fn install_snapshot(&mut self, snapshot: &Snapshot, envelope: SnapshotEnvelope) {
        let metadata = snapshot.get_metadata();
        self.sessions = Sessions::from_table(envelope.sessions);
        self.restore_known_stores(envelope.known_stores);
        for (id, address) in envelope.peer_addresses {
            if id != self.config.node_id && self.peer_addresses.get(&id) != Some(&address) {
                self.output.peer_updates.push(PeerUpdate::Set {
                    id,
                    address: address.clone(),
                });
            }
            self.peer_addresses.insert(id, address);
        }
        self.conf_state = metadata.get_conf_state().clone();
        self.forget_former_members();
        self.note_readded(metadata.index);
        self.applied = metadata.index;
        self.snapshot_index = metadata.index;
        self.counters.snapshots_installed += 1;
        // Our own entries up to the snapshot may or may not be in it: the outcome is unknown.
        let covered: Vec<u64> = self
            .appended
            .range(..=metadata.index)
            .map(|(i, _)| *i)
            .collect();
        for index in covered {
            if let Some(appended) = self.appended.remove(&index) {
                self.fail_appended(appended.kind, Failure::TimedOut);
            }
        }
        tracing::info!(
            node_id = self.config.node_id,
            index = metadata.index,
            "installed a snapshot from the leader"
        );
    }

    /// Sends `messages` at once through `send` when the driver gave one (failures noted in
    /// `unsent`), else queues them in the output.
    fn send_now(
        &mut self,
        messages: Vec<RaftMessage>,
        send: &mut Option<&mut dyn FnMut(NodeId, PeerMessage) -> bool>,
        unsent: &mut Vec<(NodeId, MessageType)>,
    ) {
        let Some(send) = send else {
            self.queue_raft_messages(messages);
            return;
        };
        for message in messages {
            let message_type = message.get_msg_type();
            if let Some((to, message)) = self.outgoing(message)
                && !send(to, message)
            {
                unsent.push((to, message_type));
            }
        }
    }

    pub(super) fn queue_raft_messages(&mut self, messages: Vec<RaftMessage>) {
        for message in messages {
            if let Some(outgoing) = self.outgoing(message) {
                self.output.messages.push(outgoing);
            }
        }
    }

    /// A raft message on its way out, or `None` when it must not leave.
    pub(super) fn outgoing(&mut self, message: RaftMessage) -> Option<(NodeId, PeerMessage)> {
        let message_type = message.get_msg_type();
        if self.identity.rejoin_required()
            && matches!(
                message_type,
                MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
            )
        {
            // A store that lost acknowledged entries must not lead either.
            return None;
        }
        if message_type == MessageType::MsgSnapshot {
            let to = message.to;
            let message = self.snapshot_message(message)?;
            self.snapshot_sends.insert(
                to,
                SnapshotSend {
                    progress_tick: self.tick,
                    bytes_sent: None,
                },
            );
            return Some((to, message));
        }
        Some((message.to, PeerMessage::Raft(Box::new(message))))
    }

    pub(super) fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<(), ClusterError> {
        for entry in entries {
            let index = entry.index;
            if index <= self.applied {
                continue;
            }
            let (ours, replaced) = match self.appended.remove(&index) {
                Some(appended)
                    if entry.term == appended.term
                        && EntryTag::decode(&entry.context) == Some(appended.tag) =>
                {
                    (Some(appended), None)
                }
                other => (None, other),
            };
            if let Some(appended) = replaced {
                let conf_change_refused = matches!(appended.kind, AppendedKind::Membership(_))
                    && entry.term == appended.term
                    && entry.get_entry_type() == EntryType::EntryNormal
                    && entry.data.is_empty();
                match appended.kind {
                    // raft-rs appended an empty entry in the conf change's place (same term,
                    // same index): another change was still pending.
                    AppendedKind::Membership(id) if conf_change_refused => {
                        self.output.completions.push(Completion::Membership {
                            id,
                            result: Err(MembershipError::Rejected(
                                "another membership change is still in progress".to_owned(),
                            )),
                        });
                    }
                    kind => self.fail_appended(kind, Failure::Dropped),
                }
            }
            match entry.get_entry_type() {
                EntryType::EntryNormal => {
                    if entry.data.is_empty()
                        && let Some(driver_entry) = DriverEntry::decode(&entry.context)
                    {
                        self.apply_driver_entry(driver_entry);
                    }
                    let first_time = EntryTag::decode(&entry.context)
                        .is_none_or(|tag| self.sessions.record(tag));
                    if !entry.data.is_empty() && !first_time {
                        tracing::debug!(index, "entry of an already applied proposal skipped");
                        if let Some(appended) = ours {
                            // Applied before under the same tag; its response is gone.
                            self.fail_appended(appended.kind, Failure::TimedOut);
                        }
                        self.applied = index;
                        continue;
                    }
                    let response = (!entry.data.is_empty())
                        .then(|| self.state_machine.apply(index, &entry.data));
                    if let Some(appended) = ours {
                        self.complete_appended(index, appended.kind, response);
                    }
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    let result = self.apply_conf_change(&entry);
                    if let Some(appended) = ours {
                        match (appended.kind, result) {
                            (AppendedKind::Membership(id), result) => {
                                self.output
                                    .completions
                                    .push(Completion::Membership { id, result });
                            }
                            (kind, _) => self.fail_appended(kind, Failure::Dropped),
                        }
                    }
                }
            }
            self.applied = index;
        }
        Ok(())
    }

    /// Remember our entry at `index`. An entry of ours recorded there before was appended in
    /// an earlier term and has since been truncated from this log: it can no longer commit (a
    /// leader never truncates a committed entry), so it is answered `Dropped` now — without
    /// this its caller waited forever (found by the simulation: seed 3001118).
    pub(super) fn record_appended(&mut self, index: u64, appended: Appended) {
        let term = appended.term;
        if let Some(previous) = self.appended.insert(index, appended) {
            debug_assert!(
                previous.term < term,
                "two entries of ours at index {index} in term {term}"
            );
            self.fail_appended(previous.kind, Failure::Dropped);
        }
    }

    pub(super) fn complete_appended(
        &mut self,
        index: u64,
        kind: AppendedKind,
        response: Option<Vec<u8>>,
    ) {
        match (kind, response) {
            (AppendedKind::Command(Origin::Local(id)), Some(response)) => {
                self.output.completions.push(Completion::Propose {
                    id,
                    result: Ok(response),
                });
            }
            (AppendedKind::Command(Origin::Remote { from, request_id }), Some(response)) => {
                self.output.messages.push((
                    from,
                    PeerMessage::ForwardReply {
                        request_id,
                        index,
                        result: Ok(response),
                    },
                ));
            }
            // An empty normal entry where a conf change was expected: raft-rs replaced it
            // because another membership change was still pending.
            (AppendedKind::Membership(id), _) => {
                self.output.completions.push(Completion::Membership {
                    id,
                    result: Err(MembershipError::Rejected(
                        "another membership change is still in progress".to_owned(),
                    )),
                });
            }
            (kind, None) => self.fail_appended(kind, Failure::Dropped),
        }
    }

    pub(super) fn fail_appended(&mut self, kind: AppendedKind, failure: Failure) {
        match kind {
            AppendedKind::Command(Origin::Local(id)) => {
                self.output.completions.push(Completion::Propose {
                    id,
                    result: Err(failure.propose_error()),
                });
            }
            AppendedKind::Command(Origin::Remote { from, request_id }) => {
                // The forwarder times out on its own; only a certain drop is worth a message.
                if failure == Failure::Dropped {
                    self.output.messages.push((
                        from,
                        PeerMessage::ForwardReply {
                            request_id,
                            index: 0,
                            result: Err(RemoteError::Dropped),
                        },
                    ));
                }
            }
            AppendedKind::Membership(id) => {
                self.output.completions.push(Completion::Membership {
                    id,
                    result: Err(failure.membership_error()),
                });
            }
        }
    }
}
