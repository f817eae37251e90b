//! MariaDB binary logs from untrusted bytes (a spool file, an archived
//! log read back): the walk never panics, and the groups it reports lie
//! inside the walked bytes, in order, and within what may be replayed.
#![no_main]
use std::ops::ControlFlow;

use libfuzzer_sys::fuzz_target;
use lifeboat_sources::mariadb::binlog::scan;

fuzz_target!(|data: &[u8]| {
    let mut last_end = 0u64;
    let r = scan(data, |g| {
        assert!(g.start >= last_end && g.end > g.start, "groups in order");
        last_end = g.end;
        ControlFlow::Continue(())
    });
    if let Ok(s) = r {
        assert!(s.complete_to <= s.len && s.len <= data.len() as u64);
        assert!(last_end <= s.complete_to);
    }
});
