//! A task on another node, as the adapter sees it: with `local_engine`
//! off, this node's engine is never asked, so what a manager alone knows
//! is exactly what these tests see (the remote cases of docs/swarm.md,
//! checked on a single node).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rtm_domain::ports::{ContainerEventKind, ContainerRuntime, FeedItem, LogQuery, LogStream};

use crate::{wait_exited, write_control, Env, DEADLINE};

const ALL: LogQuery = LogQuery {
    tail: 5000,
    since: None,
    max_bytes: 1 << 20,
};

#[tokio::test]
async fn an_oom_kill_elsewhere_is_a_plain_exit_never_guessed_from_137() {
    let env = Env::with(|c| {
        c.local_engine = false;
        c.docker.memory_bytes = 16 * 1024 * 1024;
    });
    let mut feed = Box::pin(env.rt.events());
    assert!(matches!(feed.next().await, Some(FeedItem::Connected)));
    let (spec, id) = env.running("1.0.0").await;
    write_control(&spec, "oom", "");
    let mut kinds = vec![];
    let deadline = Instant::now() + DEADLINE;
    while !kinds
        .iter()
        .any(|k| matches!(k, ContainerEventKind::Die { .. }))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, feed.next())
            .await
            .expect("in time")
        {
            Some(FeedItem::Event(e)) if e.container_id == id => kinds.push(e.kind),
            Some(FeedItem::Lost(e)) => panic!("lost: {e}"),
            Some(_) => {}
            None => panic!("the feed ended"),
        }
    }
    assert_eq!(
        kinds,
        [
            ContainerEventKind::Start,
            ContainerEventKind::Die {
                exit_code: Some(137)
            }
        ]
    );
    let info = wait_exited(&env.rt, &id).await;
    assert_eq!(info.exit_code, Some(137));
    assert!(!info.oom_killed, "not known from a manager: {info:?}");
}

#[tokio::test]
async fn logs_of_a_task_elsewhere_come_through_the_manager() {
    let env = Env::with(|c| c.local_engine = false);
    let (spec, id) = env.running("1.0.0").await;
    let deadline = Instant::now() + DEADLINE;
    let first = loop {
        let logs = env.rt.logs(&id, &ALL).await.expect("logs");
        if let Some(l) = logs
            .lines
            .into_iter()
            .find(|l| l.text.contains("listening on"))
        {
            break l;
        }
        assert!(Instant::now() < deadline, "no start-up line");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(first.stream, LogStream::Stderr);
    assert!(first.text.contains(spec.game_id.as_str()), "{first:?}");
    assert!(first.at.is_some(), "stamped");

    let mut follow = Box::pin(env.rt.follow_logs(&id, &LogQuery { tail: 0, ..ALL }));
    write_control(&spec, "crash", "5");
    let line = tokio::time::timeout(DEADLINE, follow.next())
        .await
        .expect("a line in time")
        .expect("a line")
        .expect("not an error");
    assert!(line.text.contains("exiting with 5"), "{line:?}");
    // Swarm ends the task's log stream once the task ended, as Docker
    // ends a stopped container's.
    let end = tokio::time::timeout(DEADLINE, follow.next())
        .await
        .expect("the follow ends in time");
    assert!(end.is_none(), "{end:?}");
}
