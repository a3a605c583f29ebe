//! The VLAN and bond messages hostplane builds, compared with what `ip link add … type
//! vlan|bond` sends (captured with strace: testdata/netlink/README.md). This kernel has no
//! 8021q/bonding driver, so the messages are checked here instead of live.

use rtnetlink::packet_core::{Emitable, Parseable};
use rtnetlink::packet_route::link::{BondMode, LinkMessage};

use super::{bond_message, vlan_message};

/// The bytes of the last buffer strace hex-dumped (`-e write=FD`) in `text`.
fn last_dump(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with(" * ") && line.contains("bytes in buffer") {
            out.clear();
        } else if let Some(rest) = line.strip_prefix(" | ") {
            // "00000  48 00 … 00  ascii |": offset (5), two spaces, 16 bytes in 49 columns.
            let hex: String = rest[7..56.min(rest.len())]
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            for i in (0..hex.len()).step_by(2) {
                out.push(u8::from_str_radix(&hex[i..i + 2], 16).unwrap());
            }
        }
    }
    out
}

/// The RTM_NEWLINK payload iproute2 sent, parsed.
fn captured(file: &str) -> (LinkMessage, Vec<u8>) {
    let path = format!("{}/testdata/netlink/{file}", env!("CARGO_MANIFEST_DIR"));
    let bytes = last_dump(&std::fs::read_to_string(&path).unwrap());
    let len = u32::from_ne_bytes(bytes[0..4].try_into().unwrap()) as usize;
    assert_eq!(len, bytes.len(), "{file}: nlmsg_len");
    // RTM_NEWLINK = 16.
    assert_eq!(u16::from_ne_bytes([bytes[4], bytes[5]]), 16, "{file}: type");
    let payload = bytes[16..].to_vec();
    let msg = LinkMessage::parse(payload.as_slice()).unwrap();
    (msg, payload)
}

/// Compared as parsed messages with the attributes in a fixed order, not as bytes: the two
/// senders differ only where the kernel does not care. rtnetlink puts IFLA_IFNAME before
/// IFLA_LINK (iproute2 the other way round) and writes IFLA_INFO_KIND with its NUL ("bond\0",
/// nla_len 9; iproute2: "bond", nla_len 8); the kernel reads both (nla_strcmp).
fn normalized(mut m: LinkMessage) -> LinkMessage {
    m.attributes.sort_by_key(|a| format!("{a:?}"));
    m
}

/// Our message survives its own emit + parse (what the kernel would read).
fn round_trip(m: &LinkMessage) -> LinkMessage {
    let mut b = vec![0; m.buffer_len()];
    m.emit(&mut b);
    LinkMessage::parse(b.as_slice()).unwrap()
}

#[test]
fn vlan_message_is_what_iproute2_sends() {
    let (theirs, _) = captured("vlan.strace");
    let ours = vlan_message("v0", 1, 5);
    assert_eq!(normalized(round_trip(&ours)), normalized(theirs));
}

#[test]
fn bond_messages_are_what_iproute2_sends() {
    for (file, name, mode) in [
        ("bond.strace", "b0", BondMode::ActiveBackup),
        ("bond-8023ad.strace", "b1", BondMode::Ieee8023Ad),
    ] {
        let (theirs, _) = captured(file);
        let ours = bond_message(name, mode);
        assert_eq!(normalized(round_trip(&ours)), normalized(theirs), "{file}");
    }
}
