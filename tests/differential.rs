//! Our zero-copy DNS parser against NLnet Labs' `domain`: on real,
//! generated and mutated messages both must extract the same question and
//! the same A, AAAA, CNAME and SRV records, or both reject the message.

use connbal::addr::Addr;
use connbal::dissect::{Dns, DnsPacket, digest_message};
use connbal::event::{EventBatch, RecordData, Section};
use connbal::generate::Rng;
use connbal::wire::dns::DnsError;
use domain::base::{Message, ParsedName, Rtype, iana::Class};
use domain::rdata::AllRecordData;

/// (section, owner, what) with names in folded wire form.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
enum Rec {
    Addr(u8, Vec<u8>, Addr),
    Cname(u8, Vec<u8>, Vec<u8>),
    Srv(u8, Vec<u8>, Vec<u8>, u16, u16, u16),
}

type Parsed = (Vec<u8>, u16, Vec<Rec>);

/// Ours: `Err` when the message is malformed, `Ok(None)` when it is not a
/// response connbal follows (those are not compared).
fn ours(msg: &[u8]) -> Result<Option<Parsed>, DnsError> {
    // The usual reader and the general one meet the same errors; the
    // general one keeps the records to compare.
    let read = |plain: bool, batch: &mut EventBatch| {
        let (server, client) = (Addr::V4([10, 0, 0, 53]), Addr::V4([10, 0, 0, 1]));
        let packet = DnsPacket {
            ts: 0,
            src: server,
            dst: client,
            sport: 53,
            dport: 4000,
            bytes: msg,
        };
        digest_message(&packet, batch, plain)
    };
    let usual = read(true, &mut EventBatch::default());
    let mut batch = EventBatch::default();
    let ev = read(false, &mut batch);
    assert_eq!(usual.is_err(), ev.is_err(), "the two readers disagree on {msg:?}");
    let Some(Dns::Response(index)) = ev? else {
        return Ok(None);
    };
    let section = |s: Section| match s {
        Section::Answer => 1,
        Section::Additional => 3,
    };
    let recs = batch
        .records
        .iter()
        .map(|rec| {
            let owner = batch.name(rec.owner).to_vec();
            match rec.data {
                RecordData::Addr(a) => Rec::Addr(section(rec.section), owner, a),
                RecordData::Cname(t) => Rec::Cname(section(rec.section), owner, batch.name(t).to_vec()),
                RecordData::Srv { target, srv } => Rec::Srv(
                    section(rec.section),
                    owner,
                    batch.name(target).to_vec(),
                    srv.port,
                    srv.priority,
                    srv.weight,
                ),
            }
        })
        .collect();
    let r = &batch.dns[index as usize];
    Ok(Some((batch.name(r.qname).to_vec(), r.qtype, recs)))
}

fn folded<O: AsRef<[u8]>>(name: &ParsedName<O>) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.iter() {
        let bytes = label.as_slice();
        out.push(bytes.len() as u8);
        out.extend(bytes.iter().map(u8::to_ascii_lowercase));
    }
    if out.last() != Some(&0) {
        out.push(0);
    }
    out
}

/// Theirs: the same extraction with `domain`; `Err` when it rejects.
fn theirs(msg: &[u8]) -> Result<Parsed, String> {
    let m = Message::from_octets(msg).map_err(|e| format!("{e:?}"))?;
    let q = m.sole_question().map_err(|e| format!("{e:?}"))?;
    let mut recs = Vec::new();
    let mut section = m.answer().map_err(|e| format!("{e:?}"))?;
    let mut n = 1u8;
    loop {
        for rec in section {
            let rec = rec.map_err(|e| format!("{e:?}"))?;
            // Record data is read only for the types both sides extract.
            let wanted = [Rtype::A, Rtype::AAAA, Rtype::CNAME, Rtype::SRV].contains(&rec.rtype());
            if n == 2 || rec.class() != Class::IN || !wanted {
                continue;
            }
            let parsed = rec
                .to_record::<AllRecordData<_, ParsedName<_>>>()
                .map_err(|e| format!("{e:?}"))?;
            let Some(rec) = parsed else { continue };
            let owner = folded(rec.owner());
            match rec.data() {
                AllRecordData::A(a) => recs.push(Rec::Addr(n, owner, Addr::V4(a.addr().octets()))),
                AllRecordData::Aaaa(a) => recs.push(Rec::Addr(n, owner, Addr::V6(a.addr().octets()))),
                AllRecordData::Cname(c) => recs.push(Rec::Cname(n, owner, folded(c.cname()))),
                AllRecordData::Srv(s) => recs.push(Rec::Srv(
                    n,
                    owner,
                    folded(s.target()),
                    s.port(),
                    s.priority(),
                    s.weight(),
                )),
                _ => {}
            }
        }
        match section.next_section().map_err(|e| format!("{e:?}"))? {
            Some(next) => {
                section = next;
                n += 1;
            }
            None => break,
        }
    }
    Ok((folded(q.qname()), q.qtype().to_int(), recs))
}

fn messages() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    // The committed seeds, and whatever local fuzzing has added.
    let fuzz = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for dir in [fuzz.join("seeds/dns"), fuzz.join("corpus/dns")] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            out.push(std::fs::read(e.path()).expect("corpus file"));
        }
    }
    // Generated responses: real compression, EDNS, SRV, CNAME.
    let mut capture = Vec::new();
    let work = connbal::generate::Workload {
        connections: 300,
        clients: 3,
        services: 8,
        ..Default::default()
    };
    connbal::generate::generate(&work, &mut capture).expect("generate");
    for (_, frame) in connbal::synth::snoop_frames(&capture) {
        let (ip, tagged) = if frame[12..14] == [0x81, 0x00] {
            (&frame[18..], true)
        } else {
            (&frame[14..], false)
        };
        let et = if tagged { &frame[16..18] } else { &frame[12..14] };
        let udp = match et {
            [0x08, 0x00] if ip[9] == 17 => &ip[usize::from(ip[0] & 15) * 4..],
            [0x86, 0xdd] if ip[6] == 17 => &ip[40..],
            _ => continue,
        };
        out.push(udp[8..].to_vec());
    }
    out
}

/// Messages both sides read, and those only `domain` reads because a
/// compression pointer leads to a name that runs past the pointer itself:
/// connbal narrows the readable window at every jump (smoltcp's rule,
/// STYLE.md), `domain` only asks that pointers point backward.
#[derive(Default)]
struct Tally {
    compared: usize,
    stricter_pointer_rule: usize,
}

fn compare(msg: &[u8], mismatches: &mut Vec<String>, tally: &mut Tally) -> bool {
    match (ours(msg), theirs(msg)) {
        (Ok(Some(a)), Ok(b)) => {
            let (mut a, mut b) = (a, b);
            a.2.sort();
            b.2.sort();
            if a != b {
                mismatches.push(format!(
                    "different records for {msg:02x?}:\nours   {a:?}\ntheirs {b:?}"
                ));
            }
            true
        }
        (Ok(Some(a)), Err(e)) => {
            mismatches.push(format!(
                "we accept what domain rejects ({e}): {a:?} from {msg:02x?}"
            ));
            true
        }
        (Err(DnsError::BadPointer), Ok(_)) => {
            tally.stricter_pointer_rule += 1;
            true
        }
        (Err(e), Ok(b)) => {
            mismatches.push(format!(
                "we reject ({e:?}) what domain accepts: {b:?} from {msg:02x?}"
            ));
            true
        }
        (Err(_), Err(_)) => true,
        (Ok(None), _) => false,
    }
}

#[test]
fn our_dns_parser_agrees_with_domain_on_real_and_generated_messages() {
    let mut mismatches = Vec::new();
    let mut tally = Tally::default();
    for m in messages() {
        tally.compared += usize::from(compare(&m, &mut mismatches, &mut tally));
    }
    assert!(tally.compared >= 50, "only {} messages compared", tally.compared);
    assert_eq!(tally.stricter_pointer_rule, 0);
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first: {}",
        mismatches.len(),
        mismatches[0]
    );
}

#[test]
fn our_dns_parser_agrees_with_domain_on_mutated_messages() {
    let base: Vec<Vec<u8>> = messages()
        .into_iter()
        .filter(|m| matches!(ours(m), Ok(Some(_))))
        .collect();
    let mut rng = Rng::new(42);
    let mut mismatches = Vec::new();
    let mut tally = Tally::default();
    for i in 0..20_000 {
        let mut m = base[i % base.len()].clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(m.len() as u64) as usize;
            match rng.below(3) {
                0 => m[at] = rng.next_u64() as u8,
                1 => m[at] ^= 1 << rng.below(8),
                _ => m.truncate(at.max(12)),
            }
        }
        tally.compared += usize::from(compare(&m, &mut mismatches, &mut tally));
    }
    assert!(tally.compared > 10_000);
    assert!(
        tally.stricter_pointer_rule * 200 < tally.compared,
        "{} pointer-rule cases",
        tally.stricter_pointer_rule
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches of {}, first: {}",
        mismatches.len(),
        tally.compared,
        mismatches[0]
    );
}
