//! Hooks for the end-to-end tests, compiled into debug builds only (release builds get the
//! constant answers below): environment variables the test harness sets.
//!
//! - `MXDNS_TEST_PANIC_QNAME=<name>`: a UDP loop panics on a query for this name (lower case,
//!   as sent), to test that the loop is started again.
//! - `MXDNS_TEST_PAUSE_FOLLOWER=<path>`: the follower does nothing while this file exists, to
//!   test that health sees it fall behind.

/// The query name (in wire form, lower case) on which a UDP loop panics.
#[cfg(debug_assertions)]
pub fn udp_panic_name() -> Option<Vec<u8>> {
    let name = std::env::var("MXDNS_TEST_PANIC_QNAME").ok()?;
    let mut wire = Vec::new();
    for label in name.trim_end_matches('.').split('.') {
        wire.push(label.len() as u8);
        wire.extend(label.to_ascii_lowercase().bytes());
    }
    wire.push(0);
    Some(wire)
}

#[cfg(not(debug_assertions))]
pub fn udp_panic_name() -> Option<Vec<u8>> {
    None
}

/// Whether the follower is paused.
#[cfg(debug_assertions)]
pub fn follower_paused() -> bool {
    std::env::var_os("MXDNS_TEST_PAUSE_FOLLOWER").is_some_and(|p| std::path::Path::new(&p).exists())
}

#[cfg(not(debug_assertions))]
pub fn follower_paused() -> bool {
    false
}
