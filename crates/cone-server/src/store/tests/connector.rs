//! The connector's calls in the store, on both backends: each claimed by one host at a time (also when two claim at
//! once), renewed and answered only by its holder, put back when its lease runs out, withdrawn only when no host
//! holds it, and its answer read once.

use crate::store::testing;
use crate::store::*;

testing::on_both_backends!(a_call_is_held_by_one_host_at_a_time_and_answered_once);

async fn a_call_is_held_by_one_host_at_a_time_and_answered_once(db: Db) {
    let first = db.queue_call(r#"{"op":"identity_store_id"}"#, None, 100).await.unwrap();
    let second = db.queue_call(r#"{"op":"sync"}"#, Some("run-1"), 100).await.unwrap();

    // Two hosts claiming at once get the two calls, oldest first, never the same one.
    let (a, b) = tokio::join!(db.claim_call("a", 101, 10), db.claim_call("b", 101, 10));
    let (a, b) = (a.unwrap().unwrap().id, b.unwrap().unwrap().id);
    let mut got = [a, b];
    got.sort();
    assert_eq!(got, [first, second]);
    assert!(db.claim_call("c", 101, 10).await.unwrap().is_none(), "nothing left to claim");
    let (first_holder, second_holder) = if a == first { ("a", "b") } else { ("b", "a") };

    // Only the holder renews, and learns the spool run of a sync.
    assert_eq!(db.renew_call(second, second_holder, 105, 10).await.unwrap(), Some(Some("run-1".into())));
    assert_eq!(db.renew_call(second, "c", 105, 10).await.unwrap(), None);
    assert!(!db.withdraw_call(first, 105).await.unwrap(), "a held call stays");
    assert_eq!(db.next_lease_end().await.unwrap(), Some(111));

    // The first call's lease runs out: another host takes it, and the first holder's answer no longer counts.
    let taken = db.claim_call("c", 111, 10).await.unwrap().unwrap();
    assert_eq!(taken.id, first);
    assert!(!db.answer_call(first, first_holder, r#"{"Ok":"late"}"#, 112).await.unwrap());
    assert_eq!(db.take_answer(first).await.unwrap(), None, "not answered yet");
    assert!(db.answer_call(first, "c", r#"{"Ok":"d-1"}"#, 112).await.unwrap());
    assert_eq!(db.take_answer(first).await.unwrap().as_deref(), Some(r#"{"Ok":"d-1"}"#));
    assert_eq!(db.take_answer(first).await.unwrap(), None, "read once");

    // A call whose holder died and that nobody took again is withdrawn; one never claimed too.
    assert!(db.withdraw_call(second, 116).await.unwrap());
    let third = db.queue_call(r#"{"op":"identity_store_id"}"#, None, 120).await.unwrap();
    assert!(db.withdraw_call(third, 121).await.unwrap());
    assert!(db.claim_call("a", 122, 10).await.unwrap().is_none());
}
