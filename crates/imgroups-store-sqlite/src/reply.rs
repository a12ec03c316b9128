//! Answering the requests of a commit once it is durable, with one wake-up of the runtime.
//!
//! Waking each waiting request from the syncer's thread costs a syscall per request and, where
//! the runtime shares the syncer's CPU, two context switches each: the woken runtime preempts
//! the syncer, sends one response and sleeps again (BENCHMARKS.md, session 4). Instead the
//! first request still waiting gets its answer carrying the others' ([`Carried`]), and hands
//! them out from the runtime's thread, where waking a task is a queue push.

use imgroups_core::{Error, Outcome, Result};
use tokio::sync::oneshot;

/// What a request's reply channel carries: its answer and, for the first request of a commit,
/// the answers of the others (see [`deliver`]).
pub(crate) struct Answer<T> {
    pub(crate) result: T,
    pub(crate) rest: Carried,
}

impl<T> Answer<T> {
    pub(crate) fn alone(result: T) -> Self {
        Answer {
            result,
            rest: Carried(Vec::new()),
        }
    }
}

/// Answers carried by another request's answer. They are sent when this is dropped: by that
/// request, on the runtime's thread, as soon as it has its own answer; or, if that request has
/// gone away, wherever its unread answer is dropped.
pub(crate) struct Carried(Vec<Reply>);

impl Drop for Carried {
    fn drop(&mut self) {
        for reply in self.0.drain(..) {
            reply.send(None);
        }
    }
}

/// Answers every request of a commit while waking the runtime once: the first request still
/// waiting carries the others' answers.
pub(crate) fn deliver(mut replies: Vec<Reply>) {
    while !replies.is_empty() {
        let first = replies.remove(0);
        match first.carrying(replies) {
            Ok(()) => return,
            // That request has gone away: the next one carries the rest.
            Err(rest) => replies = rest,
        }
    }
}

/// An answer held until its commit is durable.
pub(crate) enum Reply {
    Write(oneshot::Sender<Answer<Result<Outcome>>>, Result<Outcome>),
    Admin(oneshot::Sender<Answer<Result<()>>>, Result<()>),
}

impl Reply {
    pub(crate) fn is_err(&self) -> bool {
        match self {
            Reply::Write(_, result) => result.is_err(),
            Reply::Admin(_, result) => result.is_err(),
        }
    }

    /// This answer, or `err` instead.
    pub(crate) fn or_error(self, err: Option<Error>) -> Reply {
        match (self, err) {
            (reply, None) => reply,
            (Reply::Write(reply, _), Some(err)) => Reply::Write(reply, Err(err)),
            (Reply::Admin(reply, _), Some(err)) => Reply::Admin(reply, Err(err)),
        }
    }

    /// Sends the answer, or `err` instead. The client may have gone away; the write stands
    /// regardless.
    pub(crate) fn send(self, err: Option<Error>) {
        let _ = self.or_error(err).carrying(Vec::new());
    }

    /// Sends the answer carrying `rest`; gives `rest` back if the request has gone away.
    fn carrying(self, rest: Vec<Reply>) -> std::result::Result<(), Vec<Reply>> {
        let back = |mut answer: Carried| std::mem::take(&mut answer.0);
        match self {
            Reply::Write(reply, result) => reply
                .send(Answer {
                    result,
                    rest: Carried(rest),
                })
                .map_err(|answer| back(answer.rest)),
            Reply::Admin(reply, result) => reply
                .send(Answer {
                    result,
                    rest: Carried(rest),
                })
                .map_err(|answer| back(answer.rest)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_is_answered_in_full_even_when_the_requests_carrying_the_answers_are_gone() {
        let mut waiting = Vec::new();
        let mut replies = Vec::new();
        for i in 0..4_usize {
            let (reply, rx) = oneshot::channel();
            replies.push(Reply::Admin(reply, Err(Error::invalid(i.to_string()))));
            waiting.push(rx);
        }
        // Each answer is told apart by its error's message.
        let value = |answer: Answer<Result<()>>| -> usize {
            answer.result.unwrap_err().message.parse().unwrap()
        };
        let mut waiting = waiting.into_iter();
        // The first request has gone away: the second carries the rest, and only it was sent.
        drop(waiting.next());
        let mut second = waiting.next().unwrap();
        let mut third = waiting.next().unwrap();
        deliver(replies);
        let answer = second.try_recv().unwrap();
        assert_eq!(answer.rest.0.len(), 2);
        assert!(
            third.try_recv().is_err(),
            "answered before the carrier read its answer"
        );
        // The carrier takes its own answer; the carried ones go out as the rest is dropped.
        assert_eq!(value(answer), 1);
        assert_eq!(value(third.try_recv().unwrap()), 2);
        assert_eq!(value(waiting.next().unwrap().try_recv().unwrap()), 3);

        // A carrier that goes away after its answer was sent: dropping the unread answer
        // answers the others.
        let (mut replies, mut waiting) = (Vec::new(), Vec::new());
        for i in 0..3_usize {
            let (reply, rx) = oneshot::channel();
            replies.push(Reply::Admin(reply, Err(Error::invalid(i.to_string()))));
            waiting.push(rx);
        }
        deliver(replies);
        let mut waiting = waiting.into_iter();
        drop(waiting.next());
        for (i, mut rx) in waiting.enumerate() {
            assert_eq!(value(rx.try_recv().unwrap()), i + 1);
        }
    }
}
