//! Admission control: a memory budget for requests in flight.
//!
//! Every request is charged, as its body arrives, [`EXPANSION`] times its size: the body
//! itself, its decoded form, its mapped records and their encoded log frame all live at once.
//! A request that would exceed the budget is refused at once with a retryable error (HTTP 429,
//! gRPC `RESOURCE_EXHAUSTED` with RetryInfo) and its memory freed, so under any overload the
//! memory held by requests stays within `receivers.memory_budget_mib`. The charge is released
//! when the response is sent.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of memory charged per byte of request body received.
pub const EXPANSION: usize = 4;

/// The budget is counted in KiB so that a `u32` permit count covers terabytes.
const UNIT: usize = 1024;

/// The shared budget.
#[derive(Debug, Clone)]
pub struct Admission {
    sem: Arc<Semaphore>,
    units: usize,
}

/// The budget is exhausted: too much data is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too much data in flight (receivers.memory_budget_mib is spent)")]
pub struct Exhausted;

impl Admission {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        let units = bytes.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS);
        Self {
            sem: Arc::new(Semaphore::new(units)),
            units,
        }
    }

    /// A new, empty charge for one request.
    pub fn charge(&self) -> Charge {
        Charge {
            admission: self.clone(),
            held: None,
            units: 0,
            bytes: 0,
        }
    }

    /// Bytes charged to requests now.
    pub fn in_use_bytes(&self) -> usize {
        (self.units - self.sem.available_permits()) * UNIT
    }
}

/// What one request holds of the budget; dropping it gives everything back.
#[derive(Debug)]
pub struct Charge {
    admission: Admission,
    held: Option<OwnedSemaphorePermit>,
    /// Units held.
    units: usize,
    /// Bytes charged (rounded up to units when acquiring).
    bytes: usize,
}

impl Charge {
    /// Charges for `body_bytes` more bytes of request body, without waiting.
    pub fn add(&mut self, body_bytes: usize) -> Result<(), Exhausted> {
        let bytes = self
            .bytes
            .saturating_add(body_bytes.saturating_mul(EXPANSION));
        let want = bytes.div_ceil(UNIT);
        let more = want.saturating_sub(self.units);
        if more == 0 {
            self.bytes = bytes;
            return Ok(());
        }
        let n = u32::try_from(more).map_err(|_| Exhausted)?;
        let permit = Arc::clone(&self.admission.sem)
            .try_acquire_many_owned(n)
            .map_err(|_| Exhausted)?;
        match &mut self.held {
            Some(h) => h.merge(permit),
            None => self.held = Some(permit),
        }
        self.units = want;
        self.bytes = bytes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_add_up_and_come_back_on_drop() {
        let a = Admission::new(64 * 1024);
        let mut one = a.charge();
        one.add(8 * 1024).unwrap();
        assert_eq!(a.in_use_bytes(), 32 * 1024);
        let mut two = a.charge();
        two.add(4 * 1024).unwrap();
        assert_eq!(two.add(4 * 1024 + 1), Err(Exhausted), "past the budget");
        assert_eq!(
            a.in_use_bytes(),
            48 * 1024,
            "a refused charge takes nothing"
        );
        drop(one);
        two.add(4 * 1024).unwrap();
        drop(two);
        assert_eq!(a.in_use_bytes(), 0);
    }

    #[test]
    fn small_chunks_round_up_once() {
        let a = Admission::new(1 << 20);
        let mut c = a.charge();
        for _ in 0..1024 {
            c.add(1).unwrap();
        }
        assert_eq!(a.in_use_bytes(), 4 * 1024);
    }
}
