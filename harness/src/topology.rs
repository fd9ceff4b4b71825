//! Which hosts the simulated world has and which users run on which: the
//! server's host, and the client hosts users share. Plain data every layer
//! reads (the scenario's fault plan names hosts, the world builds them), so
//! none of them reaches into another for it.

/// The server's turmoil host name.
pub const SERVER_HOST: &str = "server";
/// The server's port.
pub const SERVER_PORT: u16 = 80;
/// Client hosts beyond which users share hosts. Turmoil's cost is per host per
/// tick, idle or not (measured: ~1.2 µs), so the world's hosts, not its users,
/// set the speed: 10 users on 10 hosts ran 513× real time, on 5 hosts 1000×,
/// and with the observer moved onto the server's host 1170×.
pub const MAX_CLIENT_HOSTS: usize = 5;

/// Client host names for `users` users.
pub fn client_hosts(users: usize) -> Vec<String> {
    let per_host = users_per_host(users);
    (0..users.div_ceil(per_host))
        .map(|h| format!("c{h}"))
        .collect()
}

/// The host a user runs on.
pub fn host_of(user: usize, users: usize) -> String {
    format!("c{}", user / users_per_host(users))
}

fn users_per_host(users: usize) -> usize {
    users.div_ceil(MAX_CLIENT_HOSTS).max(1)
}
