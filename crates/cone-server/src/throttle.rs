//! The sign-in throttle: recent failed password sign-ins by user name, kept in memory by each process.

/// Recent failed password sign-ins by user name, in this process. Per user name rather than per address, since
/// behind a proxy every address is the proxy's; the cost is that someone who keeps guessing blocks the password
/// sign-in of that name (not OpenID Connect, nor sessions already open) for as long as they keep on.
///
/// Names of Cone users are kept apart from names nobody has: there are only so many users, so their failures are
/// never forgotten to make room, and a flood of made-up names (kept at most [`Throttle::NAMES`], the quietest
/// forgotten first) cannot push a real user's failures out.
#[derive(Default)]
pub struct Throttle {
    users: std::sync::Mutex<std::collections::HashMap<String, Vec<i64>>>,
    unknown: std::sync::Mutex<std::collections::HashMap<String, Vec<i64>>>,
}

type Failures = std::collections::HashMap<String, Vec<i64>>;

impl Throttle {
    pub const LIMIT: usize = 5;
    pub const WINDOW: i64 = 15 * 60;
    /// Made-up names kept at most, so that they cannot fill the memory.
    const NAMES: usize = 10_000;

    /// Seconds until `username` may try again, if it is throttled.
    pub fn wait(&self, username: &str, now: i64) -> Option<i64> {
        let name = username.to_lowercase();
        [&self.users, &self.unknown].into_iter().find_map(|table| {
            let failures = table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let recent: Vec<i64> = failures.get(&name)?.iter().copied().filter(|t| now - t < Self::WINDOW).collect();
            (recent.len() >= Self::LIMIT).then(|| recent[recent.len() - Self::LIMIT] + Self::WINDOW - now)
        })
    }

    /// Records a failure for `username`, the name of a Cone user if `known`.
    pub fn fail(&self, username: &str, known: bool, now: i64) {
        let table = if known { &self.users } else { &self.unknown };
        let mut failures = table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !known && failures.len() >= Self::NAMES {
            make_room(&mut failures, now);
        }
        let times = failures.entry(username.to_lowercase()).or_default();
        times.retain(|t| now - t < Self::WINDOW);
        times.push(now);
    }
}

/// Forgets the names whose failures are all old, and if none are, the quietest.
fn make_room(failures: &mut Failures, now: i64) {
    failures.retain(|_, times| times.iter().any(|t| now - t < Throttle::WINDOW));
    if failures.len() >= Throttle::NAMES {
        let quietest = failures.iter().min_by_key(|(_, times)| times.last().copied()).map(|(n, _)| n.clone());
        quietest.map(|n| failures.remove(&n));
    }
}

#[cfg(test)]
mod tests {
    use super::Throttle;

    #[test]
    fn a_flood_of_made_up_names_cannot_push_out_a_users_failures() {
        let t = Throttle::default();
        for i in 0..Throttle::LIMIT as i64 {
            t.fail("Alice", true, i);
        }
        assert!(t.wait("alice", 10).is_some(), "five failures throttle the name");
        for i in 0..(Throttle::NAMES as i64 + 50) {
            t.fail(&format!("made-up-{i}"), false, 20 + i / 1000);
        }
        assert!(t.wait("alice", 30).is_some(), "alice is still throttled");
        assert!(t.wait("made-up-0", 30).is_none(), "the oldest made-up names made room");
        assert!(t.wait("alice", Throttle::WINDOW + 5).is_none(), "failures leave the window");
    }
}
