//! `ipmitool_lan`: the BMC address rules of `hardware_managers::generic::bmc` (public as
//! `#[doc(hidden)] pub mod bmc` for this target only): `bmc_address`, `bmc_v6address` and
//! `bmc_mac` over made-up `ipmitool lan print N` / `lan6 print N ...` answers (their awk
//! extraction, the YAML reading of `dynamic_addr`/`static_addr`, the address and MAC checks).
//! No process runs: each function gets the answers through its `run` callback.
//!
//! Input: the answers, records separated by `---` lines, given to the calls in order (and
//! again from the first when they run out); in a record, text after a NUL byte is the standard
//! error (then the exit status is 1, else 0). A record `!` alone is a failed call (`Err`:
//! give up on the BMC).
//!
//! Checked: no panic; at most 33 calls per function; the IPv4 answer is `0.0.0.0` or an IP
//! address printed in the input; the IPv6 answer is `::/0` or an IP address; a MAC is six
//! pairs of hex digits, not all zero, printed in the input.

#![no_main]

use std::net::IpAddr;

use hardware_managers::generic::bmc::{Answer, bmc_address, bmc_mac, bmc_v6address};
use hardware_managers::runner::Ran;
use libfuzzer_sys::fuzz_target;

/// A `run` callback answering from `records` in turn; counts the calls.
fn replay<'a>(records: &'a [&'a str], calls: &'a mut usize) -> impl FnMut(&[&str]) -> Answer + 'a {
    move |args: &[&str]| {
        assert!(matches!(args.first(), Some(&"lan" | &"lan6")), "{args:?}");
        let record = records[*calls % records.len()];
        *calls += 1;
        assert!(*calls <= 33, "more than 3 calls per channel");
        if record == "!" {
            return Err(());
        }
        let (stdout, stderr) = record.split_once('\0').unwrap_or((record, ""));
        Ok(Ran {
            code: Some(i32::from(!stderr.is_empty())),
            stdout: stdout.to_string(),
            stderr: stderr.to_string(),
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let records: Vec<&str> = text.split("\n---\n").collect();

    let mut calls = 0;
    if let Ok(v4) = bmc_address(replay(&records, &mut calls)) {
        assert!(v4.parse::<IpAddr>().is_ok(), "{v4:?}");
        assert!(v4 == "0.0.0.0" || text.contains(&v4), "{v4:?}");
    }
    let mut calls = 0;
    if let Ok(v6) = bmc_v6address(replay(&records, &mut calls)) {
        assert!(v6 == "::/0" || v6.parse::<IpAddr>().is_ok(), "{v6:?}");
    }
    let mut calls = 0;
    if let Ok(Some(mac)) = bmc_mac(replay(&records, &mut calls)) {
        let parts: Vec<&str> = mac.split(':').collect();
        assert_eq!(parts.len(), 6, "{mac:?}");
        assert!(
            parts
                .iter()
                .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
        );
        assert_ne!(mac, "00:00:00:00:00:00");
        assert!(text.contains(&mac), "{mac:?}");
    }
});
