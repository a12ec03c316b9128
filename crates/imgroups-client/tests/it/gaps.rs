//! The resumable helper never steps over a gap in the live stream, whatever the server does:
//! against a scripted server whose live stream skips a sequence.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use imgroups_client::{Client, EventFilter, MemoryCheckpoint};
use imgroups_proto::pb;
use tonic::{Request, Response, Status};

use crate::retry::{group_event, start_with_events, Fake};

/// A catch-up service over the log 1..=4 whose first replay finds the log still empty (as if
/// the events were committed just after it started).
#[derive(Clone, Default)]
pub(crate) struct FakeLog {
    calls: Arc<Mutex<Vec<Option<u64>>>>,
}

type CatchUpStream = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<pb::CatchUpEventsResponse, Status>> + Send>,
>;

#[tonic::async_trait]
impl pb::event_service_server::EventService for FakeLog {
    type CatchUpEventsStream = CatchUpStream;

    async fn catch_up_events(
        &self,
        req: Request<pb::CatchUpEventsRequest>,
    ) -> Result<Response<CatchUpStream>, Status> {
        use pb::catch_up_events_response::Payload;
        let after = req.into_inner().after_sequence;
        let first = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(after);
            calls.len() == 1
        };
        let head = if first { 0 } else { 4 };
        let mut frames: Vec<Result<_, Status>> = (after.unwrap_or(0) + 1..=head)
            .map(|seq| {
                Ok(pb::CatchUpEventsResponse {
                    sequence: Some(seq),
                    payload: Some(Payload::GroupChanged(group_event(seq))),
                })
            })
            .collect();
        frames.push(Ok(pb::CatchUpEventsResponse {
            sequence: None,
            payload: Some(Payload::Complete(pb::CatchUpEventsComplete {
                head_sequence: head,
            })),
        }));
        Ok(Response::new(Box::pin(futures::stream::iter(frames))))
    }
}

#[tokio::test]
async fn a_skipped_live_sequence_is_replayed_not_lost() {
    let fake = Fake::default();
    *fake.live.lock().unwrap() = vec![1, 3, 4]; // 2 never comes live
    let log = FakeLog::default();
    let url = start_with_events(fake, log.clone()).await;
    let client = Client::builder().address(url).token("t").build().unwrap();
    let checkpoint = MemoryCheckpoint::new(0);
    let mut events = client
        .events()
        .resumable(EventFilter::all(), checkpoint.clone());
    let mut got = Vec::new();
    for _ in 0..4 {
        let d = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("in time")
            .unwrap()
            .unwrap();
        got.push(d.sequence);
        d.ack().await.unwrap();
    }
    assert_eq!(got, [1, 2, 3, 4]);
    assert_eq!(checkpoint.get(), 4);
    // The gap at 3 made it catch up again from 1, the last contiguous position.
    assert_eq!(*log.calls.lock().unwrap(), [None, Some(1)]);
    // Nothing is delivered twice.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), events.next())
            .await
            .is_err()
    );
}
