//! A real UDP NTP responder on 127.0.0.1 against the client, with a recording clock. The
//! machine's clock is never set.

use std::net::UdpSocket;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::packet::{PACKET_LEN, Timestamp, system_nanos};
use super::*;

/// How the responder answers one request.
#[derive(Clone, Copy)]
enum Answer {
    /// A good stratum-2 reply `ahead` of real time.
    Good { ahead: Duration },
    /// A good-looking reply with someone else's origin timestamp.
    WrongOrigin,
    /// Stratum 0, code `RATE`.
    KissOfDeath,
    /// Leap indicator 3.
    Unsynchronised,
    /// Never answers.
    Silent,
    /// 13 random-ish bytes.
    Garbage,
}

fn responder(answer: Answer) -> (String, JoinHandle<()>) {
    responder_on(
        UdpSocket::bind("127.0.0.1:0").expect("bind responder"),
        answer,
    )
}

fn responder_on(sock: UdpSocket, answer: Answer) -> (String, JoinHandle<()>) {
    let addr = sock.local_addr().expect("local addr").to_string();
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            return;
        };
        assert_eq!(n, PACKET_LEN);
        assert_eq!(buf[0], 0x23, "version 4, mode 3");
        let mut origin = [0u8; 8];
        origin.copy_from_slice(&buf[40..48]);
        let mut r = [0u8; PACKET_LEN];
        r[0] = 4 << 3 | 4;
        r[1] = 2;
        r[24..32].copy_from_slice(&origin);
        let reply: Vec<u8> = match answer {
            Answer::Good { ahead } => {
                let now = Timestamp::from_system(SystemTime::now() + ahead);
                r[32..40].copy_from_slice(&now.0.to_be_bytes());
                r[40..48].copy_from_slice(&now.0.to_be_bytes());
                r.to_vec()
            }
            Answer::WrongOrigin => {
                r[24] ^= 0xff;
                r[40..48].copy_from_slice(&1u64.to_be_bytes());
                r.to_vec()
            }
            Answer::KissOfDeath => {
                r[1] = 0;
                r[12..16].copy_from_slice(b"RATE");
                r.to_vec()
            }
            Answer::Unsynchronised => {
                r[0] |= 3 << 6;
                r[40..48].copy_from_slice(&1u64.to_be_bytes());
                r.to_vec()
            }
            Answer::Silent => return,
            Answer::Garbage => b"\x24\x01garbage!!!!".to_vec(),
        };
        let _ = sock.send_to(&reply, from);
    });
    (addr, h)
}

const T: Duration = Duration::from_secs(3);

#[test]
fn good_answer_sets_the_clock_ahead() {
    let (addr, h) = responder(Answer::Good {
        ahead: Duration::from_secs(100),
    });
    let clock = RecordingClock::default();
    let before = SystemTime::now();
    let sample = sync(std::slice::from_ref(&addr), T, &clock).expect("sync");
    h.join().expect("responder");
    assert_eq!(sample.server.to_string(), addr);
    assert_eq!(sample.stratum, 2);
    let offset_s = sample.offset_nanos as f64 / 1e9;
    assert!((offset_s - 100.0).abs() < 2.0, "{offset_s}");
    let sets = clock.sets();
    assert_eq!(sets.len(), 1);
    let moved = (system_nanos(sets[0]) - system_nanos(before)) as f64 / 1e9;
    assert!((moved - 100.0).abs() < 3.0, "{moved}");
}

#[test]
fn checks_refuse_bad_replies() {
    for (answer, check) in [
        (
            Answer::WrongOrigin,
            (|e: &NtpError| matches!(e, NtpError::OriginMismatch)) as fn(&NtpError) -> bool,
        ),
        (
            Answer::KissOfDeath,
            |e| matches!(e, NtpError::KissOfDeath(c) if c == "RATE"),
        ),
        (Answer::Unsynchronised, |e| {
            matches!(e, NtpError::Unsynchronised(_))
        }),
        (Answer::Garbage, |e| matches!(e, NtpError::Malformed(_))),
    ] {
        let (addr, h) = responder(answer);
        let e = query_with(&addr, T, &RecordingClock::default()).expect_err("refused");
        h.join().expect("responder");
        assert!(check(&e), "{e:?}");
    }
}

#[test]
fn silence_times_out_and_next_server_is_tried() {
    let (silent, h1) = responder(Answer::Silent);
    let (good, h2) = responder(Answer::Good {
        ahead: Duration::ZERO,
    });
    let clock = RecordingClock::default();
    let started = std::time::Instant::now();
    let e = query_with(&silent, Duration::from_millis(200), &clock).expect_err("timeout");
    assert!(matches!(e, NtpError::Timeout(_)), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    h1.join().expect("responder");

    let (silent, h3) = responder(Answer::Silent);
    let sample = sync(&[silent, good.clone()], Duration::from_millis(300), &clock).expect("second");
    assert_eq!(sample.server.to_string(), good);
    assert_eq!(clock.sets().len(), 1);
    h2.join().expect("responder");
    h3.join().expect("responder");
}

#[test]
fn startup_failure_is_fatal_only_when_asked() {
    let clock = RecordingClock::default();
    assert_eq!(
        sync_at_startup(&[], T, true, &clock).expect("no servers"),
        None
    );
    let (addr, h) = responder(Answer::KissOfDeath);
    assert_eq!(
        sync_at_startup(&[addr], T, false, &clock).expect("logged"),
        None
    );
    h.join().expect("responder");
    let (addr, h) = responder(Answer::Good {
        ahead: Duration::ZERO,
    });
    let e = sync_at_startup(&[addr], T, true, &RecordingClock::failing()).expect_err("fatal");
    assert!(matches!(e, NtpError::SetClock(_)), "{e:?}");
    h.join().expect("responder");
    assert!(clock.sets().is_empty());
}

#[test]
fn server_spellings_resolve() {
    for (s, want) in [
        ("127.0.0.1", "127.0.0.1:123"),
        ("127.0.0.1:1234", "127.0.0.1:1234"),
        ("::1", "[::1]:123"),
        ("[::1]", "[::1]:123"),
        ("[::1]:99", "[::1]:99"),
        ("localhost:77", ""),
    ] {
        let got = resolve(s).expect(s);
        if want.is_empty() {
            assert!(got.iter().all(|a| a.port() == 77), "{got:?}");
        } else {
            assert_eq!(got[0].to_string(), want);
        }
    }
    assert!(resolve("").is_err());
    assert!(matches!(
        sync(&[], T, &RecordingClock::default()),
        Err(NtpError::NoServers)
    ));
}

#[test]
fn ipv6_loopback_server() {
    // Skipped where the host has no IPv6 loopback.
    let Ok(sock) = UdpSocket::bind("[::1]:0") else {
        return;
    };
    let (addr, h) = responder_on(
        sock,
        Answer::Good {
            ahead: Duration::from_secs(1),
        },
    );
    assert!(addr.starts_with("[::1]:"), "{addr}");
    let sample = query_with(&addr, T, &RecordingClock::default()).expect("query over IPv6");
    assert!(sample.server.is_ipv6());
    h.join().expect("responder");
}
