//! Lookups against a real UDP responder on 127.0.0.1 answering unicast, as an mDNS responder
//! answers a legacy-unicast query.

use std::net::{Ipv4Addr, Ipv6Addr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::message::{FLAG_AUTHORITATIVE, Record};
use super::*;

fn record(name: &str, rtype: u16, data: RData) -> Record {
    Record {
        name: Name::parse(name),
        rtype,
        class: CLASS_IN | CLASS_TOP_BIT,
        ttl: 120,
        data,
    }
}

const INSTANCE: &str = "baremetal._openstack._tcp.local.";

fn srv_txt(txt: &[&str], server: &str) -> Vec<Record> {
    vec![
        record(
            "_openstack._tcp.local",
            TYPE_PTR,
            RData::Ptr(Name::parse(INSTANCE)),
        ),
        record(
            INSTANCE,
            TYPE_SRV,
            RData::Srv {
                priority: 0,
                weight: 0,
                port: 6385,
                target: Name::parse(server),
            },
        ),
        record(
            INSTANCE,
            TYPE_TXT,
            RData::Txt(txt.iter().map(|s| s.as_bytes().to_vec()).collect()),
        ),
    ]
}

/// A responder answering each query with `answer(query number, query)`, `None` for silence.
/// Returns its address and the count of queries seen.
fn responder(
    answer: impl Fn(usize, &Message) -> Option<(Vec<Record>, Vec<Record>)> + Send + 'static,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = sock.local_addr().expect("addr");
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    std::thread::spawn(move || {
        let mut buf = [0u8; 9000];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let Ok(q) = Message::decode(&buf[..n]) else {
                continue;
            };
            let i = count.fetch_add(1, Ordering::SeqCst);
            assert!(q.flags & FLAG_RESPONSE == 0);
            assert!(
                q.questions
                    .iter()
                    .all(|q| q.qclass == CLASS_IN | CLASS_TOP_BIT)
            );
            let Some((answers, additionals)) = answer(i, &q) else {
                continue;
            };
            let reply = Message {
                id: q.id,
                flags: FLAG_RESPONSE | FLAG_AUTHORITATIVE,
                questions: q.questions.clone(),
                answers,
                authorities: vec![],
                additionals,
            };
            let _ = sock.send_to(&reply.encode().expect("encode"), from);
        }
    });
    (addr, seen)
}

fn options(to: SocketAddr) -> LookupOptions {
    LookupOptions {
        attempts: 2,
        attempt_timeout: Duration::from_millis(700),
        first_delay: Duration::from_millis(50),
        resend_interval: Duration::from_millis(100),
        destinations: Destinations::Unicast(vec![to]),
        ..LookupOptions::default()
    }
}

#[tokio::test]
async fn finds_the_api_in_one_answer() -> Result<(), MdnsError> {
    let (addr, _) = responder(|_, q| {
        let asks_srv = q
            .questions
            .iter()
            .any(|q| q.qtype == TYPE_SRV && q.name.same(&Name::parse(INSTANCE)));
        asks_srv.then(|| {
            (
                srv_txt(
                    &[
                        "path=/baremetal",
                        "protocol=http",
                        "ipa_ntp_server=192.0.2.1",
                        "ipa_api_url=http://elsewhere",
                    ],
                    "ironic.local",
                ),
                vec![
                    record("ironic.local", TYPE_AAAA, RData::Aaaa(Ipv6Addr::LOCALHOST)),
                    record("ironic.local", TYPE_A, RData::A(Ipv4Addr::LOCALHOST)),
                    record(
                        "ironic.local",
                        TYPE_A,
                        RData::A(Ipv4Addr::new(192, 0, 2, 10)),
                    ),
                    record(
                        "other.local",
                        TYPE_A,
                        RData::A(Ipv4Addr::new(192, 0, 2, 99)),
                    ),
                ],
            )
        })
    });
    let e = get_endpoint(BAREMETAL, &options(addr)).await?;
    assert_eq!(e.url, "http://192.0.2.10:6385/baremetal");
    let o = e.overrides(Some(DEFAULT_ALLOWED_OVERRIDES));
    assert_eq!(
        o,
        [Override {
            option: "ntp_server".into(),
            value: "192.0.2.1".into()
        }]
    );
    Ok(())
}

#[tokio::test]
async fn asks_for_the_address_of_the_srv_target() -> Result<(), MdnsError> {
    let (addr, seen) = responder(|_, q| {
        let asks_a = q
            .questions
            .iter()
            .any(|q| q.qtype == TYPE_AAAA && q.name.same(&Name::parse("ironic.local")));
        if asks_a {
            Some((
                vec![record(
                    "ironic.local",
                    TYPE_AAAA,
                    RData::Aaaa("2001:db8::10".parse().unwrap_or(Ipv6Addr::UNSPECIFIED)),
                )],
                vec![],
            ))
        } else {
            Some((srv_txt(&[], "ironic.local"), vec![]))
        }
    });
    let e = get_endpoint(BAREMETAL, &options(addr)).await?;
    assert_eq!(e.url, "https://[2001:db8::10]:6385");
    assert!(seen.load(Ordering::SeqCst) >= 2);
    Ok(())
}

#[tokio::test]
async fn silence_and_garbage_give_not_found_after_all_attempts() {
    let (addr, seen) = responder(|_, _| None);
    // Garbage answers too: a second responder that sends junk back.
    let junk = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let junk_addr = junk.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        junk.set_read_timeout(Some(Duration::from_secs(10))).ok();
        while let Ok((_, from)) = junk.recv_from(&mut buf) {
            let _ = junk.send_to(b"\x00\x00\x84\x00\x00\x00\x00\x05\xc0", from);
        }
    });
    let mut opts = options(addr);
    opts.attempt_timeout = Duration::from_millis(300);
    opts.destinations = Destinations::Unicast(vec![addr, junk_addr]);
    let started = std::time::Instant::now();
    let e = get_endpoint(BAREMETAL_INTROSPECTION, &opts)
        .await
        .expect_err("nobody answers");
    assert!(
        matches!(e, MdnsError::NotFound { attempts: 2, .. }),
        "{e:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert!(seen.load(Ordering::SeqCst) >= 2);
}
