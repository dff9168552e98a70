//! Unit tests of the [`Scheduler`]: per-game order, the concurrency cap,
//! duplicate suppression, bounded holding and redeliveries, driven
//! synchronously the way the dispatch loop drives it.

use super::*;
use crate::consumer::delivery::classify;

/// A well-formed command entry `id` of `game`.
fn cmd(id: &str, game: &str) -> Delivery {
    classify(
        StreamEntry::new(id, &[("op", "stop"), ("game_id", game)]),
        1,
        5,
    )
}

/// A malformed entry `id`.
fn bad(id: &str) -> Delivery {
    classify(
        StreamEntry::new(id, &[("op", "jump"), ("game_id", "g")]),
        1,
        5,
    )
}

/// Everything startable now, as `(entry id, game)`.
fn start_all(s: &mut Scheduler) -> Vec<(String, String)> {
    std::iter::from_fn(|| s.next_to_start())
        .map(|st| (st.id, st.req.game_id.as_str().to_owned()))
        .collect()
}

fn ids(started: &[(String, String)]) -> Vec<&str> {
    started.iter().map(|(id, _)| id.as_str()).collect()
}

fn queued(o: Offer) {
    assert!(matches!(o, Offer::Queued), "{o:?}");
}

#[test]
fn a_games_entries_start_one_at_a_time_in_offer_order() {
    let mut s = Scheduler::new(16, 100);
    for (id, game) in [("1-0", "a"), ("2-0", "a"), ("3-0", "b"), ("4-0", "a")] {
        queued(s.offer(cmd(id, game)));
    }
    assert_eq!(ids(&start_all(&mut s)), ["1-0", "3-0"], "one per game");
    assert_eq!(s.queued(), 2);

    // b's end starts nothing of a's.
    assert_eq!(s.finished("3-0", true), Finish::Release);
    assert!(start_all(&mut s).is_empty());
    assert_eq!(s.finished("1-0", true), Finish::Release);
    assert_eq!(ids(&start_all(&mut s)), ["2-0"]);
    assert_eq!(s.finished("2-0", true), Finish::Release);
    assert_eq!(ids(&start_all(&mut s)), ["4-0"]);
    assert_eq!(s.finished("4-0", true), Finish::Release);
    assert!(start_all(&mut s).is_empty());
    assert_eq!(s.queued(), 0);
}

#[test]
fn a_game_offered_while_running_waits_for_its_end() {
    let mut s = Scheduler::new(16, 100);
    queued(s.offer(cmd("1-0", "a")));
    assert_eq!(ids(&start_all(&mut s)), ["1-0"]);
    queued(s.offer(cmd("2-0", "a")));
    assert!(start_all(&mut s).is_empty(), "a is running");
    s.finished("1-0", true);
    assert_eq!(ids(&start_all(&mut s)), ["2-0"]);
}

#[test]
fn a_failed_entry_still_frees_its_game() {
    // Not acknowledged (stopping, or the handler panicked): the entry is
    // left pending, and the game's next entry may start.
    let mut s = Scheduler::new(16, 100);
    queued(s.offer(cmd("1-0", "a")));
    queued(s.offer(cmd("2-0", "a")));
    assert_eq!(ids(&start_all(&mut s)), ["1-0"]);
    assert_eq!(s.finished("1-0", false), Finish::Release);
    assert_eq!(ids(&start_all(&mut s)), ["2-0"]);
}

#[test]
fn at_most_concurrency_games_run_at_once_ready_games_in_fifo_order() {
    let mut s = Scheduler::new(2, 100);
    for (id, game) in [("1-0", "a"), ("2-0", "b"), ("3-0", "c"), ("4-0", "d")] {
        queued(s.offer(cmd(id, game)));
    }
    assert_eq!(ids(&start_all(&mut s)), ["1-0", "2-0"]);
    s.finished("2-0", true);
    assert_eq!(ids(&start_all(&mut s)), ["3-0"]);
    s.finished("1-0", true);
    assert_eq!(ids(&start_all(&mut s)), ["4-0"]);
}

#[test]
fn a_game_with_more_entries_goes_to_the_back_of_the_ready_line() {
    let mut s = Scheduler::new(1, 100);
    queued(s.offer(cmd("1-0", "a")));
    queued(s.offer(cmd("2-0", "a")));
    queued(s.offer(cmd("3-0", "b")));
    assert_eq!(ids(&start_all(&mut s)), ["1-0"]);
    s.finished("1-0", true);
    assert_eq!(
        ids(&start_all(&mut s)),
        ["3-0"],
        "b waited longer than a's next"
    );
    s.finished("3-0", true);
    assert_eq!(ids(&start_all(&mut s)), ["2-0"]);
}

#[test]
fn a_concurrency_of_zero_still_runs_one_game() {
    let mut s = Scheduler::new(0, 100);
    queued(s.offer(cmd("1-0", "a")));
    queued(s.offer(cmd("2-0", "b")));
    assert_eq!(ids(&start_all(&mut s)), ["1-0"]);
}

#[test]
fn dead_letters_run_outside_the_queues_and_the_cap() {
    let mut s = Scheduler::new(1, 100);
    queued(s.offer(cmd("1-0", "a")));
    assert_eq!(ids(&start_all(&mut s)), ["1-0"]);
    match s.offer(bad("2-0")) {
        Offer::DeadLetter { entry, reason, .. } => {
            assert_eq!(entry.id, "2-0");
            assert_eq!(reason.code(), "unknown_op");
        }
        o => panic!("{o:?}"),
    }
    // Its end frees no game slot.
    assert_eq!(s.finished("2-0", true), Finish::Release);
    queued(s.offer(cmd("3-0", "b")));
    assert!(start_all(&mut s).is_empty(), "the cap of 1 is a's");
}

#[test]
fn an_entry_queued_or_running_is_not_taken_twice() {
    let mut s = Scheduler::new(16, 100);
    queued(s.offer(cmd("1-0", "a")));
    queued(s.offer(cmd("2-0", "a")));
    assert!(matches!(s.offer(cmd("2-0", "a")), Offer::Duplicate { id } if id == "2-0"));
    assert_eq!(ids(&start_all(&mut s)), ["1-0"]);
    assert!(matches!(s.offer(cmd("1-0", "a")), Offer::Duplicate { id } if id == "1-0"));
    assert_eq!(s.queued(), 1, "no second copy queued");
    s.finished("1-0", false);
    assert_eq!(ids(&start_all(&mut s)), ["2-0"]);
    s.finished("2-0", false);
    assert!(start_all(&mut s).is_empty(), "each entry started once");
}

#[test]
fn an_entry_delivered_again_while_running_is_acknowledged_again_at_its_end() {
    let mut s = Scheduler::new(16, 100);
    queued(s.offer(cmd("1-0", "a")));
    assert_eq!(ids(&start_all(&mut s)), ["1-0"]);
    assert!(matches!(s.offer(cmd("1-0", "a")), Offer::Duplicate { .. }));
    assert_eq!(s.finished("1-0", true), Finish::AckAgain);
    // Held while the second ack runs.
    assert!(matches!(s.offer(cmd("1-0", "a")), Offer::Duplicate { .. }));
    assert_eq!(s.finished("1-0", true), Finish::AckAgain);
    assert_eq!(s.finished("1-0", true), Finish::Release);
    assert!(start_all(&mut s).is_empty(), "never run twice");
}

#[test]
fn an_entry_delivered_again_while_queued_is_acknowledged_again_at_its_end() {
    let mut s = Scheduler::new(16, 100);
    queued(s.offer(cmd("1-0", "a")));
    queued(s.offer(cmd("2-0", "a")));
    assert_eq!(ids(&start_all(&mut s)), ["1-0"]);
    assert!(matches!(s.offer(cmd("2-0", "a")), Offer::Duplicate { .. }));
    s.finished("1-0", true);
    assert_eq!(ids(&start_all(&mut s)), ["2-0"]);
    assert_eq!(s.finished("2-0", true), Finish::AckAgain);
}

#[test]
fn a_redelivery_during_a_run_that_ends_unacknowledged_is_forgotten() {
    // Not acknowledged: the entry is still pending, nothing to ack again.
    let mut s = Scheduler::new(16, 100);
    queued(s.offer(cmd("1-0", "a")));
    assert_eq!(ids(&start_all(&mut s)), ["1-0"]);
    assert!(matches!(s.offer(cmd("1-0", "a")), Offer::Duplicate { .. }));
    assert_eq!(s.finished("1-0", false), Finish::Release);
    // A later delivery runs it (it was never acknowledged here).
    queued(s.offer(cmd("1-0", "a")));
    assert_eq!(ids(&start_all(&mut s)), ["1-0"]);
    assert_eq!(
        s.finished("1-0", true),
        Finish::Release,
        "no stale redelivery"
    );
}

#[test]
fn an_entry_acknowledged_here_is_acknowledged_again_not_rerun() {
    let mut s = Scheduler::new(16, 100);
    queued(s.offer(cmd("1-0", "a")));
    assert_eq!(ids(&start_all(&mut s)), ["1-0"]);
    assert_eq!(s.finished("1-0", true), Finish::Release);
    for _ in 0..2 {
        assert!(matches!(s.offer(cmd("1-0", "a")), Offer::AckAgain { id } if id == "1-0"));
        assert!(start_all(&mut s).is_empty(), "not run again");
        assert_eq!(s.finished("1-0", true), Finish::Release);
    }
    // The ack of a dead letter counts too.
    assert!(matches!(s.offer(bad("2-0")), Offer::DeadLetter { .. }));
    s.finished("2-0", true);
    assert!(matches!(s.offer(bad("2-0")), Offer::AckAgain { .. }));
}

#[test]
fn an_entry_left_pending_is_run_again_when_redelivered() {
    let mut s = Scheduler::new(16, 100);
    queued(s.offer(cmd("1-0", "a")));
    assert_eq!(ids(&start_all(&mut s)), ["1-0"]);
    s.finished("1-0", false);
    queued(s.offer(cmd("1-0", "a")));
    assert_eq!(ids(&start_all(&mut s)), ["1-0"]);
}

#[test]
fn a_redelivery_during_its_ack_again_is_acknowledged_once_more() {
    let mut s = Scheduler::new(16, 100);
    queued(s.offer(cmd("1-0", "a")));
    start_all(&mut s);
    s.finished("1-0", true);
    assert!(matches!(s.offer(cmd("1-0", "a")), Offer::AckAgain { .. }));
    assert!(matches!(s.offer(cmd("1-0", "a")), Offer::Duplicate { .. }));
    assert_eq!(s.finished("1-0", true), Finish::AckAgain);
    assert_eq!(s.finished("1-0", true), Finish::Release);
}

#[test]
fn holding_is_bounded_by_max_held() {
    let mut s = Scheduler::new(1, 3);
    assert!(s.has_room());
    queued(s.offer(cmd("1-0", "a")));
    queued(s.offer(cmd("2-0", "a")));
    assert!(s.has_room());
    assert!(matches!(s.offer(bad("3-0")), Offer::DeadLetter { .. }));
    assert!(
        !s.has_room(),
        "queued, running and dead-letter tasks all count"
    );
    assert_eq!(ids(&start_all(&mut s)), ["1-0"]);
    assert!(!s.has_room(), "starting frees nothing");
    s.finished("3-0", true);
    assert!(s.has_room(), "held: 1-0 running, 2-0 queued");
    // An ack again is held too; a duplicate adds nothing.
    assert!(matches!(s.offer(bad("3-0")), Offer::AckAgain { .. }));
    assert!(!s.has_room(), "held: 1-0, 2-0 and the ack of 3-0");
    assert!(matches!(s.offer(cmd("2-0", "a")), Offer::Duplicate { .. }));
    s.finished("1-0", true);
    assert!(s.has_room());
    queued(s.offer(cmd("4-0", "b")));
    assert!(!s.has_room());
}

#[test]
fn an_ack_again_keeps_its_entry_held() {
    let mut s = Scheduler::new(16, 1);
    queued(s.offer(cmd("1-0", "a")));
    start_all(&mut s);
    assert!(matches!(s.offer(cmd("1-0", "a")), Offer::Duplicate { .. }));
    assert_eq!(s.finished("1-0", true), Finish::AckAgain);
    assert!(!s.has_room());
    assert_eq!(s.finished("1-0", true), Finish::Release);
    assert!(s.has_room());
}

#[test]
fn max_held_is_four_batches_or_four_times_the_concurrency_at_least_16() {
    assert_eq!(max_held(16, 64), 256);
    assert_eq!(max_held(100, 64), 400);
    assert_eq!(max_held(1, 1), 16);
    assert_eq!(max_held(0, 0), 16);
}

#[test]
fn recent_acks_forget_the_oldest_first() {
    let mut r = RecentAcks::new(2);
    r.insert("1-0".into());
    r.insert("2-0".into());
    r.insert("1-0".into());
    assert!(r.contains("1-0") && r.contains("2-0"));
    r.insert("3-0".into());
    assert!(
        !r.contains("1-0"),
        "oldest evicted (a repeat does not refresh)"
    );
    assert!(r.contains("2-0") && r.contains("3-0"));
}
