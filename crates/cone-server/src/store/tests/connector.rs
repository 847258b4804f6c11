//! The connector's calls in the store, on both backends: each claimed by one host at a time (also when two claim at
//! once) and never by a host whose credentials were revoked, renewed and answered only by its holder, put back when
//! its lease runs out, withdrawn only when no host holds it; its answer handed over in memory to a caller waiting in
//! this process, or written down for one that waits elsewhere and read once.

use crate::store::testing;
use crate::store::*;

testing::on_both_backends!(a_call_is_held_by_one_host_at_a_time_and_answered_once);

async fn a_call_is_held_by_one_host_at_a_time_and_answered_once(db: Db) {
    db.apply_snapshot("aws", &testing::production_admin(vec![testing::user("u-carol", "carol")]), 1).await.unwrap();
    let carol = db.user_by_name("carol").await.unwrap().unwrap();
    db.rotate_connector_credentials("k", "hash", carol.id, 1).await.unwrap();
    let mut first = db.queue_call(r#"{"op":"identity_store_id"}"#, None, 100).await.unwrap();
    let second = db.queue_call(r#"{"op":"sync"}"#, Some("run-1"), 100).await.unwrap();
    let (first_id, second_id) = (first.id, second.id);
    // The second call's caller waits on another replica: its answer must be written down.
    drop(second);

    // Two hosts claiming at once get the two calls, oldest first, never the same one.
    let (a, b) = tokio::join!(db.claim_call("a", "k", 101, 10), db.claim_call("b", "k", 101, 10));
    let (a, b) = (a.unwrap().unwrap().id, b.unwrap().unwrap().id);
    let mut got = [a, b];
    got.sort();
    assert_eq!(got, [first_id, second_id]);
    assert!(db.claim_call("c", "k", 101, 10).await.unwrap().is_none(), "nothing left to claim");
    let (first_holder, second_holder) = if a == first_id { ("a", "b") } else { ("b", "a") };

    // Only the holder renews, and learns the spool run of a sync.
    assert_eq!(db.renew_call(second_id, second_holder, 105, 10).await.unwrap(), Some(Some("run-1".into())));
    assert_eq!(db.renew_call(second_id, "c", 105, 10).await.unwrap(), None);
    // Looked at without renewing: the holder's, no other host's.
    assert_eq!(db.held_call(second_id, second_holder, 106).await.unwrap(), Some(Some("run-1".into())));
    assert_eq!(db.held_call(second_id, "c", 106).await.unwrap(), None);
    assert!(!db.withdraw_call(first_id, 105).await.unwrap(), "a held call stays");
    assert_eq!(db.next_lease_end().await.unwrap(), Some(111));

    // The first call's lease runs out: another host takes it, and the first holder's answer no longer counts.
    assert_eq!(db.claim_call("c", "k", 111, 10).await.unwrap().unwrap().id, first_id);
    assert!(!db.answer_call(first_id, first_holder, r#"{"Ok":"late"}"#, 112).await.unwrap());
    assert!(first.answer.try_recv().is_err(), "the stale answer is not handed over");
    assert!(db.answer_call(first_id, "c", r#"{"Ok":"d-1"}"#, 112).await.unwrap());
    assert_eq!(first.answer.try_recv().unwrap(), r#"{"Ok":"d-1"}"#, "handed over in memory");
    assert_eq!(db.take_answer(first_id).await.unwrap(), None, "and not written down");

    // Answered for a caller elsewhere: written down, and read once.
    assert!(db.answer_call(second_id, second_holder, r#"{"Ok":null}"#, 113).await.unwrap());
    assert_eq!(db.take_answer(second_id).await.unwrap().as_deref(), Some(r#"{"Ok":null}"#));
    assert_eq!(db.take_answer(second_id).await.unwrap(), None, "read once");

    // A call whose holder died and that nobody took again is withdrawn; one never claimed too.
    let third = db.queue_call(r#"{"op":"identity_store_id"}"#, None, 120).await.unwrap();
    assert_eq!(db.claim_call("a", "k", 120, 10).await.unwrap().unwrap().id, third.id);
    assert!(!db.withdraw_call(third.id, 125).await.unwrap());
    assert!(db.withdraw_call(third.id, 130).await.unwrap());
    let fourth = db.queue_call(r#"{"op":"identity_store_id"}"#, None, 131).await.unwrap();
    assert!(db.withdraw_call(fourth.id, 131).await.unwrap());
    assert!(db.claim_call("a", "k", 132, 10).await.unwrap().is_none());

    // Credentials revoked while a host waits for a call: it is handed none, and the call waits for another.
    let fifth = db.queue_call(r#"{"op":"identity_store_id"}"#, None, 140).await.unwrap();
    db.revoke_connector_credentials(carol.id, 141).await.unwrap();
    assert!(db.claim_call("a", "k", 141, 10).await.unwrap().is_none(), "revoked credentials claim nothing");
    db.rotate_connector_credentials("k2", "hash", carol.id, 142).await.unwrap();
    assert_eq!(db.claim_call("b", "k2", 142, 10).await.unwrap().unwrap().id, fifth.id);
}
