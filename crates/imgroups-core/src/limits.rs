//! Send limits (simulator, `serve --limits`): the throttles a real iMessage line meets, as a
//! model, so a bot's team can see how it copes before a real line is throttled. Off unless
//! configured. Each limit answers with the official SDK's own error code and a retry hint
//! (`retryafter`, seconds; over HTTP also `Retry-After`).
//!
//! Windows are rolling and measured on the store's clock ([`crate::port::Tx::now`]), so a
//! test moves a controllable clock (`imgroups sim clock advance`) instead of sleeping. What
//! each line sent is remembered by the process, from its start: a restart, or another server
//! on the same PostgreSQL database, starts from nothing. Only an account's own new messages
//! count (`messages.sendText`); puppets, edits, tapbacks and idempotent replays do not. The
//! send/receive ratio is the exception: what a line received comes from any process (a
//! puppet played by the CLI, another node), so it counts the line's stored messages.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::ids::Address;
use crate::model::{AccountId, Timestamp};

const SECOND: i64 = 1_000_000_000;
const DAY: i64 = 86_400 * SECOND;

/// The limits, each `None` when not enforced. The file `serve --limits FILE` reads (TOML, or
/// JSON for a `.json` file) has these keys; [`SendLimits::photon`] is the built-in preset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendLimits {
    /// Messages one line may send in any 24 hours (`dailyLimitExceeded`).
    pub messages_per_day: Option<u32>,
    /// Messages one line may send within `burst_window_secs` (`burstRateExceeded`).
    pub burst_messages: Option<u32>,
    pub burst_window_secs: Option<u32>,
    /// Different people one line may message in any 24 hours (`recipientLimitExceeded`).
    pub recipients_per_day: Option<u32>,
    /// People never messaged before that one line may message in any 24 hours
    /// (`newContactThrottled`).
    pub new_contacts_per_day: Option<u32>,
    /// Times one line may send the same text within `duplicate_window_secs`
    /// (`contentDuplicateExceeded`).
    pub duplicate_messages: Option<u32>,
    pub duplicate_window_secs: Option<u32>,
    /// Messages one line may send to the same person within `cooling_window_secs` (a
    /// group's message reaches each member); beyond, that person is cooling down
    /// (`recipientCoolingDown`).
    pub messages_per_recipient: Option<u32>,
    pub cooling_window_secs: Option<u32>,
    /// Messages one line may send per message it received, over 24 hours, once it sent
    /// `ratio_after_messages` that day (`sendReceiveRatioExceeded`): a line that only talks
    /// and is never answered looks like spam.
    pub sends_per_receive: Option<u32>,
    pub ratio_after_messages: Option<u32>,
}

impl SendLimits {
    /// The built-in preset (`serve --limits photon`): figures of the order a new line meets,
    /// chosen for this model; neither Apple nor Photon publishes exact ones.
    pub fn photon() -> Self {
        SendLimits {
            messages_per_day: Some(2000),
            burst_messages: Some(30),
            burst_window_secs: Some(60),
            recipients_per_day: Some(300),
            new_contacts_per_day: Some(50),
            duplicate_messages: Some(5),
            duplicate_window_secs: Some(3600),
            messages_per_recipient: Some(100),
            cooling_window_secs: Some(3600),
            sends_per_receive: Some(10),
            ratio_after_messages: Some(100),
        }
    }

    /// Refuses a window limit without its window (and the reverse), and zeros.
    pub fn check(&self) -> Result<()> {
        let pairs = [
            (
                "burst_messages",
                self.burst_messages,
                "burst_window_secs",
                self.burst_window_secs,
            ),
            (
                "duplicate_messages",
                self.duplicate_messages,
                "duplicate_window_secs",
                self.duplicate_window_secs,
            ),
            (
                "messages_per_recipient",
                self.messages_per_recipient,
                "cooling_window_secs",
                self.cooling_window_secs,
            ),
            (
                "sends_per_receive",
                self.sends_per_receive,
                "ratio_after_messages",
                self.ratio_after_messages,
            ),
        ];
        for (count_key, count, window_key, window) in pairs {
            if count.is_some() != window.is_some() {
                return Err(Error::invalid(format!(
                    "{count_key} and {window_key} go together: give both or neither"
                ))
                .with(
                    "field",
                    if count.is_some() {
                        window_key
                    } else {
                        count_key
                    },
                ));
            }
        }
        let all = [
            ("messages_per_day", self.messages_per_day),
            ("burst_messages", self.burst_messages),
            ("burst_window_secs", self.burst_window_secs),
            ("recipients_per_day", self.recipients_per_day),
            ("new_contacts_per_day", self.new_contacts_per_day),
            ("duplicate_messages", self.duplicate_messages),
            ("duplicate_window_secs", self.duplicate_window_secs),
            ("messages_per_recipient", self.messages_per_recipient),
            ("cooling_window_secs", self.cooling_window_secs),
            ("sends_per_receive", self.sends_per_receive),
            ("ratio_after_messages", self.ratio_after_messages),
        ];
        for (key, value) in all {
            if value == Some(0) {
                return Err(Error::invalid(format!(
                    "{key} must be at least 1 (leave it out for no limit)"
                ))
                .with("field", key));
            }
        }
        Ok(())
    }
}

/// One message a line sent, as the limits see it.
struct Sent {
    at: Timestamp,
    recipients: Vec<Address>,
    text: u64,
}

/// What one line (account) did, as far back as the longest window.
#[derive(Default)]
struct Line {
    sent: VecDeque<Sent>,
    /// Everyone this line ever messaged (since the process started), with when first.
    contacts: HashMap<Address, Timestamp>,
}

/// The limits and what each line did, shared by every write of the process.
pub struct Limiter {
    limits: SendLimits,
    lines: Mutex<HashMap<AccountId, Line>>,
}

fn text_key(text: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// The refusal: `kind`'s code, the limit, and when a retry can succeed.
fn refuse(
    kind: ErrorKind,
    message: String,
    limit: u32,
    retry_at: Timestamp,
    now: Timestamp,
) -> Error {
    let wait = retry_at.0.saturating_sub(now.0).max(1);
    // Whole seconds, rounded up: retrying after that many seconds succeeds.
    let secs = (wait + SECOND - 1) / SECOND;
    Error::new(kind, format!("{message}; retry in {secs} s"))
        .with("limit", limit)
        .with("retryafter", secs)
}

impl Limiter {
    pub fn new(limits: SendLimits) -> Self {
        Limiter {
            limits,
            lines: Mutex::new(HashMap::new()),
        }
    }

    /// How far back [`Limiter::check`] needs the line's stored messages (`history`), if it
    /// needs them at all: the send/receive ratio counts what the line received, from anyone
    /// through any process, and so reads it from the store.
    pub fn history_since(&self, now: Timestamp) -> Option<Timestamp> {
        self.limits
            .sends_per_receive
            .map(|_| Timestamp(now.0 - DAY + 1))
    }

    /// Whether `account` may send `text` to `recipients` at `now`; the first limit it would
    /// break answers. `history`: when each of the line's stored messages since
    /// [`Limiter::history_since`] was created and whether it was its own. Records nothing
    /// ([`Limiter::record`] does, once sent).
    pub fn check(
        &self,
        account: AccountId,
        now: Timestamp,
        recipients: &[Address],
        text: &str,
        history: &[(Timestamp, bool)],
    ) -> Result<()> {
        let limits = &self.limits;
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let line = lines.entry(account).or_default();
        // Forget what no window reaches any more (the longest is a day).
        while line.sent.front().is_some_and(|s| s.at.0 <= now.0 - DAY) {
            line.sent.pop_front();
        }
        let within = |window: i64| line.sent.iter().filter(move |s| s.at.0 > now.0 - window);

        if let Some(max) = limits.messages_per_day {
            let mut day = within(DAY);
            if let Some(oldest) = day.next() {
                if day.count() + 1 >= max as usize {
                    return Err(refuse(
                        ErrorKind::DailyLimitExceeded,
                        format!("daily send limit reached: {max} messages in 24 h"),
                        max,
                        Timestamp(oldest.at.0 + DAY),
                        now,
                    ));
                }
            }
        }
        if let (Some(max), Some(secs)) = (limits.burst_messages, limits.burst_window_secs) {
            let window = i64::from(secs) * SECOND;
            let mut burst = within(window);
            if let Some(oldest) = burst.next() {
                if burst.count() + 1 >= max as usize {
                    return Err(refuse(
                        ErrorKind::RateLimited,
                        format!("sending too fast: {max} messages in {secs} s"),
                        max,
                        Timestamp(oldest.at.0 + window),
                        now,
                    )
                    .because(crate::error::Reason::SendRate));
                }
            }
        }
        if let (Some(max), Some(secs)) = (limits.duplicate_messages, limits.duplicate_window_secs) {
            let window = i64::from(secs) * SECOND;
            let key = text_key(text);
            let mut same = within(window).filter(|s| s.text == key);
            if let Some(oldest) = same.next() {
                if same.count() + 1 >= max as usize {
                    return Err(refuse(
                        ErrorKind::ContentDuplicateExceeded,
                        format!("the same text was sent {max} times in {secs} s"),
                        max,
                        Timestamp(oldest.at.0 + window),
                        now,
                    ));
                }
            }
        }
        if let (Some(max), Some(secs)) = (limits.messages_per_recipient, limits.cooling_window_secs)
        {
            let window = i64::from(secs) * SECOND;
            for who in recipients {
                let mut to = within(window).filter(|s| s.recipients.contains(who));
                if let Some(oldest) = to.next() {
                    if to.count() + 1 >= max as usize {
                        return Err(refuse(
                            ErrorKind::RecipientCoolingDown,
                            format!("{who} is cooling down: {max} messages to them in {secs} s"),
                            max,
                            Timestamp(oldest.at.0 + window),
                            now,
                        )
                        .with("address", who));
                    }
                }
            }
        }
        if let (Some(ratio), Some(after)) = (limits.sends_per_receive, limits.ratio_after_messages)
        {
            let day = |mine: bool| -> Vec<Timestamp> {
                history
                    .iter()
                    .filter(|(at, own)| *own == mine && at.0 > now.0 - DAY)
                    .map(|(at, _)| *at)
                    .collect()
            };
            let (sent, got) = (day(true), day(false));
            let over = |sent: usize, got: usize| {
                sent >= after as usize && sent + 1 > (ratio as usize).saturating_mul(got)
            };
            if over(sent.len(), got.len()) {
                // The first moment the same send passes as the day's window moves on: one of
                // the messages sent (or received) leaves it.
                let mut moments: Vec<Timestamp> = sent
                    .iter()
                    .chain(&got)
                    .map(|at| Timestamp(at.0 + DAY))
                    .collect();
                moments.sort_unstable();
                let retry = moments
                    .into_iter()
                    .find(|t| {
                        let left = |times: &[Timestamp]| {
                            times.iter().filter(|at| at.0 > t.0 - DAY).count()
                        };
                        !over(left(&sent), left(&got))
                    })
                    .unwrap_or(Timestamp(now.0 + DAY));
                return Err(refuse(
                    ErrorKind::SendReceiveRatioExceeded,
                    format!(
                        "{} messages sent and {} received in 24 h: at most {ratio} sent per \
                         message received once {after} are sent",
                        sent.len(),
                        got.len()
                    ),
                    ratio,
                    retry,
                    now,
                ));
            }
        }
        if let Some(max) = limits.recipients_per_day {
            let mut seen: HashMap<&Address, Timestamp> = HashMap::new();
            for sent in within(DAY) {
                for who in &sent.recipients {
                    seen.entry(who).or_insert(sent.at);
                }
            }
            let fresh = recipients.iter().filter(|r| !seen.contains_key(r)).count();
            if fresh > 0 && seen.len() + fresh > max as usize {
                let oldest = seen.values().min().copied().unwrap_or(now);
                return Err(refuse(
                    ErrorKind::RecipientLimitExceeded,
                    format!("recipient limit reached: {max} different people in 24 h"),
                    max,
                    Timestamp(oldest.0 + DAY),
                    now,
                ));
            }
        }
        if let Some(max) = limits.new_contacts_per_day {
            let new: Vec<&Address> = recipients
                .iter()
                .filter(|r| !line.contacts.contains_key(*r))
                .collect();
            if !new.is_empty() {
                let today: Vec<Timestamp> = line
                    .contacts
                    .values()
                    .filter(|at| at.0 > now.0 - DAY)
                    .copied()
                    .collect();
                if today.len() + new.len() > max as usize {
                    let oldest = today.iter().min().copied().unwrap_or(now);
                    return Err(refuse(
                        ErrorKind::NewContactThrottled,
                        format!(
                            "too many new contacts: {max} people never messaged before in 24 h \
                             ({} would be new)",
                            new[0]
                        ),
                        max,
                        Timestamp(oldest.0 + DAY),
                        now,
                    )
                    .with("address", new[0]));
                }
            }
        }
        Ok(())
    }

    /// Records a message `account` sent.
    pub fn record(&self, account: AccountId, now: Timestamp, recipients: &[Address], text: &str) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let line = lines.entry(account).or_default();
        for who in recipients {
            line.contacts.entry(who.clone()).or_insert(now);
        }
        line.sent.push_back(Sent {
            at: now,
            recipients: recipients.to_vec(),
            text: text_key(text),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp(secs * SECOND)
    }

    fn people(names: &[&str]) -> Vec<Address> {
        names
            .iter()
            .map(|n| Address::parse(&format!("{n}@x.com")).expect("address"))
            .collect()
    }

    fn code(err: &Error) -> (ErrorKind, String) {
        (
            err.kind,
            err.context_value("retryafter").unwrap_or("").to_owned(),
        )
    }

    #[test]
    fn each_limit_refuses_then_lets_through_after_its_hint() {
        let me = AccountId(1);
        let bob = people(&["bob"]);
        // Burst: 2 in 10 s.
        let l = Limiter::new(SendLimits {
            burst_messages: Some(2),
            burst_window_secs: Some(10),
            ..Default::default()
        });
        l.record(me, at(100), &bob, "a");
        l.check(me, at(101), &bob, "b", &[]).unwrap();
        l.record(me, at(101), &bob, "b");
        let err = l.check(me, at(103), &bob, "c", &[]).unwrap_err();
        assert_eq!(code(&err), (ErrorKind::RateLimited, "7".into()));
        assert!(l.check(me, at(110), &bob, "c", &[]).is_ok());
        // Another account has its own line.
        assert!(l.check(AccountId(2), at(103), &bob, "c", &[]).is_ok());

        // Daily: 1 a day.
        let l = Limiter::new(SendLimits {
            messages_per_day: Some(1),
            ..Default::default()
        });
        l.record(me, at(0), &bob, "a");
        let err = l.check(me, at(3600), &bob, "b", &[]).unwrap_err();
        assert_eq!(
            code(&err),
            (ErrorKind::DailyLimitExceeded, (86_400 - 3600).to_string())
        );
        assert!(l.check(me, at(86_400), &bob, "b", &[]).is_ok());

        // Duplicates: the same text twice an hour; other text passes.
        let l = Limiter::new(SendLimits {
            duplicate_messages: Some(2),
            duplicate_window_secs: Some(3600),
            ..Default::default()
        });
        l.record(me, at(0), &bob, "promo");
        l.record(me, at(10), &bob, "promo");
        let err = l.check(me, at(20), &bob, "promo", &[]).unwrap_err();
        assert_eq!(
            code(&err),
            (ErrorKind::ContentDuplicateExceeded, "3580".into())
        );
        assert!(l.check(me, at(20), &bob, "hello", &[]).is_ok());
        assert!(l.check(me, at(3600), &bob, "promo", &[]).is_ok());

        // New contacts: 2 a day; people already messaged are not new.
        let l = Limiter::new(SendLimits {
            new_contacts_per_day: Some(2),
            ..Default::default()
        });
        l.record(me, at(0), &people(&["a", "b"]), "hi");
        assert!(l
            .check(me, at(5), &people(&["a", "b"]), "again", &[])
            .is_ok());
        let err = l.check(me, at(5), &people(&["c"]), "hi", &[]).unwrap_err();
        assert_eq!(code(&err), (ErrorKind::NewContactThrottled, "86395".into()));
        assert_eq!(err.context_value("address"), Some("c@x.com"));
        assert!(l.check(me, at(86_400), &people(&["c"]), "hi", &[]).is_ok());

        // Recipients: 2 different people a day.
        let l = Limiter::new(SendLimits {
            recipients_per_day: Some(2),
            ..Default::default()
        });
        l.record(me, at(0), &people(&["a"]), "hi");
        l.record(me, at(1), &people(&["b"]), "hi");
        assert!(l.check(me, at(2), &people(&["a"]), "more", &[]).is_ok());
        let err = l.check(me, at(2), &people(&["c"]), "hi", &[]).unwrap_err();
        assert_eq!(
            code(&err),
            (ErrorKind::RecipientLimitExceeded, "86398".into())
        );

        // Cooling down: 2 messages to one person an hour; others still reachable; a group's
        // message reaches each member.
        let l = Limiter::new(SendLimits {
            messages_per_recipient: Some(2),
            cooling_window_secs: Some(3600),
            ..Default::default()
        });
        l.record(me, at(0), &people(&["a"]), "one");
        l.record(me, at(60), &people(&["a", "b"]), "two");
        let err = l
            .check(me, at(120), &people(&["b", "a"]), "three", &[])
            .unwrap_err();
        assert_eq!(code(&err), (ErrorKind::RecipientCoolingDown, "3480".into()));
        assert_eq!(err.context_value("address"), Some("a@x.com"));
        assert!(l.check(me, at(120), &people(&["b"]), "three", &[]).is_ok());
        assert!(l.check(me, at(3600), &people(&["a"]), "three", &[]).is_ok());

        // Send/receive: after 3 sent a day, at most 2 sent per message received (the
        // history is the line's stored messages: (created, its own)).
        let l = Limiter::new(SendLimits {
            sends_per_receive: Some(2),
            ratio_after_messages: Some(3),
            ..Default::default()
        });
        let a = people(&["a"]);
        let mut history = vec![(at(0), true), (at(1), true), (at(2), true)];
        let err = l.check(me, at(10), &a, "x", &history).unwrap_err();
        // 3 sent, none received: it passes once the first send is a day old (2 sent left).
        assert_eq!(
            code(&err),
            (ErrorKind::SendReceiveRatioExceeded, "86390".into())
        );
        assert_eq!(l.history_since(at(10)), Some(Timestamp(at(10).0 - DAY + 1)));
        // One answer is not enough for a fourth (4 > 2 × 1), two are; a fifth is not.
        history.push((at(20), false));
        assert!(l.check(me, at(21), &a, "x", &history).is_err());
        history.push((at(21), false));
        assert!(l.check(me, at(21), &a, "x", &history).is_ok());
        history.push((at(21), true));
        let err = l.check(me, at(23), &a, "x", &history).unwrap_err();
        assert_eq!(code(&err).0, ErrorKind::SendReceiveRatioExceeded);
        assert!(l.check(me, at(86_402), &a, "x", &history).is_ok());
        // Without the ratio, no history is asked for.
        assert_eq!(
            Limiter::new(SendLimits::default()).history_since(at(0)),
            None
        );
    }

    #[test]
    fn a_limits_file_is_checked() {
        assert!(SendLimits::photon().check().is_ok());
        let half = SendLimits {
            burst_messages: Some(3),
            ..Default::default()
        };
        assert!(half.check().unwrap_err().message.contains("go together"));
        let zero = SendLimits {
            messages_per_day: Some(0),
            ..Default::default()
        };
        assert!(zero.check().is_err());
    }
}
