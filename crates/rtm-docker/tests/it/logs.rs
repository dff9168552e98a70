//! `logs` and `follow_logs` against the real engine: the stub writes its
//! start-up and termination lines to stderr.

use std::time::Duration;

use futures_util::StreamExt;
use rtm_domain::ports::{ContainerRuntime, LogQuery, LogStream};
use rtm_domain::RuntimeError;

use super::{poll_async, Env, DEADLINE};

const ALL: LogQuery = LogQuery {
    tail: 5000,
    since: None,
    max_bytes: 1 << 20,
};

#[tokio::test]
async fn logs_read_the_tail_of_our_containers_only() {
    let env = Env::new();
    let (spec, id) = env.running("1.0.0").await;
    let first = poll_async("the start-up line", || async {
        let logs = env.rt.logs(&id, &ALL).await.expect("logs");
        logs.lines
            .into_iter()
            .find(|l| l.text.contains("listening on"))
    })
    .await;
    assert_eq!(first.stream, LogStream::Stderr);
    assert!(first.text.contains(spec.game_id.as_str()), "{first:?}");
    let at = first.at.expect("docker stamps every line");

    // A stop adds a second line.
    env.rt
        .stop(&id, Duration::from_secs(20))
        .await
        .expect("stop");
    let all = env
        .rt
        .logs(&id, &ALL)
        .await
        .expect("logs of a stopped container");
    assert!(all.lines.len() >= 2, "{all:?}");
    assert!(!all.truncated);
    let last = all.lines.last().expect("a line");
    assert!(last.text.contains("terminating on signal"), "{last:?}");

    let one = env
        .rt
        .logs(&id, &LogQuery { tail: 1, ..ALL })
        .await
        .expect("tail 1");
    assert_eq!(one.lines, vec![last.clone()]);
    assert!(!one.truncated);
    // `since` is exclusive, at full precision.
    let after = env
        .rt
        .logs(
            &id,
            &LogQuery {
                since: Some(at),
                ..ALL
            },
        )
        .await
        .expect("since");
    assert!(
        after.lines.iter().all(|l| l.at.expect("stamped") > at),
        "{after:?}"
    );
    assert_eq!(after.lines.last(), Some(last));
    // A byte cap smaller than the last line keeps nothing and says so.
    let capped = env
        .rt
        .logs(
            &id,
            &LogQuery {
                max_bytes: 4,
                ..ALL
            },
        )
        .await
        .expect("capped");
    assert!(capped.lines.is_empty() && capped.truncated, "{capped:?}");

    let other = Env::new();
    assert!(matches!(
        other.rt.logs(&id, &ALL).await,
        Err(RuntimeError::NotFound(_))
    ));
    let mut foreign = Box::pin(other.rt.follow_logs(&id, &ALL));
    assert!(matches!(
        foreign.next().await,
        Some(Err(RuntimeError::NotFound(_)))
    ));
}

/// The stream's next item, within [`DEADLINE`].
async fn next<S: futures_util::Stream + Unpin>(lines: &mut S) -> Option<S::Item> {
    tokio::time::timeout(DEADLINE, lines.next())
        .await
        .expect("a line in time")
}

#[tokio::test]
async fn a_follow_streams_new_lines_and_ends_when_the_container_stops() {
    let env = Env::new();
    let (_spec, id) = env.running("1.0.0").await;
    let mut lines = Box::pin(env.rt.follow_logs(&id, &ALL));
    loop {
        let line: rtm_domain::ports::LogLine = next(&mut lines).await.expect("open").expect("ok");
        if line.text.contains("listening on") {
            break;
        }
    }
    env.rt
        .stop(&id, Duration::from_secs(20))
        .await
        .expect("stop");
    let mut saw_termination = false;
    let mut ended = false;
    // Bounded: the stub writes a handful of lines; the stream then ends.
    for _ in 0..100 {
        match next(&mut lines).await {
            Some(line) => {
                saw_termination |= line.expect("ok").text.contains("terminating on signal");
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    assert!(saw_termination);
    assert!(ended, "the stream ended with the container");
    assert!(next(&mut lines).await.is_none(), "and stays ended");
}
