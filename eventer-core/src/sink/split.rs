//! [`Split`]: a refused request costs only the events that caused the refusal.
//!
//! A batching destination answers for a whole request. When it refuses one because of a
//! single bad event (invalid, or too large), every other event of the request would be
//! lost with it; instead the request is halved and the halves sent again, until the
//! offending event is alone and only it is rejected.

use std::{ops::Range, sync::Arc};

use tracing::warn;

use crate::{Error, ErrorKind, sink::Outcome};

/// Requests allowed per halving level of a batch: isolating `k` refused events among `n`
/// takes at most about `2·k·log2(n)` requests, so this isolates up to 8 of them. A batch
/// in which far more events are refused stops being split there, rather than becoming
/// one request per event.
const REQUESTS_PER_LEVEL: usize = 16;

/// What a destination answered to one request of a [`Split`].
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Every event of the request was stored.
    Delivered,
    /// A transient failure. The request's events, and those not sent yet, are retried by
    /// the pipeline (as [`Outcome::Retry`]) rather than hitting a struggling server again.
    Retry(Arc<Error>),
    /// Refused for what the request carries (an invalid or oversized event): a request
    /// without the offending event would pass. The request is halved and the halves sent
    /// again; an event refused alone is rejected.
    Refused(Arc<Error>),
    /// Refused whatever it carries (bad credentials, a missing destination): no split can
    /// help, so its events, and those not sent yet, are rejected without more requests.
    RejectedAll(Arc<Error>),
}

/// Sends a batch as one request, and splits it while the destination refuses it for its
/// content. A batching destination answers for a whole request: when it refuses one for a
/// single bad event (invalid, or too large), the others would be lost with it; instead
/// the request is halved and the halves sent again, until the offending event is alone
/// and only it is rejected. The sink drives it: send each range
/// [`Split::next_request`] gives as one request, tell [`Split::answer`] how the destination
/// answered, and when no request is left take one [`Outcome`] per event, in order, from
/// [`Split::into_outcomes`].
///
/// Halves are sent left first, so events are stored in their order. One refused event
/// among `n` costs `1 + 2·⌈log2 n⌉` requests; splitting stops after `1 + 16·⌈log2 n⌉`
/// requests, and the ranges still to send then go unsplit (at most one per level) and are
/// rejected whole if refused. The pipeline logs each rejected event with its namespace,
/// object and reason, and counts it.
///
/// ```
/// use std::sync::Arc;
/// use eventer_core::{Error, ErrorKind, Outcome, sink::{Split, Verdict}};
///
/// // A destination that refuses any request holding the value 7.
/// let events = [1, 2, 3, 7, 5, 6, 8, 9];
/// let mut split = Split::new(events.len());
/// let mut requests = Vec::new();
/// while let Some(range) = split.next_request() {
///     requests.push(range.clone());
///     // In a sink: encode `&batch[range]` as one request and `.await` the answer.
///     split.answer(if events[range].contains(&7) {
///         Verdict::Refused(Arc::new(Error::new(ErrorKind::Rejected, "7 is not allowed")))
///     } else {
///         Verdict::Delivered
///     });
/// }
/// assert_eq!(requests, [0..8, 0..4, 0..2, 2..4, 2..3, 3..4, 4..8]);
/// let outcomes = split.into_outcomes();
/// let rejected: Vec<usize> = (0..8).filter(|&i| matches!(outcomes[i], Outcome::Rejected(_))).collect();
/// assert_eq!(rejected, [3], "only the 7 is rejected");
/// ```
#[derive(Debug)]
pub struct Split {
    len: usize,
    /// One per event settled so far: ranges settle left to right.
    outcomes: Vec<Outcome>,
    /// Ranges still to send, the next one last.
    todo: Vec<Range<usize>>,
    /// The range handed out and not answered yet.
    pending: Option<Range<usize>>,
    /// After a failure that is not about content, the outcome of everything not sent yet.
    rest: Option<Outcome>,
    sent: usize,
    budget: usize,
}

impl Split {
    /// A batch of `len` events, to be sent first as one request.
    pub fn new(len: usize) -> Self {
        Split {
            len,
            outcomes: Vec::with_capacity(len),
            todo: Vec::from_iter((len > 0).then_some(0..len)),
            pending: None,
            rest: None,
            sent: 0,
            budget: 1 + REQUESTS_PER_LEVEL * len.next_power_of_two().trailing_zeros() as usize,
        }
    }

    /// The events to send next as one request; `None` once every event has its outcome.
    /// Until it is answered, the same range is returned again.
    pub fn next_request(&mut self) -> Option<Range<usize>> {
        while self.pending.is_none() {
            let range = self.todo.pop()?;
            match self.rest.clone() {
                Some(rest) => self.settle(range, rest),
                None => self.pending = Some(range),
            }
        }
        self.pending.clone()
    }

    /// How the destination answered the request last returned by [`Split::next_request`]
    /// (ignored when there is none).
    pub fn answer(&mut self, verdict: Verdict) {
        let Some(range) = self.pending.take() else { return };
        self.sent += 1;
        let outcome = match verdict {
            Verdict::Delivered => Outcome::Delivered,
            Verdict::Retry(e) => self.rest.insert(Outcome::Retry(e)).clone(),
            Verdict::RejectedAll(e) => self.rest.insert(Outcome::Rejected(e)).clone(),
            Verdict::Refused(_) if range.len() > 1 && self.sent < self.budget => {
                let mid = range.start + range.len() / 2;
                self.todo.push(mid..range.end);
                self.todo.push(range.start..mid);
                return;
            }
            Verdict::Refused(e) => {
                if range.len() > 1 {
                    warn!(
                        events = range.len(),
                        requests = self.sent,
                        error = %e.chain(),
                        "Too many refused requests to isolate the offending events; rejecting these together."
                    );
                }
                Outcome::Rejected(e)
            }
        };
        self.settle(range, outcome);
    }

    /// One outcome per event, in order. Events never sent or answered (the loop ended
    /// early) are retried.
    pub fn into_outcomes(mut self) -> Vec<Outcome> {
        let unsent = Arc::new(Error::new(ErrorKind::Unexpected, "event not sent"));
        self.outcomes.resize(self.len, Outcome::Retry(unsent));
        self.outcomes
    }

    fn settle(&mut self, range: Range<usize>, outcome: Outcome) {
        self.outcomes.extend(std::iter::repeat_n(outcome, range.len()));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::{
        Event, Pipeline, Route, SharedEvent, Sink,
        testing::{MemorySink, VecSource},
    };

    fn error(message: &str) -> Arc<Error> {
        Arc::new(Error::new(ErrorKind::Rejected, message))
    }

    /// Send `n` events to a destination refusing any request that holds one of `bad`;
    /// the indices rejected and the requests made.
    fn split(n: usize, bad: &HashSet<usize>) -> (Vec<usize>, usize) {
        let mut requests = 0;
        let mut split = Split::new(n);
        while let Some(range) = split.next_request() {
            requests += 1;
            split.answer(if range.clone().any(|i| bad.contains(&i)) {
                Verdict::Refused(error("bad"))
            } else {
                Verdict::Delivered
            });
        }
        let outcomes = split.into_outcomes();
        assert_eq!(outcomes.len(), n);
        let rejected = (0..n).filter(|&i| matches!(outcomes[i], Outcome::Rejected(_))).collect();
        assert!(outcomes.iter().all(|o| matches!(o, Outcome::Delivered | Outcome::Rejected(_))));
        (rejected, requests)
    }

    #[test]
    fn only_the_refused_events_are_rejected_in_few_requests() {
        for (n, bad) in [(1, vec![0]), (2, vec![1]), (416, vec![0]), (416, vec![415]), (4096, vec![7, 2000, 4095])] {
            let bad: HashSet<usize> = bad.into_iter().collect();
            let (rejected, requests) = split(n, &bad);
            assert_eq!(rejected.iter().copied().collect::<HashSet<_>>(), bad, "n={n}");
            let log2 = n.next_power_of_two().trailing_zeros() as usize;
            assert!(requests <= 1 + 2 * bad.len() * log2, "n={n}: {requests} requests");
        }
        assert_eq!(split(500, &HashSet::new()), (vec![], 1), "a clean batch is one request");
    }

    #[test]
    fn a_batch_refused_throughout_is_not_split_into_a_request_per_event() {
        let all: HashSet<usize> = (0..4096).collect();
        let (rejected, requests) = split(4096, &all);
        assert_eq!(rejected.len(), 4096);
        // The budget (1 + 16·12), then at most one request per range left over (one per level).
        assert!(requests <= 1 + 16 * 12 + 12, "{requests} requests");
    }

    #[test]
    fn other_failures_end_the_batch_without_splitting() {
        for verdict in [Verdict::Retry(error("busy")), Verdict::RejectedAll(error("unauthorized"))] {
            let mut requests = Vec::new();
            let mut split = Split::new(8);
            // Event 1 is refused for its content; the request after it fails otherwise.
            while let Some(range) = split.next_request() {
                requests.push(range.clone());
                split.answer(match range.start {
                    _ if range.contains(&1) => Verdict::Refused(error("bad")),
                    0 => Verdict::Delivered,
                    _ => verdict.clone(),
                });
            }
            let outcomes = split.into_outcomes();
            assert_eq!(requests, [0..8, 0..4, 0..2, 0..1, 1..2, 2..4], "{verdict:?}: nothing sent after it");
            let kinds: Vec<&str> = outcomes
                .iter()
                .map(|o| match o {
                    Outcome::Delivered => "delivered",
                    Outcome::Rejected(e) if e.message() == "bad" => "bad",
                    Outcome::Rejected(_) => "rejected",
                    Outcome::Retry(_) => "retry",
                    Outcome::Defer(_) => "defer",
                })
                .collect();
            let failed = if matches!(verdict, Verdict::Retry(_)) { "retry" } else { "rejected" };
            assert_eq!(kinds, [["delivered", "bad"].as_slice(), &[failed; 6]].concat(), "{verdict:?}");
        }
    }

    /// A sink refusing whole requests that hold an event with reason `Poison`.
    struct Picky(MemorySink);

    #[async_trait::async_trait]
    impl Sink for Picky {
        async fn send(&mut self, batch: &[SharedEvent]) -> Vec<Outcome> {
            let mut split = Split::new(batch.len());
            while let Some(range) = split.next_request() {
                let part = &batch[range];
                split.answer(if part.iter().any(|e| e.reason == "Poison") {
                    Verdict::Refused(error("invalid log"))
                } else {
                    let delivered = self.0.send(part).await;
                    assert!(delivered.iter().all(|o| matches!(o, Outcome::Delivered)));
                    Verdict::Delivered
                });
            }
            split.into_outcomes()
        }
    }

    #[test]
    fn an_unfinished_split_retries_what_was_not_sent() {
        let mut split = Split::new(4);
        let first = split.next_request();
        assert_eq!(split.next_request(), first, "the same range until it is answered");
        split.answer(Verdict::Refused(error("bad")));
        assert_eq!(split.next_request(), Some(0..2));
        split.answer(Verdict::Delivered);
        let outcomes = split.into_outcomes();
        assert!(matches!(outcomes[..], [Outcome::Delivered, Outcome::Delivered, Outcome::Retry(_), Outcome::Retry(_)]));
        assert!(Split::new(0).next_request().is_none());
    }

    #[tokio::test]
    async fn in_a_pipeline_one_poison_event_costs_only_itself() {
        let events: Vec<Event> = (0..100)
            .map(|i| {
                let reason = if i == 40 { "Poison" } else { "Pulled" };
                Event::builder().kind("Pod").object("shop", &format!("web-{i}")).reason(reason).build()
            })
            .collect();
        let store = MemorySink::new();
        let report = Pipeline::new(Box::new(VecSource::new(events)))
            .route(Route::new("picky", Box::new(Picky(store.clone()))))
            .run(std::future::pending())
            .await
            .unwrap();
        let s = &report.sinks[0];
        assert_eq!((s.delivered, s.failed, s.retried), (99, 1, 0), "{s:?}");
        assert_eq!(store.len(), 99, "every other event stored once");
        assert!(!store.reasons().contains(&"Poison".to_owned()));
    }
}
