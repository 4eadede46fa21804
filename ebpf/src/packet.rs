//! A small packet builder for the program tests (and anything else that needs frames):
//! Ethernet with up to any number of VLAN tags, IPv4 or IPv6, TCP or UDP, with correct
//! length fields. The IPv4 header checksum is filled in; TCP/UDP checksums stay zero,
//! which XDP never checks.
//!
//! IPv4 headers may carry options (IHL 6 to 15) and may be fragments (MF flag, offset).
//!
//! It also makes the malformed frames the parser must survive: a truncated copy, an IPv4
//! IHL or version that lies, an IPv6 hop-by-hop extension header, an ARP request.
//!
//! ```
//! use tollgate_ebpf::packet::{PacketBuilder, TcpFlags};
//! let syn = PacketBuilder::from_source("192.0.2.7".parse().unwrap())
//!     .tcp(443, TcpFlags::SYN)
//!     .build();
//! assert_eq!(syn.bytes().len(), 14 + 20 + 20);
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::BitOr;

/// Ethernet header length without tags.
pub const ETH_HLEN: usize = 14;
/// TPID of an 802.1Q (customer) VLAN tag.
pub const TPID_8021Q: u16 = 0x8100;
/// TPID of an 802.1ad (service, outer) VLAN tag.
pub const TPID_8021AD: u16 = 0x88a8;
/// Ethertype of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// Ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Ethertype of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;

/// IPv4 option: End of Option List (also the padding to a whole 32-bit word).
pub const IPOPT_EOL: u8 = 0;
/// IPv4 option: No Operation, one byte.
pub const IPOPT_NOP: u8 = 1;
/// Most option bytes an IPv4 header can hold (IHL 15: 60 bytes, 20 of them fixed).
pub const IPV4_MAX_OPTIONS: usize = 40;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPV6_HOP_BY_HOP: u8 = 0;
const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// TCP flag bits (the 14th header byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// SYN: opens a connection.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// RST.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// PSH.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// ACK: every segment after the first SYN.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// SYN|ACK: the server's answer to a SYN (not a new connection).
    pub const SYN_ACK: TcpFlags = TcpFlags(0x12);
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;

    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

/// The transport header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP with these flags.
    Tcp {
        /// Destination port.
        dport: u16,
        /// Flags.
        flags: TcpFlags,
    },
    /// UDP.
    Udp {
        /// Destination port.
        dport: u16,
    },
}

#[derive(Debug, Clone, Copy)]
enum Ip {
    V4 { src: Ipv4Addr, dst: Ipv4Addr },
    V6 { src: Ipv6Addr, dst: Ipv6Addr },
}

/// Builds one Ethernet frame. Defaults: TCP SYN from port 40000 to port 443, no tags,
/// no payload.
#[derive(Debug, Clone)]
pub struct PacketBuilder {
    vlans: Vec<(u16, u16)>,
    ip: Ip,
    transport: Transport,
    sport: u16,
    payload: Vec<u8>,
    ihl: Option<u8>,
    version: Option<u8>,
    ipv4_options: Vec<u8>,
    ipv4_fragment: Option<(u16, bool)>,
    ipv6_extension: bool,
}

/// A built frame and where its headers start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    bytes: Vec<u8>,
    l3_offset: usize,
    l4_offset: usize,
}

impl Packet {
    /// The frame.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The frame, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Offset of the IP header (after the Ethernet header and tags).
    pub fn l3_offset(&self) -> usize {
        self.l3_offset
    }

    /// Offset of the TCP/UDP header.
    pub fn l4_offset(&self) -> usize {
        self.l4_offset
    }

    /// The first `len` bytes (all of them when `len` is longer).
    pub fn truncated(&self, len: usize) -> Vec<u8> {
        self.bytes[..len.min(self.bytes.len())].to_vec()
    }
}

impl AsRef<[u8]> for Packet {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl PacketBuilder {
    /// An IPv4 packet from `src` to `dst`.
    pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr) -> Self {
        Self::with_ip(Ip::V4 { src, dst })
    }

    /// An IPv6 packet from `src` to `dst`.
    pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr) -> Self {
        Self::with_ip(Ip::V6 { src, dst })
    }

    /// A packet from `src` to a documentation address of the same family (192.0.2.1 or
    /// 2001:db8::1): the filter only looks at the source and the destination port.
    pub fn from_source(src: IpAddr) -> Self {
        match src {
            IpAddr::V4(src) => Self::ipv4(src, Ipv4Addr::new(192, 0, 2, 1)),
            IpAddr::V6(src) => Self::ipv6(src, Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        }
    }

    fn with_ip(ip: Ip) -> Self {
        PacketBuilder {
            vlans: Vec::new(),
            ip,
            transport: Transport::Tcp {
                dport: 443,
                flags: TcpFlags::SYN,
            },
            sport: 40000,
            payload: Vec::new(),
            ihl: None,
            version: None,
            ipv4_options: Vec::new(),
            ipv4_fragment: None,
            ipv6_extension: false,
        }
    }

    /// TCP to `dport` with `flags`.
    pub fn tcp(mut self, dport: u16, flags: TcpFlags) -> Self {
        self.transport = Transport::Tcp { dport, flags };
        self
    }

    /// UDP to `dport`.
    pub fn udp(mut self, dport: u16) -> Self {
        self.transport = Transport::Udp { dport };
        self
    }

    /// The source port (default 40000).
    pub fn source_port(mut self, sport: u16) -> Self {
        self.sport = sport;
        self
    }

    /// Adds a VLAN tag (outermost first): `tpid` is [`TPID_8021Q`] or [`TPID_8021AD`].
    pub fn vlan(mut self, tpid: u16, vid: u16) -> Self {
        self.vlans.push((tpid, vid & 0x0fff));
        self
    }

    /// Bytes after the transport header.
    pub fn payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }

    /// Writes `ihl` into the IPv4 IHL field (the header keeps its real length: 20 bytes
    /// plus any [`ipv4_options`](Self::ipv4_options)): a lie for malformed-packet tests.
    pub fn ipv4_ihl(mut self, ihl: u8) -> Self {
        self.ihl = Some(ihl & 0x0f);
        self
    }

    /// IPv4 options between the fixed header and the transport header (ignored for IPv6),
    /// e.g. `&[IPOPT_NOP; 4]`. They are padded with [`IPOPT_EOL`] to a whole number of
    /// 32-bit words; IHL becomes 5 plus that number of words (unless
    /// [`ipv4_ihl`](Self::ipv4_ihl) writes another value), and the total length and
    /// header checksum cover them.
    ///
    /// # Panics
    ///
    /// When `options` is longer than [`IPV4_MAX_OPTIONS`] (40) bytes: IHL cannot say more.
    pub fn ipv4_options(mut self, options: &[u8]) -> Self {
        assert!(
            options.len() <= IPV4_MAX_OPTIONS,
            "{} IPv4 option bytes: at most {IPV4_MAX_OPTIONS} fit",
            options.len()
        );
        self.ipv4_options = options.to_vec();
        self
    }

    /// Makes the IPv4 packet a fragment (ignored for IPv6): `offset` is the fragment
    /// offset in 8-byte units (13 bits), `more_fragments` the MF flag; DF is cleared.
    /// A first fragment is `(0, true)`.
    ///
    /// The transport header is still written after the IP header. In a fragment after the
    /// first (`offset > 0`) those bytes are payload that merely looks like a TCP/UDP
    /// header, which is what a test wants: the filter must not take a port from it.
    pub fn ipv4_fragment(mut self, offset: u16, more_fragments: bool) -> Self {
        self.ipv4_fragment = Some((offset & 0x1fff, more_fragments));
        self
    }

    /// Writes `version` into the IP version field (the header keeps its real layout).
    pub fn ip_version(mut self, version: u8) -> Self {
        self.version = Some(version & 0x0f);
        self
    }

    /// Puts an 8-byte hop-by-hop extension header between the IPv6 header and the
    /// transport header (ignored for IPv4).
    pub fn ipv6_extension_header(mut self) -> Self {
        self.ipv6_extension = true;
        self
    }

    /// The frame.
    pub fn build(&self) -> Packet {
        let mut l4 = self.transport_bytes();
        l4.extend_from_slice(&self.payload);
        let (ethertype, mut l3) = match self.ip {
            Ip::V4 { src, dst } => (ETHERTYPE_IPV4, self.ipv4_header(src, dst, l4.len())),
            Ip::V6 { src, dst } => (ETHERTYPE_IPV6, self.ipv6_header(src, dst, l4.len())),
        };
        let mut bytes = ethernet(&self.vlans, ethertype);
        let l3_offset = bytes.len();
        let l4_offset = l3_offset + l3.len();
        bytes.append(&mut l3);
        bytes.append(&mut l4);
        Packet {
            bytes,
            l3_offset,
            l4_offset,
        }
    }

    fn transport_bytes(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(20);
        h.extend_from_slice(&self.sport.to_be_bytes());
        match self.transport {
            Transport::Tcp { dport, flags } => {
                h.extend_from_slice(&dport.to_be_bytes());
                h.extend_from_slice(&1u32.to_be_bytes()); // sequence
                let ack = if flags.0 & TcpFlags::ACK.0 != 0 {
                    1u32
                } else {
                    0
                };
                h.extend_from_slice(&ack.to_be_bytes());
                h.push(5 << 4); // data offset: 5 words, no options
                h.push(flags.0);
                h.extend_from_slice(&65535u16.to_be_bytes()); // window
                h.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
            }
            Transport::Udp { dport } => {
                h.extend_from_slice(&dport.to_be_bytes());
                let len = 8 + self.payload.len();
                h.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
                h.extend_from_slice(&[0, 0]); // checksum
            }
        }
        h
    }

    fn protocol(&self) -> u8 {
        match self.transport {
            Transport::Tcp { .. } => IPPROTO_TCP,
            Transport::Udp { .. } => IPPROTO_UDP,
        }
    }

    fn ipv4_header(&self, src: Ipv4Addr, dst: Ipv4Addr, l4_len: usize) -> Vec<u8> {
        let version = self.version.unwrap_or(4);
        let mut options = self.ipv4_options.clone();
        options.resize(options.len().next_multiple_of(4), IPOPT_EOL);
        let header_len = 20 + options.len();
        let ihl = self
            .ihl
            .unwrap_or_else(|| u8::try_from(header_len / 4).unwrap_or(0x0f));
        let total = u16::try_from(header_len + l4_len).unwrap_or(u16::MAX);
        let flags_offset: u16 = match self.ipv4_fragment {
            None => 0x4000, // don't fragment, offset 0
            Some((offset, more)) => offset | if more { 0x2000 } else { 0 },
        };
        let mut h = Vec::with_capacity(header_len);
        h.push((version << 4) | ihl);
        h.push(0); // DSCP/ECN
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&[0, 1]); // identification
        h.extend_from_slice(&flags_offset.to_be_bytes());
        h.push(64); // TTL
        h.push(self.protocol());
        h.extend_from_slice(&[0, 0]); // checksum, below
        h.extend_from_slice(&src.octets());
        h.extend_from_slice(&dst.octets());
        h.extend_from_slice(&options);
        let checksum = internet_checksum(&h);
        h[10..12].copy_from_slice(&checksum.to_be_bytes());
        h
    }

    fn ipv6_header(&self, src: Ipv6Addr, dst: Ipv6Addr, l4_len: usize) -> Vec<u8> {
        let version = self.version.unwrap_or(6);
        let extension_len = if self.ipv6_extension { 8 } else { 0 };
        let payload_len = u16::try_from(extension_len + l4_len).unwrap_or(u16::MAX);
        let next = if self.ipv6_extension {
            IPV6_HOP_BY_HOP
        } else {
            self.protocol()
        };
        let mut h = Vec::with_capacity(48);
        h.extend_from_slice(&[version << 4, 0, 0, 0]); // version, class, flow label
        h.extend_from_slice(&payload_len.to_be_bytes());
        h.push(next);
        h.push(64); // hop limit
        h.extend_from_slice(&src.octets());
        h.extend_from_slice(&dst.octets());
        if self.ipv6_extension {
            // Hop-by-hop: next header, length 0 (8 bytes), PadN option of 4 bytes.
            h.extend_from_slice(&[self.protocol(), 0, 1, 4, 0, 0, 0, 0]);
        }
        h
    }
}

/// Ethernet header with `vlans` (TPID, VID) tags, outermost first.
fn ethernet(vlans: &[(u16, u16)], ethertype: u16) -> Vec<u8> {
    let mut h = Vec::with_capacity(ETH_HLEN + 4 * vlans.len());
    h.extend_from_slice(&DST_MAC);
    h.extend_from_slice(&SRC_MAC);
    for (tpid, vid) in vlans {
        h.extend_from_slice(&tpid.to_be_bytes());
        h.extend_from_slice(&vid.to_be_bytes());
    }
    h.extend_from_slice(&ethertype.to_be_bytes());
    h
}

/// A broadcast ARP request: who has `target`? tell `sender`.
pub fn arp_request(sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut frame = Vec::with_capacity(ETH_HLEN + 28);
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&SRC_MAC);
    frame.extend_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    frame.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]); // Ethernet/IPv4, request
    frame.extend_from_slice(&SRC_MAC);
    frame.extend_from_slice(&sender.octets());
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&target.octets());
    frame
}

/// RFC 1071 checksum of `bytes` (even length).
fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_syn_layout() {
        let p = PacketBuilder::ipv4(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2))
            .tcp(8080, TcpFlags::SYN)
            .build();
        let b = p.bytes();
        assert_eq!(b.len(), 54);
        assert_eq!(&b[12..14], &[0x08, 0x00]);
        assert_eq!(b[14], 0x45);
        assert_eq!(u16::from_be_bytes([b[16], b[17]]), 40);
        assert_eq!(internet_checksum(&b[14..34]), 0, "header checksum verifies");
        assert_eq!(&b[26..30], &[10, 0, 0, 1]);
        assert_eq!(u16::from_be_bytes([b[36], b[37]]), 8080);
        assert_eq!(b[47], 0x02);
        assert_eq!((p.l3_offset(), p.l4_offset()), (14, 34));
    }

    #[test]
    fn two_tags_and_ipv6_udp() {
        let p = PacketBuilder::ipv6(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST)
            .vlan(TPID_8021AD, 100)
            .vlan(TPID_8021Q, 200)
            .udp(53)
            .payload(b"abcd")
            .build();
        let b = p.bytes();
        assert_eq!(&b[12..14], &[0x88, 0xa8]);
        assert_eq!(&b[16..18], &[0x81, 0x00]);
        assert_eq!(&b[20..22], &[0x86, 0xdd]);
        assert_eq!(p.l3_offset(), 22);
        assert_eq!(u16::from_be_bytes([b[26], b[27]]), 12, "payload length");
        assert_eq!(b[28], IPPROTO_UDP);
        assert_eq!(
            u16::from_be_bytes([b[p.l4_offset() + 4], b[p.l4_offset() + 5]]),
            12
        );
    }

    #[test]
    fn extension_header_chains_to_transport() {
        let p = PacketBuilder::ipv6(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST)
            .ipv6_extension_header()
            .build();
        let b = p.bytes();
        assert_eq!(b[20], IPV6_HOP_BY_HOP);
        assert_eq!(b[54], IPPROTO_TCP);
        assert_eq!(p.l4_offset(), 14 + 48);
    }

    #[test]
    fn ipv4_options_move_the_transport_header() {
        let p = PacketBuilder::ipv4(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2))
            .ipv4_options(&[IPOPT_NOP; 4])
            .tcp(443, TcpFlags::SYN)
            .build();
        let b = p.bytes();
        assert_eq!(b.len(), 14 + 24 + 20);
        assert_eq!(b[14], 0x46, "version 4, IHL 6");
        assert_eq!(u16::from_be_bytes([b[16], b[17]]), 44, "total length");
        assert_eq!(&b[20..22], &[0x40, 0], "DF, offset 0");
        assert_eq!(&b[26..30], &[10, 0, 0, 1]);
        assert_eq!(&b[34..38], &[IPOPT_NOP; 4]);
        assert_eq!(
            internet_checksum(&b[14..38]),
            0,
            "checksum covers the options"
        );
        assert_eq!((p.l3_offset(), p.l4_offset()), (14, 38));
        assert_eq!(
            u16::from_be_bytes([b[40], b[41]]),
            443,
            "dport after the options"
        );
        assert_eq!(b[51], 0x02, "SYN");

        let p = PacketBuilder::ipv4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST)
            .ipv4_options(&[IPOPT_NOP; IPV4_MAX_OPTIONS])
            .build();
        let b = p.bytes();
        assert_eq!(b[14], 0x4f, "version 4, IHL 15");
        assert_eq!(u16::from_be_bytes([b[16], b[17]]), 80, "total length");
        assert_eq!(&b[34..74], &[IPOPT_NOP; 40]);
        assert_eq!(internet_checksum(&b[14..74]), 0);
        assert_eq!(p.l4_offset(), 14 + 60);
        assert_eq!(u16::from_be_bytes([b[76], b[77]]), 443);
    }

    #[test]
    fn ipv4_options_pad_to_a_word_with_eol() {
        let p = PacketBuilder::ipv4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST)
            .ipv4_options(&[IPOPT_NOP; 5])
            .build();
        let b = p.bytes();
        assert_eq!(b[14], 0x47, "5 bytes pad to 8: IHL 7");
        assert_eq!(
            &b[34..42],
            &[1, 1, 1, 1, 1, IPOPT_EOL, IPOPT_EOL, IPOPT_EOL]
        );
        assert_eq!(p.l4_offset(), 14 + 28);
        assert_eq!(internet_checksum(&b[14..42]), 0);
    }

    #[test]
    #[should_panic(expected = "at most 40 fit")]
    fn more_than_forty_option_bytes_panic() {
        let _ = PacketBuilder::ipv4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST)
            .ipv4_options(&[IPOPT_NOP; 41]);
    }

    #[test]
    fn ipv4_fragment_fields() {
        let first = PacketBuilder::ipv4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST)
            .ipv4_fragment(0, true)
            .build();
        let b = first.bytes();
        assert_eq!(&b[20..22], &[0x20, 0x00], "MF, no DF, offset 0");
        assert_eq!(internet_checksum(&b[14..34]), 0);
        assert_eq!(u16::from_be_bytes([b[36], b[37]]), 443, "full TCP header");

        let middle = PacketBuilder::ipv4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST)
            .ipv4_fragment(185, true)
            .build();
        assert_eq!(
            &middle.bytes()[20..22],
            &[0x20, 185],
            "MF, offset 185 (1480 bytes)"
        );
        assert_eq!(internet_checksum(&middle.bytes()[14..34]), 0);

        let last = PacketBuilder::ipv4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST)
            .ipv4_fragment(0x1fff, false)
            .build();
        assert_eq!(
            &last.bytes()[20..22],
            &[0x1f, 0xff],
            "no MF, largest offset"
        );
    }

    #[test]
    fn lies_only_change_their_field() {
        let p = PacketBuilder::ipv4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST)
            .ipv4_ihl(4)
            .build();
        assert_eq!(p.bytes()[14], 0x44);
        assert_eq!(p.bytes().len(), 54);
        let p = PacketBuilder::ipv4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST)
            .ipv4_options(&[IPOPT_NOP; 8])
            .ipv4_ihl(15)
            .build();
        assert_eq!(p.bytes()[14], 0x4f, "IHL lies: 15");
        assert_eq!(p.l4_offset(), 14 + 28, "the header is still 28 bytes");
        assert_eq!(p.truncated(20).len(), 20);
        assert_eq!(
            arp_request(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST).len(),
            42
        );
    }
}
