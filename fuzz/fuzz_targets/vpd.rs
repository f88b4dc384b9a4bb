//! `vpd`: the SCSI VPD page and ATA IDENTIFY readers of `hardware_managers::generic::vpd`
//! (`page80_serial`, `scsi_ident`, `page89_identify`, `ata_identify`, `ata_from_sat`; public
//! as `#[doc(hidden)] pub mod vpd` for this target only) and udev's string cleaners
//! (`replace_whitespace`, `replace_chars`, `udev_clean`) applied to everything they return.
//!
//! Input: a 4-byte header `[flags, vendor length, model length, page 0x80 length]`, then the
//! INQUIRY vendor, model and page 0x80 bytes of those lengths; the rest is page 0x83, also
//! read as page 0x89 and as raw IDENTIFY data. Flag bit 0 drops page 0x83, bit 1 page 0x80
//! (a device without them).
//!
//! Checked: no panic; a page 0x80 serial only for page code 0x80, without NUL, at most 231
//! bytes' worth of characters; `unit_serial` is that serial when non-empty; `serial` is a type
//! digit (`0`-`3`) or `S` followed by `serial_short` (after the vendor and model for `0`
//! and `S`); a SCSI-2 style page gives `3` and hex in both; a WWN only for NAA (`3`), at most
//! 16 characters, an extension only after 16, `serial_short` starting with WWN + extension; IDENTIFY data only from 512 bytes,
//! a WWN only with NAA 5; the cleaners' output has no C whitespace (`replace_whitespace`), only
//! udev's allowed characters with `\` always starting `\x` (`replace_chars`, same character
//! count), no ASCII control or space after `udev_clean`, and each cleaner is idempotent.

#![no_main]

use hardware_managers::generic::vpd::{
    AtaIdent, ata_from_sat, ata_identify, page80_serial, page89_identify, replace_chars,
    replace_whitespace, scsi_ident, udev_clean,
};
use libfuzzer_sys::fuzz_target;

fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

fn check_cleaners(s: &str) {
    let w = replace_whitespace(s);
    assert!(!w.contains(is_c_space), "{w:?}");
    assert_eq!(replace_whitespace(&w), w);
    let c = replace_chars(s);
    assert_eq!(c.chars().count(), s.chars().count());
    let mut chars = c.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '\\' {
            assert_eq!(chars.next(), Some('x'), "{c:?}");
        } else {
            assert!(
                ch.is_ascii_alphanumeric()
                    || "#+-.:=@_".contains(ch)
                    || (!ch.is_ascii() && ch != '\u{fffd}'),
                "{ch:?} in {c:?}"
            );
        }
    }
    assert_eq!(replace_chars(&c), c);
    let u = udev_clean(s);
    assert!(
        u.chars().all(|ch| !ch.is_ascii() || ch.is_ascii_graphic()),
        "{u:?}"
    );
    assert_eq!(udev_clean(&u), u);
}

fn is_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn check_ata(ata: &AtaIdent) {
    assert!(!ata.model.contains('\0') && !ata.serial.contains('\0'));
    if let Some(wwn) = ata.wwn {
        assert_eq!(wwn >> 60, 5, "{wwn:x}");
    }
    check_cleaners(&ata.model);
    check_cleaners(&ata.serial);
}

fn split(data: &[u8]) -> Option<(u8, &[u8], &[u8], &[u8], &[u8])> {
    let (&[flags, vlen, mlen, plen], rest) = data.split_first_chunk::<4>()?;
    let (vendor, rest) = rest.split_at_checked(usize::from(vlen % 32))?;
    let (model, rest) = rest.split_at_checked(usize::from(mlen % 32))?;
    let (p80, p83) = rest.split_at_checked(usize::from(plen))?;
    Some((flags, vendor, model, p80, p83))
}

fuzz_target!(|data: &[u8]| {
    let Some((flags, vendor, model, p80, p83)) = split(data) else {
        return;
    };
    let page83 = (flags & 1 == 0).then_some(p83);
    let page80 = (flags & 2 == 0).then_some(p80);

    let serial80 = page80_serial(p80);
    if let Some(s) = &serial80 {
        assert_eq!(p80.get(1), Some(&0x80));
        assert!(!s.contains('\0'));
        assert!(s.chars().count() <= 231);
        check_cleaners(s);
    }

    let id = scsi_ident(page83, page80, vendor, model);
    let expected_unit = page80.and_then(page80_serial).filter(|s| !s.is_empty());
    assert_eq!(id.unit_serial, expected_unit);
    match (&id.serial, &id.serial_short) {
        (None, None) => {
            assert!(id.wwn.is_none() && id.wwn_vendor_extension.is_none());
        }
        (Some(serial), Some(short)) => {
            let kind = serial.chars().next().expect("serial has a type character");
            assert!("0123S".contains(kind), "{serial:?}");
            assert!(serial.ends_with(short.as_str()), "{serial:?} {short:?}");
            if kind == '0' || kind == 'S' {
                // Vendor (8) and model (16) sit between the type character and the id.
                assert!(serial.len() >= 1 + 24 + short.len(), "{serial:?}");
            } else if serial == short {
                // A SCSI-2 style page 0x83: `3` and the bytes in hex, in both.
                assert!(
                    serial.starts_with('3') && is_hex(&serial[1..]),
                    "{serial:?}"
                );
            } else {
                assert_eq!(serial.len(), 1 + short.len(), "{serial:?}");
            }
            if kind == 'S' {
                assert_eq!(Some(short), serial80.as_ref());
            }
            check_cleaners(serial);
            check_cleaners(short);
        }
        other => panic!("serial and serial_short disagree: {other:?}"),
    }
    if let Some(wwn) = &id.wwn {
        let short = id
            .serial_short
            .as_deref()
            .expect("a WWN comes with a serial");
        assert!(id.serial.as_deref().is_some_and(|s| s.starts_with('3')));
        assert!(!wwn.is_empty() && wwn.chars().count() <= 16);
        let ext = id.wwn_vendor_extension.as_deref().unwrap_or("");
        assert!(ext.chars().count() <= 16);
        assert!(ext.is_empty() || wwn.chars().count() == 16);
        assert!(
            short.starts_with(&format!("{wwn}{ext}")),
            "{short:?} {wwn:?} {ext:?}"
        );
    } else {
        assert!(id.wwn_vendor_extension.is_none());
    }

    let identify = page89_identify(p83);
    if let Some(identify) = identify {
        assert_eq!(identify.len(), 512);
        assert_eq!(p83.get(1), Some(&0x89));
        check_ata(&ata_identify(identify).expect("512 bytes of IDENTIFY data parse"));
    }
    match ata_identify(p83) {
        Some(ata) => {
            assert!(p83.len() >= 512);
            check_ata(&ata);
        }
        None => assert!(p83.len() < 512),
    }
    let sat = ata_from_sat(page83, page80);
    assert_eq!(sat.is_some(), page80.and_then(page80_serial).is_some());
    if let Some(sat) = sat {
        assert_eq!(Some(&sat.serial), serial80.as_ref());
        check_ata(&sat);
    }

    check_cleaners(&String::from_utf8_lossy(data));
});
