//! Reservations: items held at a pharmacy until an expiry, which the time of every applied
//! command sweeps (amortised) and announces as a [`StateEvent`].

use super::super::command::{ApplyError, Envelope, Outcome, Response};
use super::super::model::{OrderItem, Reservation, ReservationId, ReservationStatus, TimestampMs};
use super::retention::RecordKind;
use super::{RESERVATION_EXPIRIES_PER_APPLY_MAX, ReplicatedState, StateEvent};

impl ReplicatedState {
    pub(super) fn create_reservation(
        &mut self,
        envelope: &Envelope,
        caller: &str,
        pharmacy: &str,
        items: &[OrderItem],
        expires_at_ms: TimestampMs,
    ) -> Response {
        if expires_at_ms <= envelope.at_ms {
            return Err(ApplyError::Conflict(
                "expires_at_ms must be in the future".to_string(),
            ));
        }
        let id = self.allocate_id();
        self.reservations.insert(
            id,
            Reservation {
                id,
                site: envelope.site.clone(),
                caller: caller.to_string(),
                pharmacy: pharmacy.to_string(),
                items: items.to_vec(),
                expires_at_ms,
                status: ReservationStatus::Active,
                created_at_ms: envelope.at_ms,
            },
        );
        self.reservation_expiries.insert((expires_at_ms, id));
        Ok(Outcome::ReservationCreated(id))
    }

    /// Collects (`collected`) or cancels an active reservation.
    pub(super) fn finish_reservation(
        &mut self,
        at_ms: TimestampMs,
        reservation: ReservationId,
        collected: bool,
    ) -> Response {
        let record = self
            .reservations
            .get_mut(&reservation)
            .ok_or_else(|| ApplyError::not_found("reservation", reservation))?;
        if record.status != ReservationStatus::Active {
            return Err(ApplyError::Conflict(format!(
                "reservation {reservation} is {:?}",
                record.status
            )));
        }
        record.status = if collected {
            ReservationStatus::Collected
        } else {
            ReservationStatus::Cancelled
        };
        let key = (record.expires_at_ms, reservation);
        self.reservation_expiries.remove(&key);
        self.retain_until(at_ms, RecordKind::Reservation, reservation);
        Ok(Outcome::Done)
    }

    pub(super) fn expire_reservations(&mut self, at_ms: TimestampMs, events: &mut Vec<StateEvent>) {
        for _ in 0..RESERVATION_EXPIRIES_PER_APPLY_MAX {
            let Some(&(expires_at_ms, id)) = self.reservation_expiries.first() else {
                return;
            };
            if expires_at_ms > at_ms {
                return;
            }
            self.reservation_expiries.remove(&(expires_at_ms, id));
            if let Some(reservation) = self.reservations.get_mut(&id)
                && reservation.status == ReservationStatus::Active
            {
                reservation.status = ReservationStatus::Expired;
                events.push(StateEvent::ReservationExpired {
                    reservation: id,
                    site: reservation.site.clone(),
                    pharmacy: reservation.pharmacy.clone(),
                    expires_at_ms,
                });
                self.retain_until(at_ms, RecordKind::Reservation, id);
            }
        }
    }
}
