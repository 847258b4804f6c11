//! The sign-in throttle: recent failed password sign-ins by user name, kept in memory by each process.

/// Recent failed password sign-ins by user name, in this process. Per user name rather than per address, since
/// behind a proxy every address is the proxy's; the cost is that someone who keeps guessing blocks the password
/// sign-in of that name (not OpenID Connect, nor sessions already open) for as long as they keep on.
#[derive(Default)]
pub struct Throttle {
    failures: std::sync::Mutex<std::collections::HashMap<String, Vec<i64>>>,
}

impl Throttle {
    pub const LIMIT: usize = 5;
    pub const WINDOW: i64 = 15 * 60;
    /// Names kept at most; beyond it the quietest are forgotten, so that made-up names cannot fill the memory.
    const NAMES: usize = 10_000;

    pub fn wait(&self, username: &str, now: i64) -> Option<i64> {
        let failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let recent: Vec<i64> =
            failures.get(&username.to_lowercase())?.iter().copied().filter(|t| now - t < Self::WINDOW).collect();
        (recent.len() >= Self::LIMIT).then(|| recent[recent.len() - Self::LIMIT] + Self::WINDOW - now)
    }

    pub fn fail(&self, username: &str, now: i64) {
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.len() >= Self::NAMES {
            failures.retain(|_, times| times.iter().any(|t| now - t < Self::WINDOW));
            if failures.len() >= Self::NAMES {
                let quietest = failures.iter().min_by_key(|(_, times)| times.last().copied()).map(|(n, _)| n.clone());
                quietest.map(|n| failures.remove(&n));
            }
        }
        let times = failures.entry(username.to_lowercase()).or_default();
        times.retain(|t| now - t < Self::WINDOW);
        times.push(now);
    }
}
