//! Break-glass reviews that are late: a reminder when three quarters of `review_within`
//! have passed, and an overdue notice when it has all passed, each once per use (the
//! mark is set in the transaction that tells, so two replicas never both tell).

use crate::audit::NewEvent;
use crate::audit::{self, BreakglassOverdue, BreakglassReminded, BreakglassReminder, SYSTEM_ACTOR};
use crate::config::NotifyEvent;
use crate::service::{Service, ServiceError, unix, view};
use crate::store::breakglass as uses;

/// Most reviews told of per sweep and kind (the rest the next sweep).
const BATCH: u32 = 100;

impl Service {
    /// Sends the reminders and overdue notices of break-glass reviews that are due now;
    /// how many were sent.
    pub fn remind_breakglass(&self) -> Result<usize, ServiceError> {
        let now = self.now();
        let mut sent = 0;
        for overdue in [true, false] {
            let due = self
                .store
                .read(|tx| uses::due(tx, unix(now), overdue, BATCH))?;
            for used in due {
                let told = self.store.write(|tx| {
                    if !uses::mark(tx, &used.request_id, overdue, unix(now))? {
                        return Ok::<_, ServiceError>(false);
                    }
                    let verdicts = uses::verdicts(tx, &used.request_id)?.len();
                    let detail = BreakglassReminder {
                        role: used.role.to_string(),
                        invoker: used.invoker.to_string(),
                        review_due: view::rfc3339(used.review_due),
                        verdicts: u32::try_from(verdicts).unwrap_or(u32::MAX),
                        reviews_required: used.reviews_required,
                    };
                    let id = used.request_id.as_str();
                    let (event, notice) = if overdue {
                        let e = NewEvent::on_request(SYSTEM_ACTOR, id, BreakglassOverdue(detail));
                        (e, NotifyEvent::BreakglassOverdue)
                    } else {
                        let e = NewEvent::on_request(SYSTEM_ACTOR, id, BreakglassReminded(detail));
                        (e, NotifyEvent::BreakglassReminded)
                    };
                    audit::append(tx, now, &event)?;
                    self.tell_everyone(tx, now, notice, &used.request_id)?;
                    Ok(true)
                })?;
                sent += usize::from(told);
            }
        }
        Ok(sent)
    }
}
